package smimesync

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// DefaultReverify is how often, at most, an entry that matches its [Memo]
// is taken on trust before it is judged again and its recipient read back
// (see [Syncer.Reverify]).
const DefaultReverify = 24 * time.Hour

// ReverifyEveryPass, as [Syncer.Reverify], turns memos off: every pass
// judges every entry and reads every recipient back, and no memo is read
// or saved.
const ReverifyEveryPass time.Duration = -1

// DefaultRecheckNotFound is how long, at most, an entry no cloud recipient
// matched is taken on trust before the sink is asked again (see
// [Syncer.RecheckNotFound]). An hour is twice the interval of Microsoft's
// own directory sync, and well within the day the offline address book
// takes to show a new recipient's certificates to cached Outlook clients:
// a mailbox created in the cloud gets its certificates in the first pass
// of the next hour.
const DefaultRecheckNotFound = time.Hour

// RecheckNotFoundEveryPass, as [Syncer.RecheckNotFound], asks the sink
// again, on every pass, for every entry no recipient matched.
const RecheckNotFoundEveryPass time.Duration = -1

// A Memo is what a [MemoState] remembers of one directory entry whose last
// pass settled it: the recipient carried what the policy keeps (unchanged),
// a write of it was acknowledged and the state saved, or it is left alone
// for a reason only the recipient can change (Skip: SkipReadOnly,
// SkipCurrentUnknown, or SkipNoRecipient until the Syncer's
// RecheckNotFound asks the sink again). A later pass that reads the same
// entry (the same Entry hash) under the same settings (the same Settings
// fingerprint), before RecheckBy, within the Syncer's Reverify of
// Verified, and finds the state as the memo left it (for an unchanged
// entry, the record of the same Recipient holding the same values; for
// SkipCurrentUnknown and SkipNoRecipient, no record) repeats the row
// without judging its certificates or calling the sink: unchanged, or the
// same skip; the row has Memoized set.
type Memo struct {
	// Entry is the SHA-256 of the whole entry (every field of
	// directory.Entry, in a fixed order, each value length-prefixed).
	Entry [32]byte
	// Settings fingerprints every setting that changes a verdict or a
	// lookup: the Policy's (see Syncer.PolicyVersion for what cannot be
	// fingerprinted), Prune.Reasons and the sink's identity.
	Settings [32]byte
	// Values is the SHA-256 of the fingerprints the entry's record in the
	// state was to hold once the memo's pass was applied (each
	// attribute's, sorted; see Published). A memo of an entry its
	// recipient carries stands only while the record holds those values:
	// a write the memo did not see (a crash between the state's save and
	// the memos', a saved plan applied) changes the record, and retires
	// the memo. Zero for a settled skip.
	Values [32]byte
	// Recipient is the recipient's ID; RecipientName and RecipientKind
	// are its Name and Kind (cloud.Recipient).
	Recipient     string
	RecipientName string
	RecipientKind string
	// Skip is the reason of a settled skip (SkipReadOnly, with the sink's
	// Detail, SkipCurrentUnknown or SkipNoRecipient); empty for an entry
	// its recipient carries.
	Skip   SkipReason
	Detail string
	// Kept and DroppedValues count the entry's values the policy kept
	// and dropped, and Dropped lists the reasons of the dropped ones (one
	// item per reason per value): a memoized row counts in the Summary
	// as the row that judged it did.
	Kept, DroppedValues int
	Dropped             []Reason
	// RecheckBy is the earliest validity boundary (a notBefore or
	// notAfter) of the entry's certificates that had not passed when the
	// entry was judged: the verdict may change then. Zero when none lies
	// ahead.
	RecheckBy time.Time
	// Verified is when the entry was last judged and its recipient read
	// (or written).
	Verified time.Time
}

