package smimesync

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	// recipient; neither is written until that is resolved.
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

	desired cloud.Certificates
	prune   map[string][][]byte
	entry   *directory.Entry
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
	// Losing counts recipients that would lose at least one certificate
	// they carry now: what the guard limits.
	Losing int `json:"losing"`
	// KeptValues and DroppedValues count attribute values; Dropped
	// breaks the drops down by reason.
	KeptValues    int            `json:"keptValues"`
	DroppedValues int            `json:"droppedValues"`
	Dropped       map[Reason]int `json:"dropped,omitempty"`
	// Written, Failed and NotWritable are filled in by Apply.
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
	// every change was applied.
	CookieAdvanced bool `json:"cookieAdvanced"`
}

// GuardError is returned by Apply when a plan would take certificates from
// more recipients than the guard allows. It wraps [ErrGuardTripped].
type GuardError struct {
	Losing, Max int
}

func (e *GuardError) Error() string {
	return fmt.Sprintf("smimesync: %d recipients would lose certificates, more than the guard's %d; nothing was written (review the plan, then force it or raise the limit)", e.Losing, e.Max)
}

// Unwrap returns ErrGuardTripped.
func (e *GuardError) Unwrap() error { return ErrGuardTripped }

// ErrGuardTripped is wrapped by the error Apply returns when the
// mass-change guard stops a run.
var ErrGuardTripped = errors.New("smimesync: mass-change guard tripped")

// Guard limits how many recipients one run may take certificates from.
type Guard struct {
	// MaxRemovals is the most recipients that may lose a certificate in
	// one run; 0 means DefaultMaxRemovals; a negative value turns the
	// guard off.
	MaxRemovals int
}

func (g Guard) max() int {
	if g.MaxRemovals == 0 {
		return DefaultMaxRemovals
	}
	return g.MaxRemovals
}

