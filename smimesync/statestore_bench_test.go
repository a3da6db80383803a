package smimesync_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// benchStateN is the number of records of BenchmarkBoltStateDelta's store:
// $SMIMESYNC_BENCH_STATE_N, else 10,000.
func benchStateN(b *testing.B) int {
	s := os.Getenv("SMIMESYNC_BENCH_STATE_N")
	if s == "" {
		return 10000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 {
		b.Fatalf("SMIMESYNC_BENCH_STATE_N=%q: want a number of records, at least 100", s)
	}
	return n
}

// benchKey and benchMail are the key and the recipient of record i.
func benchKey(i int) string  { return fmt.Sprintf("%08x-0b0a-4908-8706-%012x", i, i) }
func benchMail(i int) string { return fmt.Sprintf("user%07d@example.com", i) }

// buildBenchStore fills a new BoltState at path with n records (one per
// user, as a pass that published them leaves them) and a delta cookie,
// 50,000 records per transaction.
func buildBenchStore(b *testing.B, path string, n int) *smimesync.BoltState {
	ctx := context.Background()
	st := &smimesync.BoltState{Path: path}
	head, err := st.Load(ctx)
	if err != nil {
		b.Fatal(err)
	}
	head.Cookie = []byte("c")
	for from := 0; from < n; from += 50000 {
		chunk := map[string]smimesync.Published{}
		for i := from; i < min(from+50000, n); i++ {
			chunk[benchKey(i)] = smimesync.Published{Recipient: benchMail(i), At: testNow, User: benchMail(i),
				Name: fmt.Sprintf("User %d", i), Kind: "mailbox",
				UserCertificate: []smimesync.Fingerprint{sha256.Sum256([]byte(benchKey(i)))}}
		}
		if err := st.SaveChanges(ctx, head, chunk); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// BenchmarkBoltStateDelta measures what the state costs a delta pass of 10
// changes over a BoltState of N records (SMIMESYNC_BENCH_STATE_N, default
// 10,000; the store is built once, outside the timing):
//
//   - store: the store calls such a pass makes: a view with the header,
//     10 record lookups and 10 recipient lookups for the plan; the lock, a
//     view with the header (the stale-plan check), Prepare, 10 Records and
//     SaveChanges of the 10 records for the apply. The 10 Records are made
//     at once, as Apply's write workers make them when the writes are
//     acknowledged together (bbolt commits them in one transaction).
//   - store-serial: the same, each Record its own commit (writes
//     acknowledged one after the other): 10 more synced commits, a cost
//     of the disk's sync latency, not of N.
//   - open: opening the store (a command opens it every run), reading the
//     header, closing it.
//   - run: Syncer.Run of a 10-entry delta (10 renewals written to an
//     in-memory sink), the state included: the whole pass.
//
// At a million records:
//
//	SMIMESYNC_BENCH_STATE_N=1000000 go test -run '^$' -bench BoltStateDelta -benchmem -timeout 30m ./smimesync
//
// store-bytes is the store file's size.
func BenchmarkBoltStateDelta(b *testing.B) {
	ctx := context.Background()
	n := benchStateN(b)
	st := buildBenchStore(b, filepath.Join(b.TempDir(), "state.db"), n)
	fi, err := os.Stat(st.Path)
	if err != nil {
		b.Fatal(err)
	}
	changed := make([]int, 10)
	for k := range changed {
		changed[k] = (k*n)/10 + 7
	}

	for _, serial := range []bool{false, true} {
		name := "store"
		if serial {
			name = "store-serial"
		}
		b.Run(fmt.Sprintf("%s/N=%d", name, n), func(b *testing.B) {
			benchStoreCalls(b, st, changed, serial)
			b.ReportMetric(float64(fi.Size()), "store-bytes")
		})
	}

	b.Run(fmt.Sprintf("open/N=%d", n), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := st.View(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := v.Header(ctx); err != nil {
				b.Fatal(err)
			}
			if err := v.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run(fmt.Sprintf("run/N=%d", n), func(b *testing.B) {
		ca := newTestCA(b, "CA")
		var sets [2][]*directory.Entry // two certificates per user: each pass renews
		for k, c := range changed {
			for s := range sets {
				sets[s] = append(sets[s], &directory.Entry{ID: benchKey(c), DN: fmt.Sprintf("CN=user%d,DC=example,DC=com", c),
					Mail: benchMail(c), UserCertificate: [][]byte{ca.issue(b, leaf{email: benchMail(c), key: k + s})}})
			}
		}
		src := &deltaSource{}
		s := newSyncer(src, cloudtest.NewMemorySink(), st)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			src.delta = sets[i%2]
			rep, err := s.Run(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Full || rep.Summary.Written != len(changed) {
				b.Fatalf("pass %d: full %v, %d written, want a delta writing %d", i, rep.Full, rep.Summary.Written, len(changed))
			}
		}
		b.ReportMetric(float64(fi.Size()), "store-bytes")
	})
}

// benchStoreCalls is BenchmarkBoltStateDelta's store and store-serial.
func benchStoreCalls(b *testing.B, st *smimesync.BoltState, changed []int, serial bool) {
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// Plan.
		v, err := st.View(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Header(ctx); err != nil {
			b.Fatal(err)
		}
		for _, c := range changed {
			if _, ok, err := v.Published(ctx, benchKey(c)); err != nil || !ok {
				b.Fatal("lookup", ok, err)
			}
			if keys, err := v.Holders(ctx, benchMail(c)); err != nil || len(keys) != 1 {
				b.Fatal("holders", keys, err)
			}
		}
		v.Close()
		// Apply.
		unlock, err := st.Lock()
		if err != nil {
			b.Fatal(err)
		}
		v, err = st.View(ctx)
		if err != nil {
			b.Fatal(err)
		}
		head, err := v.Header(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Prepare(ctx); err != nil {
			b.Fatal(err)
		}
		changes := map[string]smimesync.Published{}
		var wg sync.WaitGroup
		for _, c := range changed {
			p := smimesync.Published{Recipient: benchMail(c), At: testNow, User: benchMail(c), Kind: "mailbox",
				UserCertificate: []smimesync.Fingerprint{sha256.Sum256(fmt.Appendf(nil, "%d-%d", c, i))}}
			changes[benchKey(c)] = p
			record := func() {
				if err := st.Record(ctx, benchKey(c), p); err != nil {
					b.Error(err)
				}
			}
			if serial {
				record()
			} else {
				wg.Go(record)
			}
		}
		wg.Wait()
		if err := st.SaveChanges(ctx, head, changes); err != nil {
			b.Fatal(err)
		}
		v.Close()
		if err := unlock(); err != nil {
			b.Fatal(err)
		}
	}
}
