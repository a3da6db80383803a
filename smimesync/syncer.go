package smimesync

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// DefaultMaxRemovals is the [Guard]'s default: like Microsoft's deletion
// threshold, a run that would take certificates away from more than 500
// recipients stops until someone confirms it.
const DefaultMaxRemovals = 500

// DefaultConcurrency is how many sink calls a [Syncer] makes at once unless
// told otherwise.
const DefaultConcurrency = 8

// Action is what a plan does to one recipient.
type Action string

// The actions of a [Change].
const (
	// ActionAdd: the recipient carries no certificate and gets some.
	ActionAdd Action = "add"
	// ActionReplace: the recipient's set changes (or is not known and is
	// written whole).
	ActionReplace Action = "replace"
	// ActionRemove: every certificate the recipient carries is removed.
	ActionRemove Action = "remove"
	// ActionUnchanged: the recipient already carries exactly what the
	// policy keeps; nothing is written.
	ActionUnchanged Action = "unchanged"
	// ActionSkip: the recipient is left alone; Reason says why.
	ActionSkip Action = "skip"
)

// Skip reasons of a [Change], besides a sink's own ReadOnly text.
const (
	// SkipNoRecipient: no cloud recipient matches the entry.
	SkipNoRecipient = "no-recipient"
	// SkipDeleted: the entry was deleted in the directory. What was
	// published stays; the Syncer forgets it.
	SkipDeleted = "deleted"
	// SkipConflict: another directory entry resolves to the same
	// recipient; neither is written until that is resolved (and a full
	// pass, or a change to the entry, brings it back).
	SkipConflict = "conflict"
	// SkipCurrentUnknown: the sink cannot read what the recipient carries,
	// nothing was published before, and nothing is to be published:
	// writing an empty set might remove certificates someone else put
	// there.
	SkipCurrentUnknown = "current-unknown"
	// SkipError: looking the recipient up failed; Error says how.
	SkipError = "error"
)

// Value is one attribute value in a [Change].
type Value struct {
	SHA256    Fingerprint `json:"sha256"`
	Attribute string      `json:"attribute"`
	Reasons   []Reason    `json:"reasons,omitempty"`
	Notes     []string    `json:"notes,omitempty"`
	// NotAfter is when the certificate expires: for a blob, the
	// certificate of the user's chosen by the policy (zero when the value
	// could not be parsed).
	NotAfter time.Time `json:"notAfter,omitzero"`
}

// Change is the plan for one directory entry and its recipient.
type Change struct {
	// ID is the directory entry's ID; User names it for people (UPN,
	// mail or DN); DN and Source are the entry's.
	ID     string `json:"id"`
	User   string `json:"user"`
	DN     string `json:"dn,omitempty"`
	Source string `json:"source,omitempty"`
	// Recipient is the cloud recipient, when found.
	Recipient *cloud.Recipient `json:"recipient,omitempty"`
	// Action is what the plan does.
	Action Action `json:"action"`
	// Reason says why a change is skipped.
	Reason string `json:"reason,omitempty"`
	// Keep and Drop are the policy's decisions on the entry's values.
	Keep []Value `json:"keep"`
	Drop []Value `json:"drop"`
	// Removes lists the certificates the recipient carries now that the
	// change takes away (when known).
	Removes []Fingerprint `json:"removes,omitempty"`
	// CurrentFrom says where the recipient's current set came from:
	// "sink", "state" (the sink cannot read it back; what was last
	// published) or "unknown".
	CurrentFrom string `json:"currentFrom,omitempty"`
	// Outcome is set by Apply: "written", "failed", "not-writable", or
	// empty when nothing was to be written.
	Outcome string `json:"outcome,omitempty"`
	// Error carries a lookup or write error's text.
	Error string `json:"error,omitempty"`
	// Retried is true when the entry did not come from this read of the
	// directory but from the state: an earlier pass skipped it.
	Retried bool `json:"retried,omitempty"`

	desired cloud.Certificates
	// desiredFP holds desired's fingerprints: desired itself is kept only
	// for the changes Apply writes.
	desiredFP [2][]Fingerprint
	prune     map[string][][]byte
	entry     *directory.Entry
	// runWide is a sink failure that every other call would meet too
	// (cloud.ErrUnavailable): the pass stops and reports it once.
	runWide error
}

// Writes reports whether applying the change writes to the sink.
func (c *Change) Writes() bool {
	return c.Action == ActionAdd || c.Action == ActionReplace || c.Action == ActionRemove
}