// A MemoState is a [State] that also keeps [Memo]s, one per directory entry
// (keyed as Snapshot.Published is), so that a pass over an unchanged
// directory costs little more than reading it. [BoltState] and
// [MemoryState] are MemoStates; a Syncer whose State is not one judges
// every entry on every pass.
//
// LookupMemo returns the memo of one entry (false when there is none; a
// memo it cannot read is no memo, not an error). The Syncer asks for each
// entry as the source delivers it, from several workers at once, so that
// a pass holds no more memos in memory than it has workers, and a delta
// pass reads only the memos of the entries it sees.
// SaveMemos stores put and deletes drop, atomically: after a crash either
// all of it is saved or none. The Syncer calls it at the end of Apply,
// after the snapshot was saved, with memos only for entries whose outcome
// is settled; a memo lost (never saved) only costs the next pass a lookup.
type MemoState interface {
	State
	LookupMemo(ctx context.Context, key string) (Memo, bool, error)
	SaveMemos(ctx context.Context, put map[string]Memo, drop []string) error
}

// memoVersion changes whenever what a Memo's hashes cover changes: every
// memo of an older version then simply fails to match.
const memoVersion = "smimesync-memo-2"

// memoPass is one plan's view of the memos.
type memoPass struct {
	ms       MemoState
	log      *slog.Logger
	failed   atomic.Bool // a lookup failed: logged once
	settings [32]byte
	now      time.Time // the Syncer's clock: Verified and Reverify
	polNow   time.Time // the Policy's clock: RecheckBy
	reverify time.Duration
	// notFound is the Syncer's RecheckNotFound with its default; negative
	// when entries no recipient matched are not memoized.
	notFound time.Duration
}

// reverify is the Syncer's Reverify, with its default.
func (s *Syncer) reverify() time.Duration {
	if s.Reverify == 0 {
		return DefaultReverify
	}
	return s.Reverify
}

// recheckNotFound is the Syncer's RecheckNotFound, with its default.
func (s *Syncer) recheckNotFound() time.Duration {
	if s.RecheckNotFound == 0 {
		return DefaultRecheckNotFound
	}
	return s.RecheckNotFound
}

// notFoundUntil is when the memo of an entry no recipient matched, made at
// verified, stops standing: the first multiple of every (counted from
// Go's zero time, in UTC) after verified. Every such memo made in the same
// period ends at the same instant, whichever pass made it, so that the
// sink is asked about all of them in one pass (for a sink that loads an
// index of the tenant to answer, one load a period) rather than a few in
// every pass.
func notFoundUntil(verified time.Time, every time.Duration) time.Time {
	return verified.Truncate(every).Add(every)
}

// beginMemo loads the memos for a plan: nil when the State keeps none or
// the policy cannot be fingerprinted (see Syncer.PolicyVersion), or memos
// are off (ReverifyEveryPass). A State
// that fails to load them is logged, and the pass judges every entry.
func (s *Syncer) beginMemo(ctx context.Context, pol *Policy) *memoPass {
	ms, ok := s.state().(MemoState)
	if !ok {
		return nil
	}
	log := s.logger()
	if !s.memoizable(pol) {
		log.Debug("entries are not memoized: the policy has a Check hook, a Revocation checker, Roots or Intermediates, and the Syncer no PolicyVersion")
		return nil
	}
	if s.reverify() < 0 {
		return nil
	}
	return &memoPass{ms: ms, log: log, settings: s.memoSettings(pol), now: s.now(), polNow: pol.now(), reverify: s.reverify(),
		notFound: s.recheckNotFound()}
}

// memoizable reports whether the verdicts of pol are fingerprinted by
// memoSettings: what a func, a checker or a CertPool decides cannot be
// hashed, so a Policy with any of them needs the caller's PolicyVersion.
func (s *Syncer) memoizable(pol *Policy) bool {
	opaque := pol.Check != nil || pol.Revocation != nil || pol.Roots != nil || pol.Intermediates != nil
	return !opaque || s.PolicyVersion != ""
}