// Prune configures the optional write-back to the directory (see
// [directory.Pruner]). It is off unless Reasons is set and the source
// implements directory.Pruner.
type Prune struct {
	// Reasons lists the drop reasons whose values are removed from the
	// directory, for example ReasonExpired and ReasonOverLimit.
	Reasons []Reason
}

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
	mu       sync.Mutex // serialises Plan/Apply state access
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
	log := s.logger()
	plan := &Plan{Started: s.now()}
	st, err := s.state().Load(ctx)
	if err != nil {
		return nil, err
	}
	plan.state = st

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	entries := make(chan *directory.Entry)
	var (
		mu      sync.Mutex
		changes []*Change
		wg      sync.WaitGroup
	)
	pol := s.policy()
	for range s.concurrency() {
		wg.Go(func() {
			for e := range entries {
				c := s.planEntry(ctx, pol, st, e)
				mu.Lock()
				changes = append(changes, c)
				if s.Progress != nil {
					s.Progress(Progress{Stage: "plan", Done: len(changes)})
				}
				mu.Unlock()
			}
		})
	}
	cookie := st.Cookie
	if full {
		cookie = nil
	}
	res, rerr := s.Source.Read(ctx, directory.Pass{Cookie: cookie}, func(e *directory.Entry) error {
		select {
		case entries <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(entries)
	wg.Wait()
	if rerr != nil {
		return nil, fmt.Errorf("smimesync: reading the directory: %w", rerr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	plan.cookie = res.Cookie
	plan.Full = res.Full || cookie == nil

	slices.SortFunc(changes, func(a, b *Change) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Source, b.Source))
	})
	markConflicts(changes, st)
	plan.Changes = changes
	plan.Summary = summarize(changes)
	plan.Finished = s.now()
	log.Info("plan", "entries", plan.Summary.Entries, "add", plan.Summary.Add, "replace", plan.Summary.Replace,
		"remove", plan.Summary.Remove, "unchanged", plan.Summary.Unchanged, "skip", plan.Summary.Skip,
		"full", plan.Full, "duration", plan.Finished.Sub(plan.Started))
	return plan, nil
}

// planEntry evaluates one entry and compares it with its recipient.
func (s *Syncer) planEntry(ctx context.Context, pol *Policy, st *Snapshot, e *directory.Entry) *Change {
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
	if c.prune != nil {
		c.entry = e
	}

	r, err := s.Sink.Find(ctx, e)
	switch {
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
		if p, ok := st.Published[e.ID]; ok && p.Recipient == r.ID {
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
	default:
		c.Action, c.Reason, c.Error = ActionSkip, SkipError, err.Error()
		return c
	}

	switch {
	case have == nil && len(want) == 0:
		c.Action, c.Reason = ActionSkip, SkipCurrentUnknown
	case have == nil:
		c.Action = ActionReplace
	case sameSet(have, want):
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

func (s *Syncer) pruneReason(rs []Reason) bool {
	for _, r := range rs {
		if slices.Contains(s.Prune.Reasons, r) {
			return true
		}
	}
	return false
}

// markConflicts skips every change whose recipient is also the recipient
// of another entry, in this plan or, from an earlier run, in the state.
func markConflicts(changes []*Change, st *Snapshot) {
	inPlan := make(map[string]bool, len(changes))
	owners := map[string][]*Change{}
	for _, c := range changes {
		inPlan[c.ID] = true
		if c.Recipient != nil {
			owners[c.Recipient.ID] = append(owners[c.Recipient.ID], c)
		}
	}
	// An entry outside this plan that was last published to the same
	// recipient still owns it.
	earlier := map[string]string{}
	for id, p := range st.Published {
		if !inPlan[id] {
			earlier[p.Recipient] = id
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
		if c.Writes() && len(c.Removes) > 0 {
			s.Losing++
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

// Apply writes a plan's changes to the sink, at most Concurrency at a time,
// then saves the state: what each recipient now carries, and the source's
// delta cookie if and only if every change was applied (so a failed write
// is retried by the next pass). It refuses a plan that would take
// certificates from more recipients than the Guard allows, unless
// plan.Force is set; the error then wraps ErrGuardTripped and nothing is
// written. A plan can be applied once.
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
	log := s.logger()
	rep := &Report{Plan: *plan}
	if max := s.Guard.max(); max >= 0 && plan.Summary.Losing > max && !plan.Force {
		err := &GuardError{Losing: plan.Summary.Losing, Max: max}
		rep.Errors = append(rep.Errors, err.Error())
		log.Warn("guard tripped", "losing", err.Losing, "max", err.Max)
		return rep, err
	}
	plan.applied = true
	st := plan.state
	now := s.now()

	recorder, _ := s.state().(Recorder)
	var recordErr error
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
		switch {
		case c.Action == ActionSkip && c.Reason == SkipDeleted:
			mu.Lock()
			delete(st.Published, c.ID)
			mu.Unlock()
			continue
		case !c.Writes():
			if c.Action == ActionUnchanged {
				mu.Lock()
				if _, ok := st.Published[c.ID]; !ok || c.CurrentFrom == "sink" {
					st.Published[c.ID] = published(c, now)
				}
				mu.Unlock()
			}
			if c.Action == ActionSkip && c.Reason == SkipError {
				mu.Lock()
				failed++
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %s", c.User, c.Error))
				mu.Unlock()
			}
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
				rerr = recorder.Record(context.WithoutCancel(ctx), c.ID, pub)
			}
			mu.Lock()
			defer mu.Unlock()
			attempts++
			if s.Progress != nil {
				s.Progress(Progress{Stage: "apply", Done: attempts, Total: total})
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
				st.Published[c.ID] = pub
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
	if cancelled != nil {
		for _, c := range rep.Changes {
			if c.Writes() && c.Outcome == "" {
				c.Outcome, c.Error = "failed", "not attempted: "+cancelled.Error()
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
			seen[c.ID] = true
		}
		for id := range st.Published {
			if !seen[id] {
				delete(st.Published, id)
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
		return rep, fmt.Errorf("smimesync: saving state: %w", err)
	}
	rep.Summary = summarize(rep.Changes)
	rep.Finished = s.now()
	log.Info("applied", "written", rep.Summary.Written, "failed", rep.Summary.Failed,
		"notWritable", rep.Summary.NotWritable, "cookieAdvanced", rep.CookieAdvanced)
	if cancelled != nil {
		return rep, fmt.Errorf("smimesync: apply cancelled after %d writes: %w", rep.Summary.Written, cancelled)
	}
	if failed > 0 {
		return rep, fmt.Errorf("smimesync: %d changes failed (first: %s)", failed, rep.Errors[0])
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
	p := Published{Recipient: c.Recipient.ID, At: at}
	for _, v := range c.desired.UserCertificate {
		p.UserCertificate = append(p.UserCertificate, sha256.Sum256(v))
	}
	for _, v := range c.desired.UserSMIMECertificate {
		p.UserSMIMECertificate = append(p.UserSMIMECertificate, sha256.Sum256(v))
	}
	return p
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

// sameSet compares two sets by fingerprint and attribute, ignoring order.
func sameSet(a, b map[Fingerprint]string) bool {
	if len(a) != len(b) {
		return false
	}
	for f, attr := range a {
		if b[f] != attr {
			return false
		}
	}
	return true
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
