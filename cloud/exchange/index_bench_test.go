package exchange_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
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
// the load) per recipient and in all. It also reports the largest live
// heap, over the start, between two pages of the listing (sampled when
// the next page is asked: about 25 samples a load): what the load keeps
// of the pages it read, besides the index so far. load-s is the load's
// time (the emulator's side of the listing included: it runs in this
// process), the sampling left out; ns/op includes the sampling.
//
//	go test ./cloud/exchange -run '^$' -bench IndexLoad -benchtime 3x
//	SMIMESYNC_BENCH_EXCHANGE_RECIPIENTS=1000000 go test ./cloud/exchange -run '^$' -bench IndexLoad -benchtime 1x -timeout 60m
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
	sampler := &pageSampler{next: cfg.HTTPClient.Transport, every: max(1, n/exchange.DefaultPageSize/25)}
	cfg.HTTPClient = &http.Client{Transport: sampler}

	// A listing of 1,000,000 takes the emulator and the sink some 20 s
	// (the emulator resumes each page where the last one ended).
	lctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var held, loadTime, between float64
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
		sampler.start()
		b.StartTimer()
		start := time.Now()
		r, err := sink.Find(lctx, want)
		loadTime += time.Since(start).Seconds() - sampler.spent().Seconds()
		b.StopTimer()
		between = max(between, float64(sampler.peak())-float64(before.HeapAlloc))
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
	b.ReportMetric(between/(1<<20), "between-pages-MiB")
	b.ReportMetric(loadTime/runs, "load-s")
	b.Logf("%d recipients: the index holds %.1f MiB (%.0f B/recipient); between pages up to %.1f MiB; load %.2f s (sampling left out)",
		n, held/runs/(1<<20), held/runs/float64(n), between/(1<<20), loadTime/runs)
}

// settle collects garbage twice: what sync.Pools held (the JSON encoder's
// buffers of the emulator's pages, say) goes at the second.
func settle() {
	runtime.GC()
	runtime.GC()
}

// pageSampler is a transport that, before every every-th Get-Recipient
// request, reads the live heap (after settle): the sink has handled the
// page before and not yet asked for the next one.
type pageSampler struct {
	next  http.RoundTripper
	every int

	mu    sync.Mutex
	n     int
	max   uint64
	taken time.Duration // spent sampling
}

func (p *pageSampler) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n, p.max, p.taken = 0, 0, 0
}

func (p *pageSampler) peak() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}

func (p *pageSampler) spent() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.taken
}

func (p *pageSampler) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-CmdletName") == "Get-Recipient" {
		p.mu.Lock()
		if p.n%p.every == 0 {
			start := time.Now()
			var m runtime.MemStats
			settle()
			runtime.ReadMemStats(&m)
			p.max = max(p.max, m.HeapAlloc)
			p.taken += time.Since(start)
		}
		p.n++
		p.mu.Unlock()
	}
	return p.next.RoundTrip(r)
}