// Summary counts a plan's or a report's changes.
type Summary struct {
	Entries   int `json:"entries"`
	Add       int `json:"add"`
	Replace   int `json:"replace"`
	Remove    int `json:"remove"`
	Unchanged int `json:"unchanged"`
	Skip      int `json:"skip"`
	// Losing counts recipients that would lose, or may lose, at least one
	// certificate they carry now: a write that takes a certificate away,
	// and a write over a set the sink cannot read back and the state does
	// not know (Overwriting). The guard limits it.
	Losing int `json:"losing"`
	// Overwriting counts the writes over an unknown set (part of Losing).
	Overwriting int `json:"overwriting"`
	// Pruning counts entries whose values would be removed from the
	// directory by the write-back; the guard limits it too.
	Pruning int `json:"pruning"`
	// Retried counts entries planned again from the state because an
	// earlier pass skipped them (no recipient yet, a conflict, an error).
	Retried int `json:"retried"`
	// KeptValues and DroppedValues count attribute values; Dropped
	// breaks the drops down by reason.
	KeptValues    int            `json:"keptValues"`
	DroppedValues int            `json:"droppedValues"`
	Dropped       map[Reason]int `json:"dropped,omitempty"`
	// Written, Failed and NotWritable are filled in by Apply. Failed
	// counts failed writes and failed lookups.
	Written     int `json:"written"`
	Failed      int `json:"failed"`
	NotWritable int `json:"notWritable"`
}

// Plan is what a Syncer intends to do. Make one with [Syncer.Plan], look at
// it, then hand it to [Syncer.Apply].
type Plan struct {
	// Changes holds one Change per entry read, sorted by ID.
	Changes []*Change `json:"changes"`
	// Summary counts them.
	Summary Summary `json:"summary"`
	// Full is true when the source read every entry in scope.
	Full bool `json:"full"`
	// Started and Finished time the planning.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Force lets Apply go ahead even when the guard would stop it: the
	// override for one run.
	Force bool `json:"-"`

	cookie  []byte
	state   *Snapshot
	applied bool
}

// Report is the outcome of [Syncer.Apply]: the plan's changes with their
// outcomes, and counts. It is JSON-serialisable.
type Report struct {
	Plan
	// DryRun is true when nothing was written.
	DryRun bool `json:"dryRun"`
	// Errors lists every error of the run, each naming its recipient.
	Errors []string `json:"errors,omitempty"`
	// CookieAdvanced is true when the source's delta cookie was saved:
	// every write and lookup succeeded. Entries skipped for want of a
	// recipient, or for a conflict, do not hold the cookie back: the state
	// keeps them and every later pass plans them again until they are
	// published or leave the directory.
	CookieAdvanced bool `json:"cookieAdvanced"`
	// StateSaved is true when Apply saved the state (it does unless the
	// guard stopped it or the save itself failed).
	StateSaved bool `json:"stateSaved"`
}

// GuardError is returned by Apply when a plan would take certificates from
// more recipients than the guard allows. It wraps [ErrGuardTripped].
type GuardError struct {
	// Losing recipients would (or may) lose certificates; Pruning entries
	// would have values removed from the directory; Max is the limit for
	// each.
	Losing, Pruning, Max int
}

func (e *GuardError) Error() string {
	what := fmt.Sprintf("%d recipients would lose certificates", e.Losing)
	if e.Pruning > e.Max {
		what = fmt.Sprintf("%d directory entries would have values removed", e.Pruning)
	}
	return fmt.Sprintf("smimesync: %s, more than the guard's %d; nothing was written (review the plan, then force it or raise the limit)", what, e.Max)
}

// Unwrap returns ErrGuardTripped.
func (e *GuardError) Unwrap() error { return ErrGuardTripped }

// ErrStalePlan is wrapped by the error Apply returns for a plan made before
// the state was last saved.
var ErrStalePlan = errors.New("smimesync: plan is older than the saved state")

// MaxPending bounds how many skipped entries the state keeps to plan again
// (see Report.CookieAdvanced); beyond it they wait for the next full pass.
const MaxPending = 10000

// ErrChangesFailed is wrapped by the error Apply returns when writes or
// lookups failed (and nothing worse happened); the report lists them.
var ErrChangesFailed = errors.New("changes failed")

// ErrGuardTripped is wrapped by the error Apply returns when the
// mass-change guard stops a run.
var ErrGuardTripped = errors.New("smimesync: mass-change guard tripped")

// Guard limits how many recipients one run may take certificates from, and
// how many directory entries the write-back may change.
type Guard struct {
	// MaxRemovals is the most recipients that may lose (or may lose: see
	// Summary.Losing) a certificate in one run, and the most entries the
	// write-back may prune; 0 means DefaultMaxRemovals; GuardOff (-1)
	// turns the guard off. Any other negative value is a mistake: Plan and
	// Apply refuse it with ErrInvalidConfig rather than guess.
	MaxRemovals int
}

// GuardOff is the Guard.MaxRemovals value that turns the guard off.
const GuardOff = -1

// MaxConcurrency is the largest Syncer.Concurrency accepted: every call in
// flight holds a connection and its buffers (200,000 used 560 MB), and
// Exchange Online and Graph throttle an application long before 256 calls
// in flight.
const MaxConcurrency = 256

