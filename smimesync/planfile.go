package smimesync

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// PlanFormat is the marker a saved plan carries as its first member,
// "format": it tells a plan file from any other JSON file (a state, a
// report, a sink's file) that a slip might point ReadPlan at.
const PlanFormat = "smimesync-plan"

// PlanVersion is the version of the saved plan's layout that
// [Plan.WriteTo] writes and [ReadPlan] reads.
const PlanVersion = 1

// ErrPlanFile is wrapped by ReadPlan's error for anything that is not a
// plan file as WriteTo wrote it: another kind of file, another version,
// a damaged or truncated file, or one changed after it was written.
var ErrPlanFile = errors.New("smimesync: not a usable saved plan")

// An Identifier is a [directory.Source] or a [cloud.Sink] that can say
// what it reads or writes (a file's path, a server and its base DN), so
// that a saved plan is applied only where it was made: Apply refuses a
// plan read by [ReadPlan] whose sink or source had another identity. A
// source or sink that is not an Identifier is known by its Go type alone
// (and the state the plan was made against tells the rest).
type Identifier interface {
	Identity() string
}

// identity names a source or sink for a saved plan: its Go type, and what
// it says of itself when it is an Identifier.
func identity(v any) string {
	s := fmt.Sprintf("%T", v)
	if id, ok := v.(Identifier); ok {
		s += " " + id.Identity()
	}
	return s
}

// planOrigin is what a plan was made against: the Syncer's sink and
// source, and the state it read. Apply checks a plan read by ReadPlan
// against it.
type planOrigin struct {
	// Sink and Source are the identities (see Identifier).
	Sink   string `json:"sink"`
	Source string `json:"source"`
	// StateGeneration is the generation of the state the plan was made
	// against ([Snapshot.Generation]); StateSHA256 is the SHA-256 of that
	// snapshot's JSON encoding, which also changes when a write is
	// recorded without a save (a crashed apply).
	StateGeneration uint64 `json:"state_generation"`
	StateSHA256     string `json:"state_sha256"`
}

// planHeader is a saved plan's members before its changes: the marker,
// the version, the origin, every exported member of the Plan but its
// changes (whatever fields Plan gains are saved too), and the cookie that
// Apply saves when every change succeeds.
type planHeader struct {
	Format  string     `json:"format"`
	Version int        `json:"version"`
	Origin  planOrigin `json:"made_against"`
	*Plan
	// Changes hides Plan.Changes: they follow the header one at a time.
	Changes []struct{} `json:"changes,omitempty"`
	Cookie  []byte     `json:"cookie,omitempty"`
	// Unlisted is the entries the plan only counted ([Plan.Unlisted]).
	Unlisted *planUnlisted `json:"unlisted,omitempty"`
}

// planUnlisted is a saved plan's unlisted entries: their keys (16 bytes
// each, sorted, end to end; base64 in the file) and their share of the
// summary. Apply needs the keys: a full read's plan must not forget the
// records of entries it read but has no row for.
type planUnlisted struct {
	Keys   []byte  `json:"keys"`
	Counts Summary `json:"counts"`
}

// changeRecord is one change of a saved plan: every exported member of
// the Change (whatever fields Change gains are saved too), and under
// "apply" what Apply needs that a Change does not show.
type changeRecord struct {
	*Change
	Apply *applyRecord `json:"apply,omitempty"`
}

// applyRecord is what Apply needs of a change beyond its exported
// members.
type applyRecord struct {
	// Write is what the recipient carries after the change: each value's
	// fingerprint, with its certificate's names and expiry for the
	// reviewer, and (for a change that writes) the value itself.
	Write *planValues `json:"write,omitempty"`
	// Prune is what the write-back removes from the directory entry.
	Prune *planValues `json:"prune,omitempty"`
	// Entry is the directory entry, where Apply needs it: to prune it,
	// or to keep it in the state to be planned again.
	Entry *directory.Entry `json:"entry,omitempty"`
}

// planValues are attribute values in a saved plan, per attribute.
type planValues struct {
	UserCertificate      []planValue `json:"userCertificate,omitempty"`
	UserSMIMECertificate []planValue `json:"userSMIMECertificate,omitempty"`
}

// planValue is one value in a saved plan: its fingerprint, what a person
// needs to recognise it, and its bytes (base64) where Apply sends them.
type planValue struct {
	SHA256   Fingerprint `json:"sha256"`
	Subject  string      `json:"subject,omitempty"`
	Issuer   string      `json:"issuer,omitempty"`
	NotAfter time.Time   `json:"not_after,omitzero"`
	Value    []byte      `json:"value,omitempty"`
}

