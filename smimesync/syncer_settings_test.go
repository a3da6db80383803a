package smimesync_test

import (
	"context"
	"errors"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestSyncerRefusesOutOfRangeSettings: a negative Concurrency used to mean
// the default and Guard.MaxRemovals: -5 turned the guard off; both are
// slips, refused by Plan (and Apply) with ErrInvalidConfig.
func TestSyncerRefusesOutOfRangeSettings(t *testing.T) {
	for _, tc := range []struct {
		name        string
		concurrency int
		maxRemovals int
		ok          bool
	}{
		{name: "defaults", ok: true},
		{name: "guard off", maxRemovals: smimesync.GuardOff, ok: true},
		{name: "largest concurrency", concurrency: smimesync.MaxConcurrency, ok: true},
		{name: "negative concurrency", concurrency: -5},
		{name: "huge concurrency", concurrency: 200000},
		{name: "guard -5", maxRemovals: -5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSyncer(writeLDIF(t), cloudtest.NewMemorySink(), nil)
			s.Concurrency = tc.concurrency
			s.Guard.MaxRemovals = tc.maxRemovals
			plan, err := s.Plan(context.Background())
			if tc.ok {
				if err != nil {
					t.Fatalf("Plan: %v", err)
				}
				return
			}
			if !errors.Is(err, smimesync.ErrInvalidConfig) {
				t.Fatalf("Plan: error %v, plan %v; want ErrInvalidConfig", err, plan)
			}
		})
	}
}