// ErrInvalidConfig is wrapped by the error Plan and Apply return for a
// Syncer whose settings are out of range (a negative Concurrency, a
// Guard.MaxRemovals below GuardOff): a slip, which is refused instead of
// being read as a default or as "off".
var ErrInvalidConfig = errors.New("smimesync: invalid Syncer setting")

// validate refuses settings that are out of range.
func (s *Syncer) validate() error {
	if s.Concurrency < 0 || s.Concurrency > MaxConcurrency {
		return fmt.Errorf("%w: Concurrency %d: use 0 (DefaultConcurrency) or 1 to %d", ErrInvalidConfig, s.Concurrency, MaxConcurrency)
	}
	if s.Guard.MaxRemovals < GuardOff {
		return fmt.Errorf("%w: Guard.MaxRemovals %d: use GuardOff (-1), 0 (DefaultMaxRemovals) or 1 or more", ErrInvalidConfig, s.Guard.MaxRemovals)
	}
	return nil
}

func (g Guard) max() int {
	if g.MaxRemovals == 0 {
		return DefaultMaxRemovals
	}
	return g.MaxRemovals
}

// Prune configures the optional write-back to the directory (see
// [directory.Pruner]). It is off unless Reasons is set and the source
// implements directory.Pruner. Only values that are useless whatever the
// configuration may be pruned: see [PrunableReasons].
type Prune struct {
	// Reasons lists the drop reasons whose values are removed from the
	// directory, for example ReasonExpired and ReasonOverLimit. Apply
	// refuses a reason not in PrunableReasons.
	Reasons []Reason
}

// PrunableReasons are the drop reasons the write-back may act on: the
// value is useless in itself (expired, revoked, damaged, the wrong kind of
// CMS object, or beyond the limit). The other reasons depend on settings
// or on other attributes (the user's addresses, the configured roots and
// CAs) or keep data that serves other purposes (a TLS or smart-card
// certificate, Outlook's security settings, a certificate that becomes
// valid next month): a mistake there would delete good data from the
// directory, so they are never pruned.
func PrunableReasons() []Reason {
	return []Reason{ReasonExpired, ReasonRevoked, ReasonOverLimit, ReasonUnparseable, ReasonWrongContentType, ReasonNoCertificates}
}

// ErrUnsafePrune is returned by Plan when Prune names a reason outside
// PrunableReasons.
var ErrUnsafePrune = errors.New("smimesync: prune reason is not safe to act on")

// Progress says how far a Plan or an Apply has come.
type Progress struct {
	// Stage is "plan" or "apply".
	Stage string
	// Done counts entries planned, or writes attempted.
	Done int
	// Total is the number of writes an Apply will attempt; 0 while
	// planning, as the source streams and its size is not known.
	Total int
}

// Syncer composes a directory source, a cloud sink, a policy and a state
// store. Its zero value is not usable: Source and Sink are required; every
// other field has a working default.
type Syncer struct {
	// Source yields the directory entries.
	Source directory.Source
	// Sink publishes to the cloud.
	Sink cloud.Sink
	// Policy decides what to keep; nil means the zero Policy.
	Policy *Policy
	// State keeps the delta cookie and what was published; nil keeps it
	// in memory for the Syncer's lifetime.
	State State
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Concurrency bounds the sink calls in flight; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Guard is the mass-change guard.
	Guard Guard
	// Prune turns on the write-back of dropped values to the directory.
	Prune Prune
	// Now returns the current time for reports and state; nil means
	// time.Now.
	Now func() time.Time
	// Progress, when not nil, is called as work proceeds: after every
	// entry planned and every write attempted. It is called from several
	// goroutines, never at once (calls are serialised), and must return
	// quickly.
	Progress func(Progress)

	memState MemoryState
	mu       sync.Mutex // serialises Apply
}

