package smimesync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	if s.Reverify < ReverifyEveryPass {
		return fmt.Errorf("%w: Reverify %v: use ReverifyEveryPass (-1), 0 (DefaultReverify) or a positive duration", ErrInvalidConfig, s.Reverify)
	}
	if s.RecheckNotFound < RecheckNotFoundEveryPass {
		return fmt.Errorf("%w: RecheckNotFound %v: use RecheckNotFoundEveryPass (-1), 0 (DefaultRecheckNotFound) or a positive duration", ErrInvalidConfig, s.RecheckNotFound)
	}
	if s.Guard.MaxRemovals < GuardOff {
		return fmt.Errorf("%w: Guard.MaxRemovals %d: use GuardOff (-1), 0 (DefaultMaxRemovals) or 1 or more", ErrInvalidConfig, s.Guard.MaxRemovals)
	}
	return nil
}

// Syncer composes a directory source, a cloud sink, a policy and a state
// store. Its zero value is not usable: Source and Sink are required; every
// other field has a working default.
type Syncer struct {
	// Source yields the directory entries.
	Source directory.Source
	// Sink publishes to the cloud.
	Sink cloud.Sink
	// Policy decides what to keep; nil means the zero Policy. A Policy
	// without a Now of its own reads the Syncer's Now, so that one clock
	// decides both what is valid and when things happened (the Policy
	// itself is not changed). Plan refuses a Policy that Policy.Validate
	// refuses.
	Policy *Policy
	// State keeps the delta cookie and what was published; nil keeps it
	// in memory for the Syncer's lifetime.
	State State
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Concurrency bounds the sink calls in flight; 0 means the sink's
	// preference when it states one (see [cloud.ConcurrencyHinter]), and
	// DefaultConcurrency otherwise.
	Concurrency int
	// Guard is the mass-change guard.
	Guard Guard
	// Prune turns on the write-back of dropped values to the directory.
	Prune Prune
	// Now returns the current time for reports and state, and for the
	// Policy when it has no Now of its own; nil means time.Now.
	Now func() time.Time
	// Progress, when not nil, is called as work proceeds: after every
	// entry planned and every write attempted. It is called from several
	// goroutines, never at once (calls are serialised), and must return
	// quickly.
	Progress func(Progress)
	// OnChange, when not nil, is told about each change of a plan once
	// Apply has settled it: written, failed, not writable, or nothing to
	// write (its Outcome then says which). Apply calls it for every change
	// of an admitted plan (not for a plan the guard stopped), from several
	// goroutines but never at once, serialised with Progress; it must
	// return quickly and must not change the Change. Metrics and logs hang
	// off it.
	OnChange func(*Change)
	// RemoveDeparted, when true, takes away what this Syncer published to
	// the recipient of an entry that left the directory (a full read no
	// longer returns it, or a delta reports it deleted): only the values
	// it published (Published's fingerprints), never anything else the
	// recipient carries. The sink's Current is read and written back
	// without them; a sink that cannot read back (cloud.ErrUnreadable) is
	// written an empty set, which, as for any other write over a set the
	// State knows, takes away what was published (a sink such as graph
	// keeps the values it does not manage). Each such recipient counts in
	// Summary.Losing, inside the Guard. The change is ActionDepart, written
	// and recorded like any other; the entry's record is dropped once the
	// sink acknowledged the write. Off (the default), the values stay and
	// the change is ActionSkip with SkipDeparted.
	RemoveDeparted bool
	// WriteGrace is how long the writes already in flight may go on after
	// Apply's context ends: see [Syncer.Apply]. 0 abandons them at once.
	// A service sets it so that a stop does not cut a write in half.
	WriteGrace time.Duration
	// Reverify bounds how long an entry that matches its [Memo] is taken
	// on trust: when the State is a [MemoState], a pass repeats an entry's
	// settled row (unchanged, or skipped for a reason only the recipient
	// can change) without judging its certificates or calling the sink
	// (Change.Memoized) when the entry, the settings and the state's record
	// are those of the memo, no certificate of it became valid or expired
	// since, and the entry was verified (judged, and its recipient read
	// back or written) less than Reverify ago: each entry's own share of it,
	// between half and all of it, so that verifications spread over the
	// passes. What someone changes on a recipient by hand is therefore seen
	// within Reverify. 0 means DefaultReverify (24 hours);
	// ReverifyEveryPass turns memos off. Any other negative value
	// is refused (ErrInvalidConfig).
	Reverify time.Duration
	// RecheckNotFound bounds how long an entry no cloud recipient matched
	// (SkipNoRecipient) is taken on trust from its memo, when the entry,
	// the settings and the state are as the memo left them (see Reverify;
	// Reverify's own time does not apply): a pass repeats the skip
	// without asking the sink, until the end of the period of
	// RecheckNotFound (counted on the clock, from Go's zero time) in which
	// the sink last answered. Every
	// entry waiting for a recipient is then asked about in the same pass:
	// a sink that loads an index of its tenant to answer (the Exchange
	// and Graph sinks' "preload" lookup) loads it once a period, not on
	// every pass. A recipient created in the cloud for such an entry is
	// therefore found within RecheckNotFound (and the sink's own index
	// lifetime, such as the Exchange sink's IndexTTL); a change to the
	// entry itself (a new address) is seen at once. A pass in which the
	// sink found a recipient for an entry it was asked about (a newcomer
	// may claim a recipient such an entry would find too) asks it about
	// every such entry again, so that conflicts see them (see waiting). 0 means
	// DefaultRecheckNotFound (an hour); RecheckNotFoundEveryPass asks the
	// sink on every pass. Any other negative value is refused
	// (ErrInvalidConfig). Memos off (ReverifyEveryPass) ask on every pass.
	RecheckNotFound time.Duration
	// PolicyVersion names the version of what the Syncer cannot
	// fingerprint in its Policy: a Check hook, a Revocation checker, Roots
	// and Intermediates (everything else, ManagedCAs included, is
	// fingerprinted, and a change to it invalidates every memo). With any
	// of those set and PolicyVersion empty, no entry is memoized: every
	// pass judges every entry. Set it only when the caller changes it
	// whenever any of them decides differently (the hook's code, the
	// roots' content); a Revocation checker is then asked again about an
	// entry only when the entry is judged again: at least every Reverify,
	// which bounds how late a revocation is seen.
	PolicyVersion string

	memState MemoryState
	mu       sync.Mutex // serialises Apply

	lockMu sync.Mutex
	locks  int          // how many Syncer.Lock holds are open
	unlock func() error // the State's unlock while locks > 0
}

