//go:build linux

package smimesync_test

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
	bolt "go.etcd.io/bbolt"
)

// storeTxID is the id of the last transaction committed to the store at
// path (which must not be open).
func storeTxID(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int
	db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return id
}

// TestBoltStatePrepareWithRoomCommitsNothing: on a file system mounted
// writable with room to spare, Prepare opens the store read-write and
// commits nothing (before, it paid a synced commit on every Apply).
func TestBoltStatePrepareWithRoomCommitsNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if uint64(fs.Bavail)*uint64(fs.Bsize) < 256<<20 {
		t.Skipf("%s has less than 256 MiB free", dir)
	}
	st := &smimesync.BoltState{Path: filepath.Join(dir, "state.db")}
	if err := st.Save(ctx, sampleSnapshot()); err != nil {
		t.Fatal(err)
	}
	before := storeTxID(t, st.Path)
	if err := st.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if after := storeTxID(t, st.Path); after != before {
		t.Errorf("Prepare committed: transaction %d, then %d", before, after)
	}
}

// TestBoltStatePrepareShortOfRoomCommits: on a file system with little
// room (a 1 MiB tmpfs), Prepare still proves the store writable with a
// commit, which a full disk fails.
func TestBoltStatePrepareShortOfRoomCommits(t *testing.T) {
	ctx := context.Background()
	st := &smimesync.BoltState{Path: filepath.Join(mountTmpfs(t, 1<<20), "state.db")}
	if err := st.Save(ctx, sampleSnapshot()); err != nil {
		t.Fatal(err)
	}
	before := storeTxID(t, st.Path)
	if err := st.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if after := storeTxID(t, st.Path); after != before+1 {
		t.Errorf("Prepare on a small file system: transaction %d, then %d; want one commit", before, after)
	}
}