// memoSettings fingerprints every setting that changes a verdict, a
// lookup or what Apply does with an entry's row.
func (s *Syncer) memoSettings(pol *Policy) [32]byte {
	h := sha256.New()
	hashString(h, memoVersion)
	hashString(h, identity(s.Sink))
	hashString(h, s.PolicyVersion)
	hashInt(h, pol.maxValues())
	for _, b := range []bool{pol.DropUnmanaged, pol.RequireEncryption, pol.RequireValidSignature,
		pol.Roots != nil, pol.Intermediates != nil, pol.Check != nil, pol.Revocation != nil} {
		hashBool(h, b)
	}
	hashInt(h, len(pol.ManagedCAs))
	for _, ca := range pol.ManagedCAs {
		if ca == nil {
			hashBytes(h, nil)
			continue
		}
		hashBytes(h, ca.Raw)
	}
	rs := slices.Clone(s.Prune.Reasons)
	slices.Sort(rs)
	hashInt(h, len(rs))
	for _, r := range rs {
		hashString(h, string(r))
	}
	return [32]byte(h.Sum(nil))
}

// entryHash hashes every field of e, in a fixed order, each value
// length-prefixed (as hashString, hashInt and hashBool write them):
// whatever the policy or the sink's lookup reads of the entry is in it.
// The fields are laid end to end in a buffer (kept for the next entry)
// and hashed at once: most of the pass over an unchanged directory is
// this hash and the memo's lookup.
func entryHash(e *directory.Entry) [32]byte {
	bp := entryBufs.Get().(*[]byte)
	b := appendLen((*bp)[:0], len(e.ID))
	b = append(b, e.ID...)
	for _, s := range [...]string{e.DN, e.UserPrincipalName, e.Mail, e.Source} {
		b = appendLen(b, len(s))
		b = append(b, s...)
	}
	b = append(b, boolByte(e.Deleted))
	b = appendLen(b, len(e.ProxyAddresses))
	for _, p := range e.ProxyAddresses {
		b = appendLen(b, len(p))
		b = append(b, p...)
	}
	for _, vals := range [...][][]byte{e.UserCertificate, e.UserSMIMECertificate} {
		b = appendLen(b, len(vals))
		for _, v := range vals {
			b = appendLen(b, len(v))
			b = append(b, v...)
		}
	}
	sum := sha256.Sum256(b)
	if cap(b) <= maxEntryBuf {
		*bp = b
		entryBufs.Put(bp)
	}
	return sum
}

// entryBufs are entryHash's buffers; one larger than maxEntryBuf (an
// entry with unusually large values) is not kept.
var entryBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxEntryBuf = 64 << 10

func appendLen(b []byte, n int) []byte { return binary.BigEndian.AppendUint64(b, uint64(n)) }

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func hashBytes(h hash.Hash, b []byte) {
	hashInt(h, len(b))
	h.Write(b)
}

func hashString(h hash.Hash, s string) {
	hashInt(h, len(s))
	h.Write([]byte(s))
}

func hashInt(h hash.Hash, n int) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	h.Write(b[:])
}

