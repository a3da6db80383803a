package exchange_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
)

// indexBenchEnv names the number of recipients BenchmarkIndexLoad seeds.
const indexBenchEnv = "SMIMESYNC_BENCH_EXCHANGE_RECIPIENTS"

// indexBenchN is the number of recipients of BenchmarkIndexLoad's tenant:
// $SMIMESYNC_BENCH_EXCHANGE_RECIPIENTS, else 100,000.
func indexBenchN(b *testing.B) int {
	s := os.Getenv(indexBenchEnv)
	if s == "" {
		return 100000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a number of recipients, at least 1", indexBenchEnv, s)
	}
	return n
}

// indexBenchRecipient is recipient i of BenchmarkIndexLoad's tenant: a
// primary address (mixed case for every other one, as tenants have them),
// the tenant's routing alias, and the emulator's SMTP: proxy of the
// primary; mostly mailboxes, with mail users, contacts and
// directory-synced mailboxes among them.
func indexBenchRecipient(i int) exchangetest.Recipient {
	primary := fmt.Sprintf("user%07d@contoso.com", i)
	if i%2 == 0 {
		primary = fmt.Sprintf("User%07d@Contoso.com", i)
	}
	r := exchangetest.Recipient{
		Guid:               fmt.Sprintf("%08x-5a1e-4c0d-8e11-%012x", i, i),
		PrimarySmtpAddress: primary,
		EmailAddresses:     []string{fmt.Sprintf("smtp:user%07d@contoso.onmicrosoft.com", i)},
	}
	switch i % 20 {
	case 1, 2:
		r.RecipientTypeDetails = "MailUser"
	case 3:
		r.RecipientTypeDetails = "MailContact"
	case 4:
		r.IsDirSynced = true
	}
	return r
}

// BenchmarkIndexLoad loads the preloaded index of a tenant of N
// recipients (100,000, or $SMIMESYNC_BENCH_EXCHANGE_RECIPIENTS) from the
// emulator through one Find, and reports the live heap the loaded index
// holds (HeapAlloc after a GC, with the sink alive, less HeapAlloc before
// the load) per recipient and in all, and the largest live heap seen
// during the load over the start (the emulator's pages included). The time
// per op is the load's (the emulator's side of the listing included; it
// runs in this process).
//
//	go test ./cloud/exchange -run '^$' -bench IndexLoad -benchtime 3x
//	SMIMESYNC_BENCH_EXCHANGE_RECIPIENTS=1000000 go test ./cloud/exchange -run '^$' -bench IndexLoad -benchtime 1x -timeout 30m
func BenchmarkIndexLoad(b *testing.B) {
	n := indexBenchN(b)
	var cfg exchange.Config
	e := newEnv(b, exchangetest.Config{}, func(c *exchange.Config) {
		c.RequestTimeout = time.Minute
		cfg = *c
	})
	seed := make([]exchangetest.Recipient, n)
	for i := range seed {
		seed[i] = indexBenchRecipient(i)
	}
	e.exo.Add(seed...)
	seed = nil
	last := indexBenchRecipient(n - 1)
	want := &directory.Entry{DN: "cn=last", Mail: last.PrimarySmtpAddress}

	// A listing of 1,000,000 takes the emulator minutes (it skips to
	// each page's offset from the start).
	lctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var held, loadTime, peak float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		sink, err := exchange.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		settle()
		runtime.ReadMemStats(&before)
		stop := watchLiveHeap()
		b.StartTimer()
		start := time.Now()
		r, err := sink.Find(lctx, want)
		loadTime += time.Since(start).Seconds()
		b.StopTimer()
		peak = max(peak, float64(stop())-float64(before.HeapAlloc))
		if err != nil {
			b.Fatal(err)
		}
		if r.ID != last.Guid {
			b.Fatalf("found %s, want %s", r.ID, last.Guid)
		}
		settle()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(sink)
		held += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.StartTimer()
	}
	b.StopTimer()
	runs := float64(b.N)
	b.ReportMetric(held/runs/float64(n), "index-B/recipient")
	b.ReportMetric(held/runs/(1<<20), "index-MiB")
	b.ReportMetric(peak/(1<<20), "load-peak-live-MiB")
	b.ReportMetric(loadTime/runs, "load-s")
	b.Logf("%d recipients: the index holds %.1f MiB (%.0f B/recipient); load %.2f s, live heap up to %.1f MiB over the start during it",
		n, held/runs/(1<<20), held/runs/float64(n), loadTime/runs, peak/(1<<20))
}

// settle collects garbage twice: what sync.Pools held (the JSON encoder's
// buffers of the emulator's pages, say) goes at the second.
func settle() {
	runtime.GC()
	runtime.GC()
}

// watchLiveHeap samples the live heap (runtime/metrics' /gc/heap/live:bytes,
// the heap marked live by the last GC) every millisecond until the
// returned function is called, which returns the largest sample. The
// emulator's side of a listing counts too: it runs in this process.
func watchLiveHeap() (stop func() uint64) {
	done, out := make(chan struct{}), make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-done:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-out }
}
