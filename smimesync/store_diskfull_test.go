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
	bolt "go.etcd.io/bbolt"
)

// TestBoltStateDiskFull is TestDiskFull for the store: the file system
// under the store fills before a pass that renews every user. Apply
// returns an error wrapping ENOSPC, the delta cookie does not advance,
// nothing valid is removed, the store still reads, and every write the
// store recorded is known: the only writes made again once space is back
// are the acknowledged ones the store could not record, at most the
// Concurrency writes in flight when the first record failed. A pass that
// dies after the space is back (before saving) loses none of its records.
func TestBoltStateDiskFull(t *testing.T) {
	const concurrency = 4
	for _, tt := range []struct {
		name           string
		users          int
		crashAfterFree bool
	}{
		{name: "store fills mid-apply", users: 300},
		{name: "store fills mid-apply, then a crash", users: 300, crashAfterFree: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := mountTmpfs(t, 512<<10)
			st := &smimesync.BoltState{Path: filepath.Join(dir, "state.db")}
			d := newDiskFullDirectory(t, tt.users)
			sink := cloudtest.NewMemorySink()
			sink.SetUnreadable(true)
			syncer := func(st smimesync.State) *smimesync.Syncer {
				s := newSyncer(d.src, sink, st)
				s.Concurrency = concurrency
				// The memos' own transaction would leave pages in the
				// store that the full-disk pass's records reuse: the
				// records must meet the full disk.
				s.Reverify = smimesync.ReverifyEveryPass
				return s
			}
			if rep, err := syncer(st).Run(ctx); err != nil || !rep.CookieAdvanced || rep.Summary.Written != tt.users {
				t.Fatalf("first pass: %v, %+v", err, rep)
			}
			compactStore(t, st.Path)

			d.renew(t)
			freeSpace := fill(t, dir, 16<<10) // a few records fit, then the disk is full
			mark := len(sink.Writes())
			rep, err := syncer(st).Run(ctx)
			if err == nil {
				t.Fatal("Apply succeeded on a full disk")
			}
			t.Logf("pass on a full disk: %v", err)
			if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, smimesync.ErrStateUnwritable) {
				t.Errorf("Apply's error does not wrap ENOSPC and ErrStateUnwritable: %v", err)
			}
			if rep == nil || rep.CookieAdvanced {
				t.Fatalf("report %+v: the cookie must not advance", rep)
			}
			snap, err := st.Load(ctx)
			if err != nil {
				t.Fatalf("state on the full disk: %v", err)
			}
			if string(snap.Cookie) != "pass 1" {
				t.Errorf("cookie after the full disk = %q, want %q", snap.Cookie, "pass 1")
			}
			d.nothingValidRemoved(t, sink, "on a full disk")
			acked := writesSince(sink, mark)
			unrecorded := map[string]bool{}
			for addr := range acked {
				if p, ok := snap.Published[d.id(addr)]; !ok || len(p.UserCertificate) != 2 {
					unrecorded[addr] = true
				}
			}
			t.Logf("%d users: the sink took %d writes on the full disk, the store recorded %d", tt.users, len(acked), len(acked)-len(unrecorded))
			if len(unrecorded) > concurrency {
				t.Errorf("%d writes unrecorded, want at most %d (the writes in flight when the store filled)", len(unrecorded), concurrency)
			}
			if len(acked) >= tt.users {
				t.Errorf("the apply did not stop at the failed record: %d of %d written", len(acked), tt.users)
			}

			freeSpace()
			if tt.crashAfterFree {
				if _, err := syncer(boltNoSave{st}).Run(ctx); err == nil {
					t.Fatal("the dying pass succeeded")
				}
				if got := d.src.lastGiven(); got != "pass 1" {
					t.Errorf("the pass after the full disk was given cookie %q, want %q", got, "pass 1")
				}
			}
			d.recovers(ctx, t, syncer(st), sink, mark, unrecorded)
			d.nothingValidRemoved(t, sink, "at the end")
		})
	}
}

// compactStore rewrites the store at path without free pages, in its own
// folder (bbolt writes it as a sparse file): every page a later write
// needs is then space the file system must find. How much of the file a
// pass can reuse otherwise depends on the pages earlier passes freed, and
// the full disk might not be met at all.
func compactStore(t *testing.T, path string) {
	t.Helper()
	src, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := bolt.Open(path+".compact", 0o600, nil)
	if err != nil {
		src.Close()
		t.Fatal(err)
	}
	err = bolt.Compact(dst, src, 0)
	src.Close()
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".compact", path); err != nil {
		t.Fatal(err)
	}
}