func hashBool(h hash.Hash, v bool) {
	if v {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
}

// planOrMemo is planEntry, unless the entry matches its memo: it is then
// counted unchanged without being judged or looked up.
func (s *Syncer) planOrMemo(ctx context.Context, pol *Policy, st *Snapshot, e *directory.Entry, mp *memoPass, sp *spill) *Change {
	if mp == nil || e.Deleted {
		return s.planEntry(ctx, pol, st, e, sp)
	}
	key := stateKey(e.Source, e.ID)
	sum := entryHash(e)
	m, had, err := mp.ms.LookupMemo(ctx, key)
	if err != nil {
		// Judged as if it had none; logged once a pass.
		if !mp.failed.Swap(true) {
			mp.log.Warn("an entry memo cannot be read; such entries are judged again", "entry", key, "err", err)
		}
		had = false
	}
	if had {
		if c := mp.hit(ctx, st, key, e, sum, m); c != nil {
			return c
		}
	}
	return s.judge(ctx, pol, st, e, mp, sp, sum, had)
}

// judge is planEntry, and the memo of its outcome when it may be
// remembered (planOrMemo's, after a memo that did not stand; had says
// whether the entry had one). mp must not be nil.
func (s *Syncer) judge(ctx context.Context, pol *Policy, st *Snapshot, e *directory.Entry, mp *memoPass, sp *spill, sum [32]byte, had bool) *Change {
	c := s.planEntry(ctx, pol, st, e, sp)
	c.hadMemo = had
	noRecipient := c.Action == ActionSkip && c.Reason == SkipNoRecipient && mp.notFound > 0
	if (c.Recipient != nil || noRecipient) && c.prune == nil && (c.Action == ActionUnchanged || c.Writes() || settledSkip(c)) {
		c.memo = &Memo{Entry: sum, Settings: mp.settings, RecheckBy: c.recheckBy, Verified: mp.now}
		if r := c.Recipient; r != nil {
			c.memo.Recipient, c.memo.RecipientName, c.memo.RecipientKind = r.ID, r.Name, r.Kind
		}
		if c.Action == ActionSkip {
			c.memo.Skip, c.memo.Detail = c.Reason, c.Detail
		} else {
			c.memo.Values = valuesHash(c.desiredFP[0], c.desiredFP[1])
		}
		c.memo.Kept, c.memo.DroppedValues = len(c.Keep), len(c.Drop)
		for _, d := range c.Drop {
			c.memo.Dropped = append(c.memo.Dropped, d.Reasons...)
		}
	}
	return c
}

// hit returns the row of an entry that matches its memo m, or nil.
func (mp *memoPass) hit(ctx context.Context, st *Snapshot, key string, e *directory.Entry, sum [32]byte, m Memo) *Change {
	if m.Entry != sum || m.Settings != mp.settings {
		return nil
	}
	if !m.RecheckBy.IsZero() && !mp.polNow.Before(m.RecheckBy) {
		return nil // a certificate became valid or expired since
	}
	switch {
	case mp.now.Before(m.Verified):
		return nil // the clock went back
	case m.Skip == SkipNoRecipient:
		// No recipient to verify: RecheckNotFound's period alone, so
		// that every such entry is asked about again in the same pass.
		if !mp.now.Before(notFoundUntil(m.Verified, mp.notFound)) {
			return nil
		}
	case !mp.now.Before(m.Verified.Add(reverifyAfter(mp.reverify, sum))):
		return nil // verified too long ago
	}
	// The row, its recipient and its values in one allocation: most
	// entries of a pass over a quiet directory come through here.
	h := &memoHit{
		c: Change{ID: e.ID, User: userName(e), DN: e.DN, Source: e.Source, Keep: []Value{}, Drop: []Value{},
			Action: ActionUnchanged, Memoized: true},
		r: cloud.Recipient{ID: m.Recipient, Name: cmp.Or(m.RecipientName, m.Recipient), Kind: m.RecipientKind},
	}
	c := &h.c
	c.Recipient = &h.r
	if m.Kept+m.DroppedValues > 0 {
		h.v = MemoValues{Kept: m.Kept, Dropped: m.DroppedValues, Reasons: m.Dropped}
		c.MemoValues = &h.v
	}
	p, published, err := st.published(ctx, key)
	if err != nil {
		return nil // judged the usual way, which reports the error
	}
	_, departed := st.Departed[key]
	known := published || departed
	switch {
	case m.Skip == SkipNoRecipient && known:
		return nil // something was published for it since
	case m.Skip == SkipNoRecipient:
		// Still waiting for a recipient: Apply keeps the entry pending,
		// as the pass that judged it did (the state's copy, the same
		// bytes as e by the memo's hash, when it has one: no second copy
		// waits in memory; see waiting).
		c.Recipient, c.entry = nil, e
		if p := st.Pending[key]; p != nil {
			c.entry = p
		}
		c.Action, c.Reason = ActionSkip, SkipNoRecipient
	case st.Pending[key] != nil:
		return nil // the state does not back the memo
	case m.Skip == "" && (!published || p.Recipient != m.Recipient ||
		valuesHash(p.UserCertificate, p.UserSMIMECertificate) != m.Values):
		return nil // the record is not the one the memo was made with
	case m.Skip == SkipCurrentUnknown && known:
		return nil // a skip for want of knowledge, with knowledge now
	case m.Skip != "":
		c.Action, c.Reason, c.Detail = ActionSkip, m.Skip, m.Detail
	}
	return c
}

// memoHit is the row memoPass.hit makes, with what it points to.
type memoHit struct {
	c Change
	r cloud.Recipient
	v MemoValues
}

// settledSkip reports whether c is a skip that only the recipient can
// change: a read-only recipient, one whose set cannot be read and gets
// nothing, or no recipient at all (until RecheckNotFound asks again).
func settledSkip(c *Change) bool {
	return c.Action == ActionSkip && (c.Reason == SkipReadOnly || c.Reason == SkipCurrentUnknown || c.Reason == SkipNoRecipient)
}

// reverifyAfter is how long after its verification an entry is taken on
// trust: between half of reverify and all of it, chosen by the entry's
// hash, so that the entries of a directory first synced in one pass are
// verified again over the hours that follow rather than all in one pass.
func reverifyAfter(reverify time.Duration, sum [32]byte) time.Duration {
	frac := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53) // [0, 1)
	return reverify - time.Duration(frac*float64(reverify/2))
}

