//go:build linux

package smimesync_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// readOnlyFolder returns an empty folder no one can write in: a folder of
// mode 0500 for an ordinary user; for root, who writes anyway, a tmpfs
// mounted read-only (root can mount; a container that cannot skips, or
// fails under SMIMESYNC_REQUIRE_SERVERS=1, like the disk-full tests).
func readOnlyFolder(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return dir
	}
	dir := mountTmpfs(t, 1<<20)
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remounting %s read-only: %v", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600); err == nil {
		t.Fatal("the read-only folder is writable")
	}
	return dir
}

// TestApplyUnwritableStateWritesNothing: with a state folder that cannot
// be written, no write reaches the sink (before, the first one did, and
// only its record failed).
func TestApplyUnwritableStateWritesNothing(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	src := writeLDIF(t,
		user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})),
		user(2, "bob", ca.issue(t, leaf{email: "bob@example.com"})),
		user(3, "carol", ca.issue(t, leaf{email: "carol@example.com"})),
	)
	sink := cloudtest.NewMemorySink()
	st := smimesync.FileState(filepath.Join(readOnlyFolder(t), "state.json"))
	s := newSyncer(src, sink, st)
	s.Concurrency = 1
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Summary.Add != 3 {
		t.Fatalf("plan adds %d, want 3", plan.Summary.Add)
	}
	rep, err := s.Apply(ctx, plan)
	if err == nil {
		t.Fatal("Apply with an unwritable state folder succeeded")
	}
	if n := len(sink.Writes()); n != 0 {
		t.Errorf("%d writes reached the sink with a state that cannot record them, want 0", n)
	}
	if !errors.Is(err, os.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		t.Errorf("error %v does not say why (permission, read-only file system)", err)
	}
	if rep == nil || len(rep.Errors) == 0 || rep.Summary.Written != 0 {
		t.Errorf("report: %+v", rep)
	}
}
