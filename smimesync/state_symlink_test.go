//go:build unix

package smimesync_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestPrepareRefusesSymlinkedJournal: a journal that is a symbolic link is
// refused before any write, and the file it points to is untouched.
func TestPrepareRefusesSymlinkedJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := smimesync.FileState(filepath.Join(dir, "state.json"))
	if err := os.Symlink(victim, string(st)+".journal"); err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "CA")
	src := writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})))
	sink := cloudtest.NewMemorySink()
	_, err := newSyncer(src, sink, st).Run(ctx)
	if !errors.Is(err, smimesync.ErrSymlink) {
		t.Errorf("Run with a symlinked journal: %v, want ErrSymlink", err)
	}
	if n := len(sink.Writes()); n != 0 {
		t.Errorf("%d writes reached the sink", n)
	}
	if err := st.Record(ctx, "x", smimesync.Published{Recipient: "r"}); !errors.Is(err, smimesync.ErrSymlink) {
		t.Errorf("Record through a symlinked journal: %v, want ErrSymlink", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the link's target was changed to %q", b)
	}
}

// TestLockRefusesSymlinkedLockFile: a lock file that is a symbolic link is
// refused, and its target is neither truncated nor written.
func TestLockRefusesSymlinkedLockFile(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := smimesync.FileState(filepath.Join(dir, "state.json"))
	if err := os.Symlink(victim, string(st)+".lock"); err != nil {
		t.Fatal(err)
	}
	unlock, err := st.Lock()
	if err == nil {
		unlock()
		t.Error("Lock through a symlinked lock file succeeded")
	} else if !errors.Is(err, smimesync.ErrSymlink) {
		t.Errorf("Lock: %v, want ErrSymlink", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the link's target was changed to %q", b)
	}
}

// TestLockKeyedByResolvedPath: two names for one state file, one of them
// a symbolic link to it, contend for one lock.
func TestLockKeyedByResolvedPath(t *testing.T) {
	dir := t.TempDir()
	real := smimesync.FileState(filepath.Join(dir, "a", "state.json"))
	if err := os.MkdirAll(filepath.Dir(string(real)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(string(real), []byte(`{"format":"smimesync-state","version":1,"published":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	// b/state.json is a link to a/state.json; c is a link to folder a.
	viaFile := smimesync.FileState(filepath.Join(dir, "b", "state.json"))
	if err := os.Symlink(string(real), string(viaFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "c")); err != nil {
		t.Fatal(err)
	}
	viaDir := smimesync.FileState(filepath.Join(dir, "c", "state.json"))

	unlock, err := real.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, other := range []smimesync.FileState{viaFile, viaDir} {
		if u, err := other.Lock(); !errors.Is(err, smimesync.ErrLocked) {
			if err == nil {
				u()
			}
			t.Errorf("Lock of %s while %s is locked: %v, want ErrLocked", other, real, err)
		}
		if other.LockPath() != real.LockPath() {
			t.Errorf("LockPath of %s = %s, want %s", other, other.LockPath(), real.LockPath())
		}
	}
}
