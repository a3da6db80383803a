package service_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// TestCheckPlans: plans that fit their states pass; when another sync ran
// on one sink's state, CheckPlans names that sink with ErrStalePlan (and
// only it); a missing plan is another error, at once.
func TestCheckPlans(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var syncers []service.Named
	plans := map[string]*smimesync.Plan{}
	for _, name := range []string{"exchange", "graph"} {
		sink := cloudtest.NewMemorySink()
		s := service.Named{Name: name, Syncer: &smimesync.Syncer{
			Source: alice(sink), Sink: sink, State: smimesync.FileState(filepath.Join(dir, name+".json")),
		}}
		p, err := s.Plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		syncers, plans[name] = append(syncers, s), p
	}
	if err := service.CheckPlans(ctx, syncers, plans); err != nil {
		t.Fatalf("fresh plans: %v", err)
	}
	if _, err := syncers[1].Run(ctx); err != nil {
		t.Fatal(err)
	}
	err := service.CheckPlans(ctx, syncers, plans)
	if !errors.Is(err, smimesync.ErrStalePlan) || !strings.HasPrefix(err.Error(), "graph: ") || strings.Contains(err.Error(), "exchange") {
		t.Errorf("graph's state moved: %v, want ErrStalePlan naming graph only", err)
	}
	delete(plans, "exchange")
	if err := service.CheckPlans(ctx, syncers, plans); err == nil || errors.Is(err, smimesync.ErrStalePlan) || !strings.HasPrefix(err.Error(), "exchange: ") {
		t.Errorf("no plan for exchange: %v, want an error naming exchange, not ErrStalePlan", err)
	}
}
