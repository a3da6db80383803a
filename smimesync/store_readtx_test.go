package smimesync_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// readBack reads key's record through v and its memo through st, as a
// pass does for every entry (a BoltState keeps the read transactions of
// those reads for the next ones).
func readBack(t *testing.T, st *smimesync.BoltState, v smimesync.StateView, key string) (recipient, memo string) {
	t.Helper()
	ctx := context.Background()
	p, _, err := v.Published(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := st.LookupMemo(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return p.Recipient, m.Recipient
}

// TestBoltStateReadsSeeEveryWrite: reads through a store's view and its
// memos see every write made before them, by each of the store's ways to
// write, although the reads before were made (and their transactions
// kept) while the store stayed open.
func TestBoltStateReadsSeeEveryWrite(t *testing.T) {
	ctx := context.Background()
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	v := lockedView(t, st)
	const key = "id-1"
	for i, write := range []struct {
		name string
		fn   func(r string) error
		memo bool
	}{
		{"Record", func(r string) error { return st.Record(ctx, key, smimesync.Published{Recipient: r}) }, false},
		{"SaveChanges", func(r string) error {
			head, err := v.Header(ctx)
			if err != nil {
				return err
			}
			return st.SaveChanges(ctx, head, map[string]smimesync.Published{key: {Recipient: r}})
		}, false},
		{"Save", func(r string) error {
			s, err := st.Load(ctx)
			if err != nil {
				return err
			}
			s.Published[key] = smimesync.Published{Recipient: r}
			return st.Save(ctx, s)
		}, false},
		{"SaveMemos", func(r string) error {
			return st.SaveMemos(ctx, map[string]smimesync.Memo{key: {Recipient: r}}, nil)
		}, true},
		{"Record again", func(r string) error { return st.Record(ctx, key, smimesync.Published{Recipient: r}) }, false},
		{"SaveMemos again", func(r string) error {
			return st.SaveMemos(ctx, map[string]smimesync.Memo{key: {Recipient: r}}, nil)
		}, true},
	} {
		readBack(t, st, v, key) // transactions to keep
		readBack(t, st, v, key)
		want := "r-" + strconv.Itoa(i)
		if held, err := v.Holders(ctx, want); err != nil || len(held) != 0 {
			t.Fatalf("before %s: the holders of %s: %q, %v", write.name, want, held, err)
		}
		if err := write.fn(want); err != nil {
			t.Fatalf("%s: %v", write.name, err)
		}
		rec, memo := readBack(t, st, v, key)
		if got := map[bool]string{false: rec, true: memo}[write.memo]; got != want {
			t.Errorf("after %s of %s: read %q", write.name, want, got)
		}
		// The recipient index, read through a kept transaction too.
		if held, err := v.Holders(ctx, want); !write.memo && (err != nil || len(held) != 1 || held[0] != key) {
			t.Errorf("after %s of %s: holders %q, %v; want [%s]", write.name, want, held, err, key)
		}
	}
}

// TestBoltStateGrowsWithReadsKept: a write that grows the store's file
// (bbolt maps it again, which waits for every read transaction to end)
// goes through while reads of the open store were made just before; and
// the store closes, for another BoltState to open, once its users are
// done.
func TestBoltStateGrowsWithReadsKept(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	st := &smimesync.BoltState{Path: path}
	unlock, err := st.Lock()
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { readBack(t, st, v, "id-0") })
	}
	wg.Wait()
	head, err := v.Header(ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := map[string]smimesync.Published{}
	for i := range 20000 {
		big[fmt.Sprintf("id-%d", i)] = smimesync.Published{Recipient: strings.Repeat("r", 100) + strconv.Itoa(i),
			UserCertificate: []smimesync.Fingerprint{sha256.Sum256([]byte{byte(i)})}}
	}
	if err := st.SaveChanges(ctx, head, big); err != nil {
		t.Fatal(err)
	}
	if rec, _ := readBack(t, st, v, "id-19999"); rec != big["id-19999"].Recipient {
		t.Errorf("after the file grew: read %q", rec)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	other := &smimesync.BoltState{Path: path}
	s, err := other.Load(ctx)
	if err != nil {
		t.Fatalf("another BoltState after the first closed: %v", err)
	}
	if len(s.Published) != len(big) {
		t.Errorf("%d records, want %d", len(s.Published), len(big))
	}
}

// TestBoltStateConcurrentReadsSeeAcknowledgedWrites: readers reading one
// record over and over while a writer records new versions of it never
// read a version older than the last one acknowledged before their read
// began.
func TestBoltStateConcurrentReadsSeeAcknowledgedWrites(t *testing.T) {
	ctx := context.Background()
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	v := lockedView(t, st)
	const key, versions = "id-1", 200
	if err := st.Record(ctx, key, smimesync.Published{Recipient: "0"}); err != nil {
		t.Fatal(err)
	}
	var acked atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := 1; i <= versions; i++ {
			if err := st.Record(ctx, key, smimesync.Published{Recipient: strconv.Itoa(i)}); err != nil {
				t.Error(err)
				return
			}
			acked.Store(int64(i))
		}
	})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				floor := acked.Load()
				p, ok, err := v.Published(ctx, key)
				if err != nil || !ok {
					t.Errorf("read: %v, %v", ok, err)
					return
				}
				if n, _ := strconv.Atoi(p.Recipient); int64(n) < floor {
					t.Errorf("read version %d after version %d was acknowledged", n, floor)
					return
				}
			}
		})
	}
	wg.Wait()
}

// lockedView locks st and opens a view of it, both closed when the test
// ends.
func lockedView(t *testing.T, st *smimesync.BoltState) smimesync.StateView {
	t.Helper()
	unlock, err := st.Lock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unlock() })
	v, err := st.View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}
