package smimesync

import (
	"errors"
	"fmt"
)

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
