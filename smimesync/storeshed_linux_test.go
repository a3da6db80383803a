package smimesync_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// mappedFileKiB is the process's resident pages of mapped files (RssFile,
// and RssShmem for a store on tmpfs), in KiB, from /proc/self/status.
func mappedFileKiB(t testing.TB) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kib int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), ":")
		if name != "RssFile" && name != "RssShmem" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("/proc/self/status: %q: %v", sc.Text(), err)
		}
		kib += n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return kib
}

// shedKey is the key of record i of the shedding tests' stores.
func shedKey(i int) string { return fmt.Sprintf("entry-%07d", i) }

// shedRecord is record i (of generation gen: its At) of the shedding
// tests' stores: about 850 bytes of JSON.
func shedRecord(i, gen int) smimesync.Published {
	p := smimesync.Published{
		Recipient: fmt.Sprintf("recipient-%07d", i),
		At:        time.Date(2026, 1, 1, 0, 0, gen, 0, time.UTC),
		User:      fmt.Sprintf("user%07d@example.com", i),
	}
	for j := range 6 {
		p.UserCertificate = append(p.UserCertificate, sha256.Sum256(fmt.Appendf(nil, "%d/%d", i, j)))
	}
	return p
}

// shedMemo is the memo of record i.
func shedMemo(i int) smimesync.Memo {
	return smimesync.Memo{Entry: sha256.Sum256([]byte(shedKey(i))), Recipient: fmt.Sprintf("recipient-%07d", i), Kept: i % 7}
}

// newShedStore makes a store of n records and their memos, and returns it
// closed.
func newShedStore(t testing.TB, n int) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	st := &smimesync.BoltState{Path: path}
	s := &smimesync.Snapshot{Version: smimesync.StateVersion, Published: map[string]smimesync.Published{}}
	memos := map[string]smimesync.Memo{}
	for i := range n {
		s.Published[shedKey(i)] = shedRecord(i, 0)
		memos[shedKey(i)] = shedMemo(i)
	}
	if err := st.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveMemos(ctx, memos, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

// shedPass reads every record of the store at path as a pass does (a view
// open throughout: the records and their memos looked up in a random
// order, the holders of some recipients, every record walked, and the
// changes saved a chunk at a time), checks what it reads, and returns the
// most the process's resident pages of mapped files grew, in KiB, over
// what they were before the store was opened (sampled every few hundred
// reads and after every save).
func shedPass(t *testing.T, st *smimesync.BoltState, n int) int64 {
	t.Helper()
	ctx := context.Background()
	base := mappedFileKiB(t)
	var most int64
	sample := func() { most = max(most, mappedFileKiB(t)-base) }

	v, err := st.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	head, err := v.Header(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for j, i := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		p, ok, err := v.Published(ctx, shedKey(i))
		if err != nil || !ok || p.Recipient != shedRecord(i, 0).Recipient {
			t.Fatalf("Published(%s) = %+v, %t, %v", shedKey(i), p, ok, err)
		}
		m, ok, err := st.LookupMemo(ctx, shedKey(i))
		if err != nil || !ok || m.Entry != shedMemo(i).Entry {
			t.Fatalf("LookupMemo(%s) = %+v, %t, %v", shedKey(i), m, ok, err)
		}
		if j%500 == 0 {
			if keys, err := v.Holders(ctx, p.Recipient); err != nil || len(keys) != 1 || keys[0] != shedKey(i) {
				t.Fatalf("Holders(%s) = %q, %v", p.Recipient, keys, err)
			}
			sample()
		}
	}
	stepped, walked := 0, 0
	// Every other record is passed over (read, not decoded), as a full
	// pass passes over those of the entries the directory still holds.
	err = v.EachPublished(ctx, func(string) bool { stepped++; return stepped%2 == 0 }, func(k string, p smimesync.Published) error {
		if walked++; walked%500 == 0 {
			sample()
		}
		return nil
	})
	if err != nil || walked != (n+1)/2 {
		t.Fatalf("EachPublished: %d records, %v; want %d", walked, err, (n+1)/2)
	}
	const chunk = 5000
	for lo := 0; lo < n; lo += chunk {
		changes := map[string]smimesync.Published{}
		for i := lo; i < min(lo+chunk, n); i++ {
			changes[shedKey(i)] = shedRecord(i, 1)
		}
		if err := st.SaveChanges(ctx, head, changes); err != nil {
			t.Fatal(err)
		}
		sample()
	}
	for i := range 200 {
		if err := st.Record(ctx, shedKey(i), shedRecord(i, 2)); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			sample()
		}
	}
	return most
}

// shedBoundKiB is the most a pass over a store of shedRecords records may
// keep of its file mapped in (shedLimit, and one look's worth): far less
// than the file (about 75 MB, records as BoltState lays them out since
// they are binary).
const (
	shedRecords  = 70000
	shedLimit    = 16 << 20
	shedBoundKiB = 32 << 10
)