func (s *Syncer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (s *Syncer) policy() *Policy {
	if s.Policy != nil {
		return s.Policy
	}
	return &Policy{}
}

func (s *Syncer) state() State {
	if s.State != nil {
		return s.State
	}
	return &s.memState
}

func (s *Syncer) concurrency() int {
	if s.Concurrency > 0 {
		return s.Concurrency
	}
	return DefaultConcurrency
}

func (s *Syncer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Plan reads the source, runs the policy on every entry, looks up each
// recipient and what it carries, and returns what Apply would do. It writes
// nothing, to the sink or to the state. The source is asked for the changes
// since the saved cookie (a delta), or for everything when there is none.
func (s *Syncer) Plan(ctx context.Context) (*Plan, error) {
	return s.plan(ctx, false)
}

// PlanFull is Plan with the saved cookie ignored: the source reads every
// entry in scope. Applying the plan saves the new cookie as usual. A
// service runs one now and then, so that anything a delta could miss is
// caught.
func (s *Syncer) PlanFull(ctx context.Context) (*Plan, error) {
	return s.plan(ctx, true)
}

func (s *Syncer) plan(ctx context.Context, full bool) (*Plan, error) {
	if s.Source == nil || s.Sink == nil {
		return nil, errors.New("smimesync: Syncer needs a Source and a Sink")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	for _, r := range s.Prune.Reasons {
		if !slices.Contains(PrunableReasons(), r) {
			return nil, fmt.Errorf("%w: %q (prunable: %v)", ErrUnsafePrune, r, PrunableReasons())
		}
	}
	log := s.logger()
	if b, ok := s.policy().Revocation.(RevocationBudgeter); ok {
		// One pass budget for every revocation check of this plan.
		ctx = b.BeginPass(ctx)
	}
	plan := &Plan{Started: s.now()}
	if p, ok := s.Sink.(cloud.Preparer); ok {
		// Sign in on every pass, even one that will find nothing to do:
		// a refused secret must not pass for a quiet directory.
		if err := p.Prepare(ctx); err != nil {
			return nil, fmt.Errorf("smimesync: preparing the sink: %w", err)
		}
	}
	st, err := s.state().Load(ctx)
	if err != nil {
		return nil, err
	}
	plan.state = st

	cookie := st.Cookie
	if full {
		cookie = nil
	}
	changes, res, err := s.read(ctx, st, cookie)
	if errors.Is(err, directory.ErrStaleCookie) && cookie != nil {
		log.Warn("the source refused its delta cookie; reading everything", "err", err)
		cookie = nil
		changes, res, err = s.read(ctx, st, nil)
	}
	if err != nil {
		return nil, err
	}
	plan.cookie = res.Cookie
	plan.Full = res.Full || cookie == nil

	if !plan.Full {
		// Entries an earlier pass skipped (no recipient yet, a conflict, a
		// failed lookup) are planned again until they are published: a
		// delta will not bring them back by itself.
		seen := make(map[string]bool, len(changes))
		for _, c := range changes {
			seen[stateKey(c.Source, c.ID)] = true
		}
		pol := s.policy()
		for _, k := range slices.Sorted(maps.Keys(st.Pending)) {
			if e := st.Pending[k]; !seen[k] && e != nil {
				c := s.planEntry(ctx, pol, st, e)
				if c.runWide != nil {
					return nil, fmt.Errorf("smimesync: %w", c.runWide)
				}
				c.Retried = true
				changes = append(changes, c)
			}
		}
	}

	slices.SortFunc(changes, func(a, b *Change) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Source, b.Source))
	})
	markConflicts(changes, st, plan.Full)
	plan.Changes = changes
	plan.Summary = summarize(changes)
	plan.Finished = s.now()
	log.Info("plan", "entries", plan.Summary.Entries, "add", plan.Summary.Add, "replace", plan.Summary.Replace,
		"remove", plan.Summary.Remove, "unchanged", plan.Summary.Unchanged, "skip", plan.Summary.Skip,
		"retried", plan.Summary.Retried, "full", plan.Full, "duration", plan.Finished.Sub(plan.Started))
	return plan, nil
}

