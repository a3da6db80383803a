package smimesync_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// copyingSource hands out fresh copies of its entries, values included,
// as a source that reads them from a file or a server does.
type copyingSource []*directory.Entry

func (s copyingSource) Read(ctx context.Context, _ directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	for _, e := range s {
		c := *e
		c.UserCertificate = make([][]byte, len(e.UserCertificate))
		for i, v := range e.UserCertificate {
			c.UserCertificate[i] = bytes.Clone(v)
		}
		if err := yield(&c); err != nil {
			return directory.Result{}, err
		}
	}
	return directory.Result{Full: true}, nil
}

// BenchmarkPlanHeap measures what a plan of n users holds on the heap:
// each user has a valid certificate, an expired one and one for another
// address; half of them already carry the valid one (unchanged), half
// carry nothing (a write). It reports the heap's peak while planning and
// what the plan keeps after it, both above the heap before (the
// directory and the sink), per plan and per user:
//
//	go test -run '^$' -bench PlanHeap -benchtime 1x ./smimesync
func BenchmarkPlanHeap(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			ca := newTestCA(b, "CA")
			sink := cloudtest.NewMemorySink()
			src := make(copyingSource, n)
			for i := range n {
				addr := fmt.Sprintf("u%06d@example.com", i)
				good := ca.issue(b, leaf{email: addr})
				src[i] = &directory.Entry{ID: fmt.Sprintf("id-%06d", i), DN: "CN=" + addr + ",DC=example,DC=com", Mail: addr,
					UserCertificate: [][]byte{good, ca.issue(b, leaf{email: addr, notAfter: testNow.Add(-time.Hour)}),
						ca.issue(b, leaf{email: "other@example.com"})}}
				if i%2 == 0 {
					sink.Seed(addr, cloud.Certificates{UserCertificate: [][]byte{good}})
				}
			}
			s := newSyncer(src, sink, &smimesync.MemoryState{})
			b.ResetTimer()
			var peak, kept uint64
			for b.Loop() {
				base := heapObjects(true)
				stop := sampleHeap(&peak)
				plan, err := s.Plan(context.Background())
				stop()
				if err != nil {
					b.Fatal(err)
				}
				kept = heapObjects(true) - base
				peak -= min(peak, base)
				runtime.KeepAlive(plan)
				plan.Close()
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
			b.ReportMetric(float64(kept)/(1<<20), "kept-MiB")
			b.ReportMetric(float64(kept)/float64(n), "kept-B/user")
		})
	}
}

// heapObjects is the heap's live objects, after a collection when gc.
func heapObjects(gc bool) uint64 {
	if gc {
		runtime.GC()
	}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// sampleHeap records the heap's largest size in *peak until stop is
// called.
func sampleHeap(peak *uint64) (stop func()) {
	*peak = 0
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			*peak = max(*peak, heapObjects(false))
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
