package smimesync_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// benchUnchangedN is the directory size of BenchmarkUnchangedPass:
// $SMIMESYNC_BENCH_UNCHANGED_N, else 20,000.
func benchUnchangedN(b *testing.B) int {
	s := os.Getenv("SMIMESYNC_BENCH_UNCHANGED_N")
	if s == "" {
		return 20000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 {
		b.Fatalf("SMIMESYNC_BENCH_UNCHANGED_N=%q: want a number of users, at least 100", s)
	}
	return n
}

// unchangedRig is a directory of n users in an LDIF file, published to a
// memory sink, with a BoltState that holds the records and the memos the
// pass that published them left: what an unchanged pass finds.
type unchangedRig struct {
	ldif  string
	sink  *cloudtest.MemorySink
	state *smimesync.BoltState
	n     int
}

// newUnchangedRig writes n users to an LDIF file (each with a certificate
// of their own, and none, one or two of 32 that the policy drops: expired
// or for another address), syncs them once to a memory sink over a
// MemoryState, and copies that state, memos included, into a BoltState
// (one transaction each, rather than a synced commit per write).
func newUnchangedRig(b *testing.B, n int) *unchangedRig {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	ca := newTestCA(b, "CA")
	var dropped [][]byte
	for i := range 32 {
		if i%2 == 0 {
			dropped = append(dropped, ca.issue(b, leaf{email: fmt.Sprintf("old%02d@example.com", i), notAfter: testNow.Add(-time.Hour)}))
		} else {
			dropped = append(dropped, ca.issue(b, leaf{email: fmt.Sprintf("someone%02d@example.com", i)}))
		}
	}
	r := &unchangedRig{ldif: filepath.Join(dir, "directory.ldif"), sink: cloudtest.NewMemorySink(), n: n}
	f, err := os.Create(r.ldif)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		addr := fmt.Sprintf("user%07d@example.com", i)
		e := &directory.Entry{ID: fmt.Sprintf("%08x-0b0a-4908-8706-%012x", i, i),
			DN:                "CN=User " + strconv.Itoa(i) + ",OU=Staff,DC=corp,DC=example,DC=com",
			UserPrincipalName: addr, Mail: addr,
			ProxyAddresses:  []string{"SMTP:" + addr, "smtp:alias" + strconv.Itoa(i) + "@example.com"},
			UserCertificate: [][]byte{ca.issue(b, leaf{email: addr, key: i % 4})}}
		for k := range i % 3 {
			e.UserCertificate = append(e.UserCertificate, dropped[(i+k)%len(dropped)])
		}
		if err := directory.WriteLDIF(w, e); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	mem := &smimesync.MemoryState{}
	rep, err := newSyncer(directory.LDIFFile{Path: r.ldif}, r.sink, mem).Run(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if rep.Summary.Written != n {
		b.Fatalf("the first pass wrote %d of %d users", rep.Summary.Written, n)
	}
	snap, err := mem.Load(ctx)
	if err != nil {
		b.Fatal(err)
	}
	put := map[string]smimesync.Memo{}
	for k := range snap.Published {
		m, ok, err := mem.LookupMemo(ctx, k)
		if err != nil || !ok {
			b.Fatalf("the memo of %s: %v, %v", k, ok, err)
		}
		put[k] = m
	}
	r.state = &smimesync.BoltState{Path: filepath.Join(dir, "state.db")}
	if err := r.state.Save(ctx, snap); err != nil {
		b.Fatal(err)
	}
	if err := r.state.SaveMemos(ctx, put, nil); err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkUnchangedPass measures a pass over an unchanged directory of N
// users (SMIMESYNC_BENCH_UNCHANGED_N, default 20,000) in an LDIF file,
// every one of them published and memoized in a BoltState (built once,
// outside the timing; see newUnchangedRig), against reading the file
// alone:
//
//   - read: LDIFFile.Read, counting the entries.
//   - run: Syncer.Run over the BoltState (Plan and Apply), which must
//     find every entry unchanged on its memo.
//
// Both report the wall time and the process's CPU time per user
// (µs/user, cpu-µs/user). Issue #12 wants run within twice read. At
// 100,000 users:
//
//	SMIMESYNC_BENCH_UNCHANGED_N=100000 go test -run '^$' -bench UnchangedPass -benchtime 5x ./smimesync
func BenchmarkUnchangedPass(b *testing.B) {
	ctx := context.Background()
	r := newUnchangedRig(b, benchUnchangedN(b))
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			n := 0
			_, err := directory.LDIFFile{Path: r.ldif}.Read(ctx, directory.Pass{}, func(*directory.Entry) error { n++; return nil })
			if err != nil || n != r.n {
				b.Fatalf("read %d of %d users: %v", n, r.n, err)
			}
		}
		reportUserTimes(b, cpu, r.n)
	})
	b.Run("run", func(b *testing.B) {
		s := newSyncer(directory.LDIFFile{Path: r.ldif}, r.sink, r.state)
		b.ReportAllocs()
		// The label tells the passes apart from the rig in a profile
		// (go tool pprof -tagfocus pass=unchanged).
		cpu := processCPU()
		pprof.Do(ctx, pprof.Labels("pass", "unchanged"), func(ctx context.Context) {
			for b.Loop() {
				rep, err := s.Run(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if sum := rep.Summary; sum.Memoized != r.n || sum.Written != 0 || sum.Entries != r.n {
					b.Fatalf("the unchanged pass: %+v", sum)
				}
			}
		})
		reportUserTimes(b, cpu, r.n)
	})
}

// reportUserTimes reports the wall time per user, and the process's CPU
// time per user (every thread, the garbage collector's included; Linux):
// on a shared machine the wall time depends on what else runs, the CPU
// time much less.
func reportUserTimes(b *testing.B, cpu time.Duration, users int) {
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*users), "µs/user")
	if end := processCPU(); end != 0 {
		b.ReportMetric(float64((end-cpu).Microseconds())/float64(b.N*users), "cpu-µs/user")
	}
}