// digestTrailer is the end of a saved plan, after the bytes the digest
// covers: the "sha256" member and the closing brace.
func digestTrailer(sum []byte) []byte {
	return []byte(",\n  \"sha256\": \"" + hex.EncodeToString(sum) + "\"\n}\n")
}

// digestTrailerLen is len(digestTrailer(a SHA-256)).
var digestTrailerLen = len(digestTrailer(make([]byte, sha256.Size)))

// WriteTo writes the plan to w as a plan file that [ReadPlan] reads back
// and [Syncer.Apply] applies exactly: every change as the plan shows it,
// with the values each write sends (base64, next to their fingerprints,
// subjects, issuers and expiry dates, so that the file can be reviewed as
// it is), the write-back's values, the source's new delta cookie, and what
// the plan was made against (the sink, the source, and the state's
// generation and SHA-256). Over a [RecordStore], the state's SHA-256 is
// computed here, from the saved records, and only while they are still
// those the plan read: WriteTo refuses (wrapping [ErrStalePlan]) when the
// state was saved, or writes were recorded in it, since the plan was made
// (see [StateView]'s Header), so that the file never vouches for a state
// the plan did not read. It ends with "sha256": the SHA-256 of every
// byte before that member. ReadPlan checks it, so a plan changed after it
// was written (by hand or by a damaged disk) is refused. That is a check
// of integrity, not of authenticity: anyone who can write the file can
// also write a digest that matches; keep plan files where only those who
// may apply them can write.
//
// The changes are encoded one at a time: the plan is never held in memory
// twice. Plan.Force is not saved: the guard is checked when the plan is
// applied. A plan already applied, and a Plan not made by [Syncer.Plan]
// (or read by ReadPlan), cannot be written.
func (p *Plan) WriteTo(w io.Writer) (int64, error) {
	if p == nil || p.origin == nil {
		return 0, errors.New("smimesync: only a plan made by Plan or read by ReadPlan can be saved")
	}
	if p.applied {
		return 0, errors.New("smimesync: the plan was applied; a plan is saved before it is applied")
	}
	if err := p.usable(); err != nil {
		return 0, err
	}
	origin := *p.origin
	if p.state != nil && !p.loaded {
		sum, err := p.state.stateSHA256(context.Background())
		if err != nil {
			return 0, err
		}
		origin.StateSHA256 = sum
	}
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	h := sha256.New()
	out := io.MultiWriter(bw, h)

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	hdr := planHeader{Format: PlanFormat, Version: PlanVersion, Origin: origin, Plan: p, Cookie: p.cookie}
	if n := p.unlisted.len(); n > 0 {
		hdr.Unlisted = &planUnlisted{Keys: p.unlisted.bytes(), Counts: p.unlisted.counts}
	}
	if err := enc.Encode(hdr); err != nil {
		return 0, fmt.Errorf("smimesync: encoding the plan: %w", err)
	}
	head := bytes.TrimSuffix(bytes.TrimRight(buf.Bytes(), "\n"), []byte("}"))
	head = bytes.TrimRight(head, "\n")
	if _, err := out.Write(head); err != nil {
		return cw.n, err
	}
	if _, err := io.WriteString(out, ",\n  \"changes\": ["); err != nil {
		return cw.n, err
	}
	enc.SetIndent("    ", "  ")
	i := 0
	for c, err := range p.Rows() {
		if err != nil {
			return cw.n, fmt.Errorf("smimesync: saving the plan: %w", err)
		}
		buf.Reset()
		var vals cloud.Certificates
		if c.Writes() {
			v, err := p.values(c)
			if err != nil {
				return cw.n, fmt.Errorf("smimesync: saving the change of %s: %w", c.User, err)
			}
			vals = v
		}
		if err := enc.Encode(recordOf(c, vals)); err != nil {
			return cw.n, fmt.Errorf("smimesync: encoding the change of %s: %w", c.User, err)
		}
		sep := ",\n    "
		if i == 0 {
			sep = "\n    "
		}
		if _, err := io.WriteString(out, sep); err != nil {
			return cw.n, err
		}
		if _, err := out.Write(bytes.TrimRight(buf.Bytes(), "\n")); err != nil {
			return cw.n, err
		}
		i++
	}
	end := "\n  ]"
	if i == 0 {
		end = "]"
	}
	if _, err := io.WriteString(out, end); err != nil {
		return cw.n, err
	}
	if _, err := bw.Write(digestTrailer(h.Sum(nil))); err != nil {
		return cw.n, err
	}
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// snapshotSHA256 is the hex SHA-256 of the snapshot's JSON encoding: what
// a saved plan records of the state it was made against.
func snapshotSHA256(s *Snapshot) (string, error) {
	h := sha256.New()
	if err := json.NewEncoder(h).Encode(s); err != nil {
		return "", fmt.Errorf("smimesync: fingerprinting the state: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// recordOf is c as a saved plan holds it, with vals, the values its write
// sends.
func recordOf(c *Change, vals cloud.Certificates) changeRecord {
	r := changeRecord{Change: c}
	a := &applyRecord{Entry: c.entry}
	if len(c.desiredFP[0])+len(c.desiredFP[1]) > 0 {
		a.Write = &planValues{
			UserCertificate:      valuesOf(c.Keep, c.desiredFP[0], vals.UserCertificate),
			UserSMIMECertificate: valuesOf(c.Keep, c.desiredFP[1], vals.UserSMIMECertificate),
		}
	}
	if uc, us := c.prune[cloud.AttrUserCertificate], c.prune[cloud.AttrUserSMIMECertificate]; len(uc)+len(us) > 0 {
		a.Prune = &planValues{
			UserCertificate:      valuesOf(c.Drop, fingerprintsOf(uc), uc),
			UserSMIMECertificate: valuesOf(c.Drop, fingerprintsOf(us), us),
		}
	}
	if a.Write != nil || a.Prune != nil || a.Entry != nil {
		r.Apply = a
	}
	return r
}

func fingerprintsOf(vals [][]byte) []Fingerprint {
	out := make([]Fingerprint, len(vals))
	for i, v := range vals {
		out[i] = sha256.Sum256(v)
	}
	return out
}

// valuesOf pairs fingerprints (and the values, when kept) with what the
// plan's Values say of them.
func valuesOf(shown []Value, fps []Fingerprint, vals [][]byte) []planValue {
	var out []planValue
	for i, f := range fps {
		v := planValue{SHA256: f}
		for _, s := range shown {
			if s.SHA256 == f {
				v.Subject, v.Issuer, v.NotAfter = s.Subject, s.Issuer, s.NotAfter
				break
			}
		}
		if i < len(vals) {
			v.Value = vals[i]
		}
		out = append(out, v)
	}
	return out
}

// tailHasher hashes every byte read through it but the last n, which it
// keeps: a plan's digest covers the file up to its trailer.
type tailHasher struct {
	r    io.Reader
	h    hash.Hash
	n    int
	tail []byte
}

func (t *tailHasher) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.tail = append(t.tail, p[:n]...)
	if over := len(t.tail) - t.n; over > 0 {
		t.h.Write(t.tail[:over])
		t.tail = append(t.tail[:0], t.tail[over:]...)
	}
	return n, err
}

// ReadPlan reads a plan that [Plan.WriteTo] wrote, for [Syncer.Apply] to
// apply exactly: Apply refuses it (wrapping [ErrStalePlan]) when its
// Syncer's sink or source is not the one the plan was made with, or when
// the state is not the one it was made against (another Apply saved it,
// or recorded writes, since). It reads the changes one at a time, and
// keeps the values of the plan's writes in a temporary file as
// [Syncer.Plan] does (see [Plan.Close]); an error keeping them wraps
// [ErrSpill], not ErrPlanFile.
//
// ReadPlan refuses, with an error wrapping [ErrPlanFile], anything else:
// a file without the PlanFormat marker as its first member or of another
// PlanVersion, null where an object belongs, a member it does not know,
// data after the plan, a value whose bytes do not match its fingerprint,
// and a file whose bytes do not match its "sha256" digest (changed after
// it was written; see WriteTo).
func ReadPlan(r io.Reader) (*Plan, error) {
	p, err := readPlan(r)
	if se, ok := errors.AsType[*spillError](err); ok {
		// Not the file's fault: where its values were to be kept.
		return nil, fmt.Errorf("smimesync: reading the plan: %w", se.err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPlanFile, err)
	}
	return p, nil
}

func readPlan(r io.Reader) (_ *Plan, err error) {
	// The values of its writes go to the plan's temporary file as they
	// are read.
	p := &Plan{}
	sp := attachSpill(p)
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	th := &tailHasher{r: r, h: sha256.New(), n: digestTrailerLen}
	dec := json.NewDecoder(bufio.NewReaderSize(th, 64<<10))
	dec.DisallowUnknownFields()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	members := map[string]json.RawMessage{}
	var (
		sawChange bool
		digest    string
	)
	rows := newRowSet(sp)
	for i := 0; dec.More(); i++ {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		if _, dup := members[key]; dup || (key == "changes" && sawChange) {
			return nil, fmt.Errorf("member %q twice", key)
		}
		switch key {
		case "changes":
			sawChange = true
			if err := readChanges(dec, sp, rows); err != nil {
				return nil, err
			}
			continue
		case "sha256":
			if err := dec.Decode(&digest); err != nil {
				return nil, fmt.Errorf("sha256: %w", err)
			}
			continue
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if bytes.Equal(raw, []byte("null")) {
			return nil, fmt.Errorf("%s: null", key)
		}
		members[key] = raw
		// The marker and the version come first: a file of another kind
		// is refused before its bulk is read.
		switch i {
		case 0:
			var f string
			if key != "format" || json.Unmarshal(raw, &f) != nil || f != PlanFormat {
				return nil, fmt.Errorf("not a smimesync plan file: its first member is not \"format\": %q", PlanFormat)
			}
		case 1:
			var v int
			if key != "version" || json.Unmarshal(raw, &v) != nil {
				return nil, errors.New("no \"version\" after \"format\"")
			}
			if v != PlanVersion {
				return nil, fmt.Errorf("version %d, this program reads version %d", v, PlanVersion)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the plan")
	}
	if len(members) < 2 {
		return nil, fmt.Errorf("not a smimesync plan file: no \"format\": %q", PlanFormat)
	}
	for _, k := range []string{"made_against", "summary"} {
		if _, ok := members[k]; !ok {
			return nil, fmt.Errorf("no %q member", k)
		}
	}
	if !sawChange {
		return nil, errors.New(`no "changes" member`)
	}
	if digest == "" {
		return nil, errors.New(`no "sha256" member: the file is incomplete`)
	}
	want, err := hex.DecodeString(digest)
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("sha256 %q is not 64 hex digits", digest)
	}
	if !bytes.Equal(th.tail, digestTrailer(want)) || !bytes.Equal(th.h.Sum(nil), want) {
		return nil, errors.New("its content does not match its sha256: the file was changed after it was written")
	}

	// Every member but the changes, strictly, into the header.
	var obj bytes.Buffer
	obj.WriteByte('{')
	first := true
	for k, v := range members {
		if !first {
			obj.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		obj.Write(kb)
		obj.WriteByte(':')
		obj.Write(v)
	}
	obj.WriteByte('}')
	h := planHeader{Plan: p}
	hd := json.NewDecoder(&obj)
	hd.DisallowUnknownFields()
	if err := hd.Decode(&h); err != nil {
		return nil, err
	}
	p.rows = rows
	rows.index()
	if u := h.Unlisted; u != nil {
		if p.unlisted, err = unlistedFrom(u.Keys, u.Counts); err != nil {
			return nil, err
		}
		if c := u.Counts; c.Entries != p.unlisted.len() || c.Unchanged != c.Entries || c.Memoized != c.Entries {
			return nil, errors.New("the unlisted entries' counts do not count their keys")
		}
	}
	if got := p.summarize(); !summariesEqual(got, p.Summary) {
		return nil, errors.New("its summary does not count its changes")
	}
	p.cookie = h.Cookie
	o := h.Origin
	p.origin = &o
	p.loaded = true
	return p, nil
}

// summariesEqual compares two summaries (Dropped, a map, by content).
func summariesEqual(a, b Summary) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// readChanges reads the "changes" array, one change at a time, and keeps
// the values of its writes in sp.
func readChanges(dec *json.Decoder, sp *spill, rows *rowSet) error {
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return errors.New("changes: not an array")
	}
	for n := 1; dec.More(); n++ {
		var rec changeRecord
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("change %d: %w", n, err)
		}
		if rec.Change == nil {
			return fmt.Errorf("change %d: null or empty", n)
		}
		c := rec.Change
		if err := c.restore(rec.Apply); err != nil {
			return fmt.Errorf("change %d (%s): %w", n, c.User, err)
		}
		if err := sp.keep(c); err != nil {
			return &spillError{fmt.Errorf("change %d (%s): %w", n, c.User, err)}
		}
		if err := rows.add(c); err != nil {
			return &spillError{fmt.Errorf("change %d (%s): %w", n, c.User, err)}
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if err := rows.flush(); err != nil {
		return &spillError{err}
	}
	return nil
}

// restore sets c's unexported fields from its saved record, and checks
// that they fit together.
func (c *Change) restore(a *applyRecord) error {
	if c.Outcome != "" {
		return fmt.Errorf("outcome %q in a plan", c.Outcome)
	}
	if (c.Writes() || c.Action == ActionUnchanged) && (c.Recipient == nil || c.Recipient.ID == "") {
		return fmt.Errorf("action %s without a recipient", c.Action)
	}
	if a == nil {
		return nil
	}
	c.entry = a.Entry
	if w := a.Write; w != nil {
		for i, vals := range [][]planValue{w.UserCertificate, w.UserSMIMECertificate} {
			for _, v := range vals {
				if c.Writes() != (v.Value != nil) {
					if c.Writes() {
						return fmt.Errorf("write of %s without its value", v.SHA256)
					}
					return fmt.Errorf("value %s on a change that writes nothing", v.SHA256)
				}
				if v.Value != nil && sha256.Sum256(v.Value) != v.SHA256 {
					return fmt.Errorf("value does not match its sha256 %s", v.SHA256)
				}
				c.desiredFP[i] = append(c.desiredFP[i], v.SHA256)
				if v.Value != nil {
					if i == 0 {
						c.desired.UserCertificate = append(c.desired.UserCertificate, v.Value)
					} else {
						c.desired.UserSMIMECertificate = append(c.desired.UserSMIMECertificate, v.Value)
					}
				}
			}
		}
	}
	if pr := a.Prune; pr != nil {
		if c.entry == nil {
			return errors.New("prune without its directory entry")
		}
		for i, vals := range [][]planValue{pr.UserCertificate, pr.UserSMIMECertificate} {
			attr := []string{cloud.AttrUserCertificate, cloud.AttrUserSMIMECertificate}[i]
			for _, v := range vals {
				if v.Value == nil || sha256.Sum256(v.Value) != v.SHA256 {
					return fmt.Errorf("prune value %s does not match its sha256", v.SHA256)
				}
				if c.prune == nil {
					c.prune = map[string][][]byte{}
				}
				c.prune[attr] = append(c.prune[attr], v.Value)
			}
		}
	}
	return nil
}

// CheckPlan returns the error Apply would return because plan is stale
// (wrapping [ErrStalePlan]), or nil: for a plan made by Plan, another
// Apply saved the state since (or, over a [RecordStore] of this package,
// recorded writes in it: see [StateView]); for a plan read by
// [ReadPlan], the state is not the one it was made against, or the
// Syncer's sink or source is not the one it was made with. A program that applies several plans checks
// them all first, holding the locks ([Syncer.Lock]), so that none is
// applied unless all can be.
func (s *Syncer) CheckPlan(ctx context.Context, plan *Plan) error {
	if plan == nil || (plan.state == nil && !plan.loaded) {
		return errors.New("smimesync: Apply needs a plan made by Plan or read by ReadPlan")
	}
	load := s.state().Load
	if !plan.loaded {
		load = s.header // only its generation and count of writes are compared
	}
	cur, err := load(ctx)
	if err != nil {
		return err
	}
	return s.checkFresh(plan, cur)
}

// checkFresh is CheckPlan with the current state loaded.
func (s *Syncer) checkFresh(plan *Plan, cur *Snapshot) error {
	if !plan.loaded {
		// A plan made before another Apply saved the state would write
		// from stale knowledge and move the cookie back. Over a
		// RecordStore, so would one made before an Apply that died
		// recorded writes (the count of writes moved, not the
		// generation).
		if plan.state.part != nil {
			return plan.state.freshAgainst(cur)
		}
		if cur.Generation != plan.state.Generation {
			return fmt.Errorf("%w: the state was saved again after this plan was made (generation %d, plan %d); plan again", ErrStalePlan, cur.Generation, plan.state.Generation)
		}
		return nil
	}
	o := plan.origin
	if id := identity(s.Sink); id != o.Sink {
		return fmt.Errorf("%w: the plan was made for the sink %s, not %s", ErrStalePlan, o.Sink, id)
	}
	if id := identity(s.Source); id != o.Source {
		return fmt.Errorf("%w: the plan was made for the source %s, not %s", ErrStalePlan, o.Source, id)
	}
	if cur.Generation != o.StateGeneration {
		return fmt.Errorf("%w: the state was saved again after this plan was made (generation %d, plan %d): another sync ran; plan again", ErrStalePlan, cur.Generation, o.StateGeneration)
	}
	sum, err := snapshotSHA256(cur)
	if err != nil {
		return err
	}
	if sum != o.StateSHA256 {
		return fmt.Errorf("%w: the state changed after this plan was made (it is not the state the plan read, though of the same generation: writes were recorded, or it is another state); plan again", ErrStalePlan)
	}
	return nil
}