// nextBoundary is the earliest notBefore or notAfter, not before now, of
// the certificates behind v's decisions (a blob's CA certificates
// included: chain validation reads them); zero when there is none.
func nextBoundary(v *Verdict, now time.Time) time.Time {
	var next time.Time
	see := func(t time.Time) {
		if !t.Before(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	cert := func(c *Certificate) {
		if c != nil {
			see(c.NotBefore)
			see(c.NotAfter)
		}
	}
	for _, d := range v.Decisions() {
		cert(d.Certificate)
		if d.Blob != nil {
			for _, c := range d.Blob.Certificates {
				cert(c)
			}
		}
	}
	return next
}

// settledMemo reports whether c's outcome may be remembered: the recipient
// carried what the policy keeps, or the write was acknowledged.
func (c *Change) settledMemo() bool {
	switch {
	case c.memo == nil:
		return false
	case c.Action == ActionUnchanged, settledSkip(c):
		return true
	default:
		return c.Writes() && c.Action != ActionDepart && c.Outcome == OutcomeWritten
	}
}

// rememberEntries saves, after Apply saved the state, a memo for every
// entry of the report whose outcome is settled, and drops the memo of
// every other entry that had one. A failure is logged: it costs the next
// pass lookups, never a skipped write.
func (s *Syncer) rememberEntries(ctx context.Context, rep *Report) {
	ms, ok := s.state().(MemoState)
	if !ok || rep == nil || !rep.StateSaved {
		return
	}
	put := map[string]Memo{}
	var drop []string
	save := func() bool {
		if len(put) == 0 && len(drop) == 0 {
			return true
		}
		if err := ms.SaveMemos(context.WithoutCancel(ctx), put, drop); err != nil {
			s.logger().Warn("the entry memos cannot be saved; the next pass judges these entries again", "entries", len(put)+len(drop), "err", err)
			return false
		}
		clear(put)
		drop = drop[:0]
		return true
	}
	for c, err := range rep.Rows() {
		if err != nil {
			s.logger().Warn("the report's rows cannot be read; their entries are judged again", "err", err)
			break
		}
		if len(put)+len(drop) >= memoBatch && !save() {
			return
		}
		key := stateKey(c.Source, c.ID)
		switch {
		case c.Memoized && (c.Action == ActionUnchanged || settledSkip(c)):
			// Its memo stands.
		case c.settledMemo():
			put[key] = *c.memo
		case c.hadMemo || c.Memoized || c.Departed() || c.Action == ActionSkip && c.Reason == SkipDeleted:
			drop = append(drop, key)
		}
	}
	// Entries out of scope have no row: their memos (of an entry that
	// waited for a recipient, say) would stay in the store for good.
	for _, key := range rep.forgotten {
		if len(put)+len(drop) >= memoBatch && !save() {
			return
		}
		drop = append(drop, key)
	}
	save()
}

// memoBatch is how many memos rememberEntries saves at a time.
const memoBatch = 4096

// memoTable is MemoryState's memos.
type memoTable struct {
	mu sync.Mutex
	m  map[string]Memo
}

// LookupMemo returns the memo of key.
func (m *MemoryState) LookupMemo(ctx context.Context, key string) (Memo, bool, error) {
	if err := ctx.Err(); err != nil {
		return Memo{}, false, err
	}
	m.memos.mu.Lock()
	defer m.memos.mu.Unlock()
	memo, ok := m.memos.m[key]
	return memo, ok, nil
}

// SaveMemos stores put and deletes drop.
func (m *MemoryState) SaveMemos(ctx context.Context, put map[string]Memo, drop []string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("smimesync: saving memos: %w", err)
	}
	m.memos.mu.Lock()
	defer m.memos.mu.Unlock()
	if m.memos.m == nil {
		m.memos.m = map[string]Memo{}
	}
	for _, k := range drop {
		delete(m.memos.m, k)
	}
	maps.Copy(m.memos.m, put)
	return nil
}

// MemoValues counts the values of a memoized entry as the row that last
// judged it did (see Change.MemoValues).
type MemoValues struct {
	// Kept and Dropped count the values kept and dropped; Reasons lists
	// the reasons of the dropped ones (one item per reason per value).
	Kept    int      `json:"kept"`
	Dropped int      `json:"dropped"`
	Reasons []Reason `json:"reasons,omitempty"`
}

// countMemo adds the values a memoized row remembers.
func (s *Summary) countMemo(m *MemoValues) {
	s.KeptValues += m.Kept
	s.DroppedValues += m.Dropped
	for _, r := range m.Reasons {
		if s.Dropped == nil {
			s.Dropped = map[Reason]int{}
		}
		s.Dropped[r]++
	}
}

// valuesHash is a Memo's Values: the SHA-256 of a record's fingerprints,
// each attribute's sorted, the two told apart. They are sorted in a copy
// and laid end to end in a buffer, both kept for the next call, and hashed
// at once: an unchanged pass checks the record of every memoized entry
// with it.
func valuesHash(userCertificate, userSMIMECertificate []Fingerprint) [32]byte {
	sc := valuesBufs.Get().(*valuesScratch)
	b := sc.b[:0]
	for i, fps := range [...][]Fingerprint{userCertificate, userSMIMECertificate} {
		sc.fps = append(sc.fps[:0], fps...) // fps is the caller's
		slices.SortFunc(sc.fps, func(a, b Fingerprint) int { return bytes.Compare(a[:], b[:]) })
		b = append(b, byte(i), byte(len(fps)>>8), byte(len(fps)))
		for _, f := range sc.fps {
			b = append(b, f[:]...)
		}
	}
	sum := sha256.Sum256(b)
	if cap(b) <= maxEntryBuf {
		sc.b = b
		valuesBufs.Put(sc)
	}
	return sum
}

// valuesScratch is valuesHash's buffers; one grown beyond maxEntryBuf
// (thousands of values) is not kept.
type valuesScratch struct {
	b   []byte
	fps []Fingerprint
}

var valuesBufs = sync.Pool{New: func() any { return new(valuesScratch) }}
