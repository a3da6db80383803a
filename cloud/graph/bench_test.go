package graph_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/smimesync"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkWholeRun is a whole run, LDIF → Syncer → graph sink → Graph
// emulator, for recipients whose certificates all changed (each user
// holds an older binding), against the emulator throttled at the
// service's budget: 3,000 writes per 150 s per app and tenant, 18,000 per
// 5 min per tenant.
//
// The emulator's clock runs GRAPH_BENCH_TIMESCALE times faster than the
// wall clock (default 50: the 150 s window lasts 3 s), and the sink's
// write budget is scaled the same way; GRAPH_BENCH_PACING=off turns the
// sink's pacing off, so that 429 answers alone slow it.
// GRAPH_BENCH_RECIPIENTS sets the population (default 10,000).
//
// Reported: the wall time of a run and of its planning (reading the LDIF,
// the policy, listing the users), the lower bound the budget allows
// (the first 3,000 writes at once, then 3,000 per window: ⌊(n−1)/3000⌋
// windows), their ratio, and what the sink sent per recipient: HTTP
// requests (listing pages and $batch requests), requests inside batches,
// and 429 answers.
//
//	go test -run '^$' -bench WholeRun -benchtime 1x ./cloud/graph
func BenchmarkWholeRun(b *testing.B) {
	n := envInt("GRAPH_BENCH_RECIPIENTS", 10000)
	scale := float64(envInt("GRAPH_BENCH_TIMESCALE", 50))
	pacing := os.Getenv("GRAPH_BENCH_PACING") != "off"
	const budget, window = graphtest.DefaultWriteBudget, graphtest.DefaultWriteWindow

	src, users := population(b, n)
	ldif := filepath.Join(b.TempDir(), "directory.ldif")
	f, err := os.Create(ldif)
	if err != nil {
		b.Fatal(err)
	}
	if err := directory.WriteLDIF(f, src...); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	windows := (n - 1) / budget
	lower := time.Duration(float64(time.Duration(windows)*window) / scale)

	var elapsed, planning time.Duration
	var st graphtest.Stats
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		e := newEnv(b, users, func(c *graphtest.Config) { c.TimeScale = scale }, func(c *graph.Config) {
			c.Retry = graph.RetryPolicy{} // the defaults: Retry-After decides
			c.WriteBudget = graph.WriteBudget{Writes: budget, Window: time.Duration(float64(window) / scale)}
			if !pacing {
				c.WriteBudget.Writes = -1
				c.Retry.MaxThrottled = 1 << 20
			}
		})
		s := &smimesync.Syncer{Source: directory.LDIFFile{Path: ldif}, Sink: e.sink, Concurrency: 64, Policy: &smimesync.Policy{Now: testclock.Now}}
		start := time.Now()
		b.StartTimer()
		plan, err := s.Plan(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		planning += time.Since(start)
		// Every recipient's current set is unknown (the sink cannot read it
		// back and the state is new): the guard rightly stops such a first
		// run until someone confirms it.
		plan.Force = true
		rep, err := s.Apply(context.Background(), plan)
		b.StopTimer()
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Summary.Written != n {
			b.Fatalf("written %d of %d: %+v", rep.Summary.Written, n, rep.Summary)
		}
		g := e.graph.Stats()
		if g.Writes != n {
			b.Fatalf("the emulator applied %d writes for %d recipients", g.Writes, n)
		}
		st.Requests += g.Requests
		st.BatchItems += g.BatchItems
		st.Throttled += g.Throttled
	}
	per := float64(b.N)
	run := elapsed / time.Duration(b.N)
	b.ReportMetric(run.Seconds(), "s/run")
	b.ReportMetric(planning.Seconds()/per, "plan-s")
	b.ReportMetric(lower.Seconds(), "lowerbound-s")
	b.ReportMetric(run.Seconds()/lower.Seconds(), "x-lowerbound")
	b.ReportMetric(float64(st.Requests)/per/float64(n), "requests/recipient")
	b.ReportMetric(float64(st.BatchItems)/per/float64(n), "items/recipient")
	b.ReportMetric(float64(st.Throttled)/per/float64(n), "429s/recipient")
	b.ReportMetric(0, "ns/op")
}