// read streams the source through the policy and the sink's lookups, with
// Concurrency workers.
func (s *Syncer) read(ctx context.Context, st *Snapshot, cookie []byte) ([]*Change, directory.Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	entries := make(chan *directory.Entry)
	var (
		mu      sync.Mutex
		changes []*Change
		wg      sync.WaitGroup
	)
	var runWide error // the first failure that every other lookup would meet too
	pol := s.policy()
	for range s.concurrency() {
		wg.Go(func() {
			for e := range entries {
				c := s.planEntry(ctx, pol, st, e)
				mu.Lock()
				if c.runWide != nil {
					if runWide == nil {
						runWide = c.runWide
						cancel()
					}
					mu.Unlock()
					continue
				}
				changes = append(changes, c)
				if s.Progress != nil {
					s.Progress(Progress{Stage: "plan", Done: len(changes)})
				}
				mu.Unlock()
			}
		})
	}
	res, err := s.Source.Read(ctx, directory.Pass{Cookie: cookie}, func(e *directory.Entry) error {
		select {
		case entries <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(entries)
	wg.Wait()
	if runWide != nil {
		// Reported once, for the pass, not as every user's failure.
		return nil, res, fmt.Errorf("smimesync: %w", runWide)
	}
	if err != nil {
		return nil, res, fmt.Errorf("smimesync: reading the directory: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, res, err
	}
	return changes, res, nil
}

// planEntry evaluates one entry and compares it with its recipient. The
// change keeps certificate bytes only where Apply needs them: the values of
// a write, and the entry when it is to be pruned or planned again; a plan
// of a large directory would hold them all otherwise.
func (s *Syncer) planEntry(ctx context.Context, pol *Policy, st *Snapshot, e *directory.Entry) *Change {
	c := s.decide(ctx, pol, st, e)
	for _, v := range c.desired.UserCertificate {
		c.desiredFP[0] = append(c.desiredFP[0], sha256.Sum256(v))
	}
	for _, v := range c.desired.UserSMIMECertificate {
		c.desiredFP[1] = append(c.desiredFP[1], sha256.Sum256(v))
	}
	if !c.Writes() {
		c.desired = cloud.Certificates{}
	}
	if c.prune == nil && !c.pending() {
		c.entry = nil
	}
	return c
}

// decide is planEntry's judgement.
func (s *Syncer) decide(ctx context.Context, pol *Policy, st *Snapshot, e *directory.Entry) *Change {
	log := s.logger()
	c := &Change{ID: e.ID, User: userName(e), DN: e.DN, Source: e.Source, Keep: []Value{}, Drop: []Value{}}
	if e.Deleted {
		c.Action, c.Reason = ActionSkip, SkipDeleted
		return c
	}
	v := pol.Evaluate(ctx, e)
	for _, d := range v.Decisions() {
		val := Value{SHA256: d.SHA256, Attribute: d.Attribute, Reasons: d.Reasons, Notes: d.Notes}
		if d.Certificate != nil {
			val.NotAfter = d.Certificate.NotAfter
		}
		if d.Keep {
			c.Keep = append(c.Keep, val)
			continue
		}
		c.Drop = append(c.Drop, val)
		if s.pruneReason(d.Reasons) {
			if c.prune == nil {
				c.prune = map[string][][]byte{}
			}
			c.prune[d.Attribute] = append(c.prune[d.Attribute], d.Raw)
		}
		log.Debug("drop", "user", c.User, "attribute", d.Attribute, "sha256", d.SHA256.String(), "reasons", d.Reasons)
	}
	c.desired = v.Kept()
	c.entry = e
	if c.prune != nil {
		// Never prune a value the policy keeps (the same bytes may stand
		// twice).
		kept := fingerprints(c.desired)
		for attr, vals := range c.prune {
			c.prune[attr] = slices.DeleteFunc(vals, func(v []byte) bool { _, ok := kept[sha256.Sum256(v)]; return ok })
		}
	}

	r, err := s.Sink.Find(ctx, e)
	switch {
	case errors.Is(err, cloud.ErrUnavailable):
		c.runWide = err
		return c
	case errors.Is(err, cloud.ErrNotFound):
		c.Action, c.Reason = ActionSkip, SkipNoRecipient
		return c
	case err != nil:
		c.Action, c.Reason, c.Error = ActionSkip, SkipError, err.Error()
		return c
	}
	c.Recipient = r
	if r.ReadOnly != "" {
		c.Action, c.Reason = ActionSkip, r.ReadOnly
		return c
	}

	want := fingerprints(c.desired)
	var have map[Fingerprint]string
	cur, err := s.Sink.Current(ctx, r)
	switch {
	case err == nil:
		c.CurrentFrom = "sink"
		have = fingerprints(cur)
	case errors.Is(err, cloud.ErrUnreadable):
		if p, ok := st.Published[stateKey(e.Source, e.ID)]; ok && p.Recipient == r.ID {
			c.CurrentFrom = "state"
			have = map[Fingerprint]string{}
			for _, f := range p.UserCertificate {
				have[f] = cloud.AttrUserCertificate
			}
			for _, f := range p.UserSMIMECertificate {
				have[f] = cloud.AttrUserSMIMECertificate
			}
		} else {
			c.CurrentFrom = "unknown"
		}
	case errors.Is(err, cloud.ErrUnavailable):
		c.runWide = err
		return c
	default:
		c.Action, c.Reason, c.Error = ActionSkip, SkipError, err.Error()
		return c
	}

	switch {
	case have == nil && len(want) == 0:
		c.Action, c.Reason = ActionSkip, SkipCurrentUnknown
	case have == nil:
		c.Action = ActionReplace
	case maps.Equal(have, want): // the same fingerprints, each in the same attribute
		c.Action = ActionUnchanged
	case len(want) == 0:
		c.Action = ActionRemove
	case len(have) == 0:
		c.Action = ActionAdd
	default:
		c.Action = ActionReplace
	}
	for f := range have {
		if _, ok := want[f]; !ok {
			c.Removes = append(c.Removes, f)
		}
	}
	slices.SortFunc(c.Removes, func(a, b Fingerprint) int { return cmp.Compare(a.String(), b.String()) })
	return c
}

// pending reports whether a skipped change is to be planned again by later
// passes: it had no recipient yet, or its lookup failed. (A conflict is
// left to the next full pass, which sees both entries.)
func (c *Change) pending() bool {
	if c.Action != ActionSkip || c.entry == nil {
		return false
	}
	return c.Reason == SkipNoRecipient || c.Reason == SkipError
}

// stateKey is the key of an entry in the state: its ID, qualified by its
// source's name when there are several sources.
func stateKey(source, id string) string {
	if source == "" {
		return id
	}
	return source + "\x00" + id
}

func (s *Syncer) pruneReason(rs []Reason) bool {
	for _, r := range rs {
		if slices.Contains(s.Prune.Reasons, r) {
			return true
		}
	}
	return false
}

// markConflicts skips every change whose recipient is also the recipient
// of another entry: in this plan or, when the plan is a delta, an entry of
// an earlier run (in the state) that this read did not include.
func markConflicts(changes []*Change, st *Snapshot, full bool) {
	inPlan := make(map[string]bool, len(changes))
	owners := map[string][]*Change{}
	for _, c := range changes {
		inPlan[stateKey(c.Source, c.ID)] = true
		if c.Recipient != nil {
			owners[c.Recipient.ID] = append(owners[c.Recipient.ID], c)
		}
	}
	earlier := map[string]string{}
	if !full {
		for k, p := range st.Published {
			if !inPlan[k] {
				earlier[p.Recipient] = strings.ReplaceAll(k, "\x00", ":")
			}
		}
	}
	for rid, cs := range owners {
		prev, held := earlier[rid]
		if len(cs) < 2 && !held {
			continue
		}
		for _, c := range cs {
			var others []string
			for _, o := range cs {
				if o != c {
					others = append(others, cmp.Or(o.Source, "?")+":"+o.ID)
				}
			}
			if held {
				others = append(others, prev)
			}
			slices.Sort(others)
			c.Action, c.Reason = ActionSkip, SkipConflict
			c.Error = fmt.Sprintf("recipient %s is also the recipient of %s", recipientName(c.Recipient), strings.Join(others, ", "))
			c.Removes = nil
		}
	}
}

func summarize(changes []*Change) Summary {
	var s Summary
	s.Entries = len(changes)
	for _, c := range changes {
		switch c.Action {
		case ActionAdd:
			s.Add++
		case ActionReplace:
			s.Replace++
		case ActionRemove:
			s.Remove++
		case ActionUnchanged:
			s.Unchanged++
		case ActionSkip:
			s.Skip++
		}
		switch {
		case c.Writes() && c.CurrentFrom == "unknown":
			s.Losing++
			s.Overwriting++
		case c.Writes() && len(c.Removes) > 0:
			s.Losing++
		}
		if len(c.prune[cloud.AttrUserCertificate])+len(c.prune[cloud.AttrUserSMIMECertificate]) > 0 {
			s.Pruning++
		}
		if c.Retried {
			s.Retried++
		}
		s.KeptValues += len(c.Keep)
		s.DroppedValues += len(c.Drop)
		for _, d := range c.Drop {
			if s.Dropped == nil {
				s.Dropped = map[Reason]int{}
			}
			for _, r := range d.Reasons {
				s.Dropped[r]++
			}
		}
		switch c.Outcome {
		case "written":
			s.Written++
		case "failed":
			s.Failed++
		case "not-writable":
			s.NotWritable++
		}
	}
	return s
}

// CheckGuard returns the *GuardError that Apply would return for plan, or
// nil when the guard lets it through (plan.Force set, the guard off, or
// the plan within the limit). A dry run uses it to say that the real run
// would stop.
func (s *Syncer) CheckGuard(plan *Plan) error {
	if err := s.checkGuard(plan); err != nil {
		return err
	}
	return nil
}

func (s *Syncer) checkGuard(plan *Plan) *GuardError {
	if max := s.Guard.max(); max >= 0 && (plan.Summary.Losing > max || plan.Summary.Pruning > max) && !plan.Force {
		return &GuardError{Losing: plan.Summary.Losing, Pruning: plan.Summary.Pruning, Max: max}
	}
	return nil
}

// Apply writes a plan's changes to the sink, at most Concurrency at a time,
// then saves the state: what each recipient now carries, and the source's
// delta cookie if and only if every change was applied (so a failed write
// is retried by the next pass). It refuses a plan that would take
// certificates from more recipients than the Guard allows, unless
// plan.Force is set; the error then wraps ErrGuardTripped and nothing is
// written. When the State is a [Preparer] and its Prepare fails, nothing
// is written either, and the plan may be applied again once the cause is
// fixed. Otherwise a plan can be applied once.
//
// The returned report is never nil when the plan was valid; the error
// summarises the write failures, each of which the report lists.
func (s *Syncer) Apply(ctx context.Context, plan *Plan) (*Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if plan == nil || plan.state == nil {
		return nil, errors.New("smimesync: Apply needs a plan made by Plan")
	}
	if plan.applied {
		return nil, errors.New("smimesync: plan was already applied")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	log := s.logger()
	rep := &Report{Plan: *plan}
	if err := s.checkGuard(plan); err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		log.Warn("guard tripped", "losing", err.Losing, "pruning", err.Pruning, "max", err.Max)
		return rep, err
	}
	// A plan made before another Apply saved the state would write from
	// stale knowledge and move the cookie back.
	if cur, err := s.state().Load(ctx); err != nil {
		return nil, err
	} else if cur.Generation != plan.state.Generation {
		return nil, fmt.Errorf("%w: the state was saved again after this plan was made (generation %d, plan %d); plan again", ErrStalePlan, cur.Generation, plan.state.Generation)
	}
	// Whatever records the writes must be ready before the first one:
	// a write the state cannot record would be made again, or forgotten,
	// after a crash.
	if p, ok := s.state().(Preparer); ok && plan.Summary.Add+plan.Summary.Replace+plan.Summary.Remove > 0 {
		if err := p.Prepare(ctx); err != nil {
			rep.Errors = append(rep.Errors, "preparing the state: "+err.Error())
			log.Error("the state cannot record writes; nothing was written", "err", err)
			return rep, fmt.Errorf("smimesync: nothing was written: %w", err)
		}
	}
	plan.applied = true
	st := plan.state
	now := s.now()
	if st.Pending == nil {
		st.Pending = map[string]*directory.Entry{}
	}

	recorder, _ := s.state().(Recorder)
	var recordErr, unavailable error
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu       sync.Mutex
		failed   int
		sem      = make(chan struct{}, s.concurrency())
		wg       sync.WaitGroup
		total    = plan.Summary.Add + plan.Summary.Replace + plan.Summary.Remove
		attempts int
	)
	for _, c := range rep.Changes {
		key := stateKey(c.Source, c.ID)
		mu.Lock()
		if c.pending() {
			if len(st.Pending) < MaxPending || st.Pending[key] != nil {
				st.Pending[key] = c.entry
			} else {
				log.Warn("too many entries waiting for a recipient; this one waits for the next full pass", "user", c.User, "max", MaxPending)
			}
		} else {
			delete(st.Pending, key)
		}
		switch {
		case c.Action == ActionSkip && (c.Reason == SkipDeleted || c.Reason == SkipNoRecipient):
			// Gone, or no longer has a recipient: what was published
			// for it no longer holds a recipient.
			delete(st.Published, key)
		case c.Action == ActionUnchanged:
			if _, ok := st.Published[key]; !ok || c.CurrentFrom == "sink" {
				st.Published[key] = published(c, now)
			}
		case c.Action == ActionSkip && c.Reason == SkipError:
			failed++
			c.Outcome = "failed"
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %s", c.User, c.Error))
		}
		mu.Unlock()
		if !c.Writes() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			err := s.Sink.Write(ctx, c.Recipient, c.desired)
			var rerr error
			pub := published(c, s.now())
			if err == nil && recorder != nil {
				// Durably, before anything else: a crash from here on
				// must not forget this write.
				rerr = recorder.Record(context.WithoutCancel(ctx), key, pub)
			}
			mu.Lock()
			defer mu.Unlock()
			attempts++
			if s.Progress != nil {
				s.Progress(Progress{Stage: "apply", Done: attempts, Total: total})
			}
			if errors.Is(err, cloud.ErrUnavailable) {
				// Every other write would fail the same way: stop
				// starting them, and report the failure once.
				if unavailable == nil {
					unavailable = err
					stop()
					log.Error("the sink cannot be used; stopping the apply", "err", err)
				}
				c.Outcome, c.Error = "failed", err.Error()
				failed++
				return
			}
			if rerr != nil && recordErr == nil {
				// Stop starting writes: each one more without a durable
				// record could be repeated after a crash.
				recordErr = rerr
				stop()
				rep.Errors = append(rep.Errors, "recording writes: "+rerr.Error())
				log.Error("cannot record writes; stopping the apply", "err", rerr)
			}
			switch {
			case err == nil:
				c.Outcome = "written"
				st.Published[key] = pub
				log.Info("written", "user", c.User, "recipient", recipientName(c.Recipient), "action", c.Action,
					"certificates", c.desired.Len())
			case errors.Is(err, cloud.ErrNotWritable):
				c.Outcome, c.Error = "not-writable", err.Error()
				log.Warn("not writable", "user", c.User, "recipient", recipientName(c.Recipient), "err", err)
			default:
				c.Outcome, c.Error = "failed", err.Error()
				failed++
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s (%s): %v", c.User, recipientName(c.Recipient), err))
				log.Error("write failed", "user", c.User, "recipient", recipientName(c.Recipient), "err", err)
			}
		})
	}
	wg.Wait()
	cancelled := ctx.Err()
	if recordErr != nil {
		cancelled = recordErr
	}
	if unavailable != nil {
		cancelled = unavailable
	}
	if cancelled != nil {
		why := "not attempted: " + cancelled.Error()
		if unavailable != nil {
			why = "not attempted: the sink cannot be used (see the run's error)"
		}
		for _, c := range rep.Changes {
			if c.Writes() && c.Outcome == "" {
				c.Outcome, c.Error = "failed", why
				failed++
			}
		}
		rep.Errors = append(rep.Errors, "apply cancelled: "+cancelled.Error())
	}

	if failed == 0 && cancelled == nil {
		s.prune(ctx, rep)
	}

	if plan.Full && cancelled == nil {
		// Entries gone from a full read are out of scope: forget them, so
		// they do not hold their recipient against a newcomer.
		seen := make(map[string]bool, len(rep.Changes))
		for _, c := range rep.Changes {
			seen[stateKey(c.Source, c.ID)] = true
		}
		for k := range st.Published {
			if !seen[k] {
				delete(st.Published, k)
			}
		}
		for k := range st.Pending {
			if !seen[k] {
				delete(st.Pending, k)
			}
		}
	}
	st.LastRun = s.now()
	if failed == 0 && cancelled == nil {
		st.Cookie = plan.cookie
		st.LastGood = st.LastRun
		rep.CookieAdvanced = true
	}
	// Save even after a cancel: what was written must be remembered.
	saveCtx := context.WithoutCancel(ctx)
	if err := s.state().Save(saveCtx, st); err != nil {
		rep.Errors = append(rep.Errors, "saving state: "+err.Error())
		rep.CookieAdvanced = false
		rep.Summary = summarize(rep.Changes)
		rep.Finished = s.now()
		if !errors.Is(err, ErrStateUnwritable) {
			err = fmt.Errorf("%w: %w", ErrStateUnwritable, err)
		}
		return rep, fmt.Errorf("smimesync: saving state: %w", err)
	}
	rep.StateSaved = true
	rep.Summary = summarize(rep.Changes)
	rep.Finished = s.now()
	log.Info("applied", "written", rep.Summary.Written, "failed", rep.Summary.Failed,
		"notWritable", rep.Summary.NotWritable, "cookieAdvanced", rep.CookieAdvanced)
	if cancelled != nil {
		return rep, fmt.Errorf("smimesync: apply cancelled after %d writes: %w", rep.Summary.Written, cancelled)
	}
	if failed > 0 {
		return rep, fmt.Errorf("smimesync: %d %w (first: %s)", failed, ErrChangesFailed, rep.Errors[0])
	}
	return rep, nil
}

// prune removes dropped values from the directory when asked to.
func (s *Syncer) prune(ctx context.Context, rep *Report) {
	pr, ok := s.Source.(directory.Pruner)
	if !ok || len(s.Prune.Reasons) == 0 {
		return
	}
	for _, c := range rep.Changes {
		if c.entry == nil {
			continue
		}
		for _, attr := range []string{cloud.AttrUserCertificate, cloud.AttrUserSMIMECertificate} {
			vals := c.prune[attr]
			if len(vals) == 0 {
				continue
			}
			if err := pr.Prune(ctx, c.entry, attr, vals); err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s: pruning %s: %v", c.User, attr, err))
				s.logger().Error("prune failed", "user", c.User, "attribute", attr, "err", err)
			}
		}
	}
}

