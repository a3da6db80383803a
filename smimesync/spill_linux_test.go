//go:build linux

package smimesync_test

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestSpillDiskFull: a plan whose values to write do not fit on the disk
// under TMPDIR fails, with an error that wraps ErrSpill and ENOSPC; with
// room again, the same Syncer plans.
func TestSpillDiskFull(t *testing.T) {
	ctx := context.Background()
	w := newSpillWorld(t)
	dir := mountTmpfs(t, 1<<20)
	t.Setenv("TMPDIR", dir)
	free := fill(t, dir, 0)
	plan, err := w.syncer().Plan(ctx)
	if !errors.Is(err, smimesync.ErrSpill) || !errors.Is(err, syscall.ENOSPC) || plan != nil {
		t.Fatalf("Plan on a full disk: %v, want ErrSpill and ENOSPC", err)
	}
	t.Log(err)
	free()
	plan, err = w.syncer().Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Close(); err != nil {
		t.Fatal(err)
	}
}