func (s *Syncer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// policy is the Policy the Syncer judges with: its Policy (or the zero
// Policy), reading the Syncer's clock when it has none of its own. The
// caller's Policy is never changed: a copy gets the clock.
func (s *Syncer) policy() *Policy {
	p := s.Policy
	if p == nil {
		p = &Policy{}
	}
	if p.Now == nil && s.Now != nil {
		c := *p
		c.Now = s.Now
		p = &c
	}
	return p
}

func (s *Syncer) state() State {
	if s.State != nil {
		return s.State
	}
	return &s.memState
}

// concurrency is the number of sink calls in flight: the Syncer's
// Concurrency, else the sink's preference (a [cloud.ConcurrencyHinter],
// at most MaxConcurrency), else DefaultConcurrency.
func (s *Syncer) concurrency() int {
	if s.Concurrency > 0 {
		return s.Concurrency
	}
	if h, ok := s.Sink.(cloud.ConcurrencyHinter); ok {
		if n := h.PreferredConcurrency(); n > 0 {
			return min(n, MaxConcurrency)
		}
	}
	return DefaultConcurrency
}

func (s *Syncer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Run plans and applies in one go. When the State is a [RecordStore] and
// a [Locker] (a [BoltState]: its lock is the open store, which Plan opens
// too), Run holds its lock from the plan through the apply, so that the
// store is opened once; the error of a lock held elsewhere wraps
// [ErrLocked], as Plan's would. Close the report once read (see
// [Plan.Close]).
func (s *Syncer) Run(ctx context.Context) (*Report, error) {
	if _, ok := s.State.(RecordStore); ok {
		if _, ok := s.State.(Locker); ok {
			unlock, err := s.Lock()
			if err != nil {
				return nil, err
			}
			defer unlock()
		}
	}
	plan, err := s.Plan(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := s.Apply(ctx, plan)
	if rep != nil && rep.keep == plan {
		// Refused before any write (the guard): the report shows the
		// plan's rows, and its Close removes them; nobody else has
		// the plan.
		rep.Plan.spill = plan.spill
	} else {
		// Apply closed the plan it applied; one it refused is not kept.
		plan.Close()
	}
	return rep, err
}

// DryRun plans and returns the plan as a report, writing nothing. The
// report shows the plan's rows and holds its temporary file until its
// Close (see [Plan.Close]): to save or apply a plan, use Plan.
func (s *Syncer) DryRun(ctx context.Context) (*Report, error) {
	plan, err := s.Plan(ctx)
	if err != nil {
		return nil, err
	}
	return &Report{Plan: *plan, DryRun: true, keep: plan}, nil
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

// LastFull returns when the last full pass was applied whole, as the
// State records it ([Snapshot.LastFull]); zero when none was, or the state
// predates the record. A service schedules its full passes from it.
func (s *Syncer) LastFull(ctx context.Context) (time.Time, error) {
	st, err := s.header(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return st.LastFull, nil
}