// Run plans and applies in one go.
func (s *Syncer) Run(ctx context.Context) (*Report, error) {
	plan, err := s.Plan(ctx)
	if err != nil {
		return nil, err
	}
	return s.Apply(ctx, plan)
}

// DryRun plans and returns the plan as a report, writing nothing.
func (s *Syncer) DryRun(ctx context.Context) (*Report, error) {
	plan, err := s.Plan(ctx)
	if err != nil {
		return nil, err
	}
	return &Report{Plan: *plan, DryRun: true}, nil
}

func published(c *Change, at time.Time) Published {
	return Published{Recipient: c.Recipient.ID, At: at, UserCertificate: c.desiredFP[0], UserSMIMECertificate: c.desiredFP[1]}
}

// fingerprints maps every value of c to its attribute.
func fingerprints(c cloud.Certificates) map[Fingerprint]string {
	m := make(map[Fingerprint]string, c.Len())
	for _, v := range c.UserCertificate {
		m[sha256.Sum256(v)] = cloud.AttrUserCertificate
	}
	for _, v := range c.UserSMIMECertificate {
		m[sha256.Sum256(v)] = cloud.AttrUserSMIMECertificate
	}
	return m
}

func userName(e *directory.Entry) string {
	return cmp.Or(e.UserPrincipalName, e.Mail, e.DN, e.ID)
}

func recipientName(r *cloud.Recipient) string {
	if r == nil {
		return ""
	}
	return cmp.Or(r.Name, r.ID)
}