// TestBoltStateShedsMappedPages: a pass that reads every record of a
// store (lookups, a walk, saves), through the view and the methods the
// Syncer uses, keeps at most shedBoundKiB of the store's file mapped in
// the process; the same pass with MapLimit 0 (the default: no shedding) keeps
// far more (so the bound means something).
func TestBoltStateShedsMappedPages(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a store of about 75 MB")
	}
	path := newShedStore(t, shedRecords)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("store: %d records, %.1f MiB", shedRecords, float64(fi.Size())/(1<<20))
	if fi.Size() < 2*shedBoundKiB<<10 {
		t.Fatalf("the store is %d bytes: too small to tell the shedding from the bound", fi.Size())
	}

	without := shedPass(t, &smimesync.BoltState{Path: path}, shedRecords) // MapLimit 0: off
	// The store is closed: its pages are out of the process again.
	shed := &smimesync.BoltState{Path: path, MapLimit: shedLimit}
	with := shedPass(t, shed, shedRecords)
	t.Logf("mapped pages of files, most over the start: %.1f MiB without shedding, %.1f MiB with (bound %d MiB)",
		float64(without)/1024, float64(with)/1024, shedBoundKiB>>10)
	if with > shedBoundKiB {
		t.Errorf("a pass kept %d KiB of the store mapped, want at most %d", with, shedBoundKiB)
	}
	if without <= shedBoundKiB {
		t.Errorf("without shedding, a pass kept %d KiB of the store mapped, no more than the bound %d: the test cannot tell", without, shedBoundKiB)
	}

	// A MapLimit of its own: the bound moves with it.
	const limit = 44 << 20
	wider := shedPass(t, &smimesync.BoltState{Path: path, MapLimit: limit}, shedRecords)
	t.Logf("with MapLimit %d MiB: %.1f MiB", limit>>20, float64(wider)/1024)
	if wider > limit>>10+shedBoundKiB-shedLimit>>10 || wider < with+(limit-shedLimit)>>10/2 {
		t.Errorf("with MapLimit %d, a pass kept %d KiB mapped; with %d, %d", limit, wider, shedLimit, with)
	}
}

// TestBoltStateShedsWhileGrowing: reads that shed (at every look, here)
// stay right while a writer grows the store (bbolt remaps it then, perhaps
// elsewhere), and a shed after the growth gives back the pages of the
// file as it is mapped now. Run it with -race too.
func TestBoltStateShedsWhileGrowing(t *testing.T) {
	ctx := context.Background()
	const n = 3500
	st := &smimesync.BoltState{Path: newShedStore(t, n), MapLimit: shedLimit}
	smimesync.ShedOften(st)
	v := lockedView(t, st)
	head, err := v.Header(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(st.Path)
	if err != nil {
		t.Fatal(err)
	}

	// The writer adds records (and memos) n at a time, each larger than
	// the last chunk's: the file grows by many times its size.
	const rounds = 10
	done := make(chan struct{})
	var werr error
	go func() {
		defer close(done)
		for r := 1; r <= rounds; r++ {
			changes := map[string]smimesync.Published{}
			memos := map[string]smimesync.Memo{}
			for i := r * n; i < (r+1)*n; i++ {
				changes[shedKey(i)] = shedRecord(i, 0)
				memos[shedKey(i)] = shedMemo(i)
			}
			if werr = st.SaveChanges(ctx, head, changes); werr != nil {
				return
			}
			if werr = st.SaveMemos(ctx, memos, nil); werr != nil {
				return
			}
			if werr = st.Record(ctx, shedKey(r), shedRecord(r, r)); werr != nil {
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for {
				select {
				case <-done:
					return
				default:
				}
				i := rng.IntN(n)
				p, ok, err := v.Published(ctx, shedKey(i))
				if err != nil || !ok || p.Recipient != shedRecord(i, 0).Recipient || p.UserCertificate[5] != shedRecord(i, 0).UserCertificate[5] {
					t.Errorf("Published(%s) = %+v, %t, %v", shedKey(i), p, ok, err)
					return
				}
				m, ok, err := st.LookupMemo(ctx, shedKey(i))
				if want := shedMemo(i); err != nil || !ok || m.Entry != want.Entry || m.Recipient != want.Recipient || m.Kept != want.Kept {
					t.Errorf("LookupMemo(%s) = %+v, %t, %v", shedKey(i), m, ok, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			err := v.EachPublished(ctx, nil, func(k string, p smimesync.Published) error {
				var i int
				if _, err := fmt.Sscanf(k, "entry-%d", &i); err != nil {
					return err
				}
				if p.Recipient != shedRecord(i, 0).Recipient || p.UserCertificate[0] != shedRecord(i, 0).UserCertificate[0] {
					return fmt.Errorf("record %s = %+v", k, p)
				}
				return nil
			})
			if err != nil {
				t.Errorf("EachPublished: %v", err)
				return
			}
		}
	})
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	after, err := os.Stat(st.Path)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() < 4*before.Size() {
		t.Fatalf("the store grew from %d to %d bytes: not enough to be remapped", before.Size(), after.Size())
	}
	sheds := smimesync.Sheds(st)
	t.Logf("the store grew from %.1f to %.1f MiB; %d sheds", float64(before.Size())/(1<<20), float64(after.Size())/(1<<20), sheds)
	if sheds < rounds {
		t.Errorf("%d sheds while the store grew, want at least one a round (%d)", sheds, rounds)
	}

	// Every record read, not shedding, maps the whole file in; a commit,
	// shedding again, gives it back.
	smimesync.KeepMappedPages(st, true)
	start := mappedFileKiB(t)
	if err := v.EachPublished(ctx, nil, func(string, smimesync.Published) error { return nil }); err != nil {
		t.Fatal(err)
	}
	read := mappedFileKiB(t)
	smimesync.KeepMappedPages(st, false)
	if err := st.SaveMemos(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	shed := mappedFileKiB(t)
	t.Logf("mapped pages of files: %.1f MiB before reading every record, %.1f MiB after, %.1f MiB after the shed", float64(start)/1024, float64(read)/1024, float64(shed)/1024)
	if read-start < 16<<10 {
		t.Fatalf("reading every record mapped in %d KiB of the %d KiB file: too little to tell", read-start, after.Size()>>10)
	}
	if shed-start > (read-start)/4 {
		t.Errorf("the shed after the growth gave back %d KiB of the %d KiB that reading every record mapped in", read-shed, read-start)
	}
}
