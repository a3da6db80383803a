package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/smimesync/go-smimesync/smimesync"
)

// CheckPlans checks each Syncer's plan, plans[Name], with
// [smimesync.Syncer.CheckPlan], for a program that applies several saved
// plans and must apply none unless all can be: call it holding the locks
// ([Lock]), then Apply each. It returns nil when every plan fits; else,
// when some are stale, an error joining one per stale plan (naming the
// Syncer, wrapping [smimesync.ErrStalePlan]); else, at once, the first
// other error (a state that cannot be read, a plan missing), naming its
// Syncer.
func CheckPlans(ctx context.Context, syncers []Named, plans map[string]*smimesync.Plan) error {
	var stale []error
	for _, s := range syncers {
		err := s.CheckPlan(ctx, plans[s.Name])
		switch {
		case errors.Is(err, smimesync.ErrStalePlan):
			stale = append(stale, fmt.Errorf("%s: %w", s.Name, err))
		case err != nil:
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return errors.Join(stale...)
}
