package exchange_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// sliceSource is an in-memory directory.Source.
type sliceSource []*directory.Entry

func (s sliceSource) Read(ctx context.Context, _ directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	for _, e := range s {
		c := *e
		if err := yield(&c); err != nil {
			return directory.Result{}, err
		}
	}
	return directory.Result{Full: true}, ctx.Err()
}

// BenchmarkWholeRun runs LDIF-sized work through the Syncer and the
// Exchange sink: 10,000 recipients whose certificates changed, against the
// emulator throttled at the service's budget (3,000 writes per 150 s per
// app and tenant) with its clock running 25 times faster (a 150 s window
// lasts 6 s). It reports the run's time in service seconds next to the
// lower bounds the budget allows, and the requests sent per recipient.
//
//	go test ./cloud/exchange -run '^$' -bench WholeRun -benchtime 1x
func BenchmarkWholeRun(b *testing.B) {
	for _, rb := range []exchange.ReadBack{exchange.ReadBackAuto, exchange.ReadBackNever} {
		b.Run("read_back="+string(rb), func(b *testing.B) { benchWholeRun(b, rb) })
	}
}

func benchWholeRun(b *testing.B, readBack exchange.ReadBack) {
	const (
		n     = 10000
		scale = 25.0
	)
	budget, window := exchangetest.DefaultBudget, exchangetest.DefaultWindow
	p := newPKI(b)
	from, until := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := make(sliceSource, n)
	seed := make([]exchangetest.Recipient, n)
	for i := range n {
		mail := fmt.Sprintf("user%05d@contoso.com", i)
		entries[i] = &directory.Entry{
			ID: fmt.Sprintf("b0000000-0000-4000-8000-%012d", i), DN: fmt.Sprintf("CN=User %05d,OU=Staff,DC=contoso,DC=com", i), Mail: mail,
			UserCertificate: [][]byte{p.issue(b, mail, int64(2*i+1000), from, until)},
		}
		seed[i] = exchangetest.Recipient{
			Guid: fmt.Sprintf("c0000000-0000-4000-8000-%012d", i), PrimarySmtpAddress: mail,
			UserCertificate: [][]byte{p.issue(b, mail, int64(2*i+1001), from, until)}, // the old one
		}
	}
	var total, apply time.Duration
	var requests, writes, throttled int
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		e := newEnv(b, exchangetest.Config{Budget: budget, Window: window, TimeScale: scale}, func(c *exchange.Config) {
			c.ReadBack = readBack
			c.Retry = exchange.RetryPolicy{} // the defaults
			c.RequestTimeout = 30 * time.Second
		})
		e.exo.Add(seed...)
		s := &smimesync.Syncer{Source: entries, Sink: e.sink, Policy: &smimesync.Policy{Now: func() time.Time { return policyNow }}, State: &smimesync.MemoryState{}}
		b.StartTimer()
		start := time.Now()
		plan, err := s.Plan(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		applyStart := time.Now()
		// Every recipient's current set is unknown (the sink cannot read it
		// back and the state is new): the guard rightly stops such a first
		// run until someone confirms it.
		plan.Force = true
		rep, err := s.Apply(context.Background(), plan)
		if err != nil {
			b.Fatal(err)
		}
		apply += time.Since(applyStart)
		total += time.Since(start)
		b.StopTimer()
		if rep.Summary.Written != n {
			b.Fatalf("written %d, want %d", rep.Summary.Written, n)
		}
		for id, c := range e.exo.WriteCounts() {
			if c != 1 {
				b.Fatalf("%s written %d times", id, c)
			}
		}
		requests += e.exo.Requests("")
		writes += e.exo.Requests("Set-Mailbox")
		throttled += e.exo.Throttled()
	}
	runs := float64(b.N)
	service := func(d time.Duration) float64 { return d.Seconds() * scale / runs }
	// The lead's bound: ceil(n/budget) windows. The tight one: the last
	// batch can start as soon as the window before it ends.
	bound := math.Ceil(float64(n)/float64(budget)) * window.Seconds()
	tight := math.Floor(float64(n-1)/float64(budget)) * window.Seconds()
	b.ReportMetric(service(total), "service-s/run")
	b.ReportMetric(service(apply), "apply-service-s/run")
	b.ReportMetric(bound, "bound-s")
	b.ReportMetric(service(total)/bound, "ratio")
	b.ReportMetric(service(apply)/tight, "apply/tight-bound")
	b.ReportMetric(float64(requests)/runs/n, "requests/recipient")
	b.ReportMetric(float64(writes)/runs/n, "writes/recipient")
	b.ReportMetric(float64(throttled)/runs, "429s/run")
	b.Logf("%d recipients, clock x%.0f: run %.1f s service (%.2f s wall), apply %.1f s; bound ceil(n/%d)*%.0fs = %.0f s (ratio %.2f), tight bound %.0f s (apply ratio %.2f); %.3f requests/recipient (%.3f Set-Mailbox), %d 429s",
		n, scale, service(total), total.Seconds()/runs, service(apply), budget, window.Seconds(), bound, service(total)/bound, tight, service(apply)/tight,
		float64(requests)/runs/n, float64(writes)/runs/n, throttled)
}
