package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
)

// Run is one configuration's measurements: a source, a sink, a directory.
type Run struct {
	// Source is ldif or samba; Sink is exchange, graph, file or memory.
	Source string `json:"source"`
	Sink   string `json:"sink"`
	// Users is the directory's size; Seed chose it.
	Users int    `json:"users"`
	Seed  uint64 `json:"seed"`
	// TimeScale is how many times faster than the wall clock the
	// emulator's clock runs; Budget says whether the service's write
	// budget is enforced.
	TimeScale float64 `json:"timeScale"`
	Budget    bool    `json:"budget"`
	// ReadBack is the Exchange sink's read_back (exchange only).
	ReadBack string `json:"readBack,omitempty"`
	// InProcess is true when the passes ran in the benchmark's process.
	InProcess bool `json:"inProcess"`
	// State is what kept the state between passes: bolt
	// (smimesync.BoltState) or file (smimesync.FileState).
	State string `json:"state,omitempty"`
	// Directory counts what the generator made; LDIFBytes is the LDIF
	// file's size (ldif only).
	Directory DirStats `json:"directory"`
	LDIFBytes int64    `json:"ldifBytes,omitempty"`
	// SetupSeconds is the time taken to make the directory (generate the
	// LDIF, or seed Samba; 0 when an earlier run's seeded OU was reused)
	// and seed the tenant; SetupNote says what it did.
	SetupSeconds float64 `json:"setupSeconds"`
	SetupNote    string  `json:"setupNote"`
	// Passes are the passes, in order.
	Passes []PassResult `json:"passes"`
	// Comparison replaces the passes with -vs-ldapsearch.
	Comparison *Comparison `json:"comparison,omitempty"`
}

// PassResult is one pass's measurements.
type PassResult struct {
	// Name is full, unchanged, delta-N or full-reread; Read says how the
	// source read.
	Name string `json:"name"`
	Read string `json:"read"`
	// Entries is the number of directory entries the pass read and
	// planned.
	Entries int `json:"entries"`
	// Written is the number of recipients written; Unchanged, Skipped
	// count the others.
	Written   int `json:"written"`
	Unchanged int `json:"unchanged"`
	Skipped   int `json:"skipped"`
	// Memoized counts the entries taken on trust from their memo
	// (smimesync.Summary.Memoized): not judged again, not looked up.
	Memoized int `json:"memoized"`
	// WallSeconds is Plan plus Apply; PlanSeconds and ApplySeconds split
	// it.
	WallSeconds  float64 `json:"wallSeconds"`
	PlanSeconds  float64 `json:"planSeconds"`
	ApplySeconds float64 `json:"applySeconds"`
	// UsersPerSecond is Entries / WallSeconds.
	UsersPerSecond float64 `json:"usersPerSecond"`
	// PeakRSSBytes is the peak resident set size; RSSFrom says how it was
	// measured. It includes the file-backed pages the pass touched, among
	// them the pages of the bbolt state file's memory map.
	PeakRSSBytes uint64 `json:"peakRSSBytes"`
	RSSFrom      string `json:"rssFrom"`
	// PeakAnonRSSBytes is the highest anonymous RSS sampled during the
	// pass (RssAnon: the process's own memory, without mapped files; 0
	// when unknown), FileRSSAtPeakBytes the file-backed RSS (RssFile) when
	// the sampled RSS was highest, PeakHeapBytes the highest size of the
	// Go heap's objects (runtime/metrics
	// /memory/classes/heap/objects:bytes). SampledFrom says how they were
	// measured.
	PeakAnonRSSBytes   uint64 `json:"peakAnonRSSBytes"`
	FileRSSAtPeakBytes uint64 `json:"fileRSSAtPeakBytes"`
	PeakHeapBytes      uint64 `json:"peakHeapBytes"`
	SampledFrom        string `json:"sampledFrom,omitempty"`
	// MemoryLimitBytes is the pass's Go soft memory limit (-memlimit); 0
	// when there was none.
	MemoryLimitBytes int64 `json:"memoryLimitBytes,omitempty"`
	// Mallocs and AllocBytes are the heap allocations of the pass.
	Mallocs    uint64 `json:"mallocs"`
	AllocBytes uint64 `json:"allocBytes"`
	// Requests is the number of requests the emulator received, Throttled
	// the 429s among them; -1 when the sink has no service.
	Requests  int `json:"requests"`
	Throttled int `json:"throttled"`
	// RequestsPerChanged is Requests / Written (0 when nothing was
	// written or nothing counts requests).
	RequestsPerChanged float64 `json:"requestsPerChanged"`
	// ServiceSeconds is ApplySeconds in the emulator's time (× TimeScale),
	// and BoundSeconds the least the budget allows (see lowerBound): both
	// only when the budget is on and the pass wrote more than one
	// window's worth.
	ServiceSeconds float64 `json:"serviceSeconds,omitempty"`
	BoundSeconds   float64 `json:"boundSeconds,omitempty"`
	// ReadOnly marks the pass that read the source alone (no policy, no
	// sink, no state): the baseline of the others.
	ReadOnly bool `json:"readOnly,omitempty"`
	// StateSeconds is the wall time during which one of the State's
	// methods (load, save, prepare, record) was running.
	// StateLoadSeconds, StateSaveSeconds and StateRecordSeconds (prepare
	// included) are the time spent in each, the records summed over
	// Apply's workers (so they can add up to more than StateSeconds),
	// and StateRecords counts the records. StateBytes is the size of the
	// state's files after the pass.
	StateSeconds       float64 `json:"stateSeconds"`
	StateLoadSeconds   float64 `json:"stateLoadSeconds"`
	StateSaveSeconds   float64 `json:"stateSaveSeconds"`
	StateRecordSeconds float64 `json:"stateRecordSeconds"`
	StateRecords       int64   `json:"stateRecords"`
	StateBytes         int64   `json:"stateBytes"`
	// Report is what merging the pass into a report store cost, after
	// the pass (-report); nil without it.
	Report *ReportResult `json:"report,omitempty"`
}

// pass is one pass of a scenario.
type pass struct {
	name, read string
	// full ignores the delta cookie; force overrides the mass-change
	// guard; readOnly reads the source alone.
	full, force, readOnly bool
	// want is the number of recipients the pass must write; -1: at
	// least one.
	want int
	// before prepares the directory (the delta's changes).
	before func(context.Context) error
	// source says what the pass reads.
	source func() (ldif string, ldap *ldapSpec)
}

// runPasses runs the passes in order against the tenant, with one state
// kept between them, and checks that each wrote what it should.
func runPasses(ctx context.Context, o *options, source string, ten tenant, dir string, passes []pass, log io.Writer) ([]PassResult, error) {
	state := filepath.Join(dir, "state.json")
	if o.State == stateBolt {
		state = filepath.Join(dir, "state.db")
	}
	reportPath := filepath.Join(dir, "state.report.db")
	for _, p := range []string{state, state + ".journal", reportPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	var out []PassResult
	for _, p := range passes {
		if p.before != nil {
			if err := p.before(ctx); err != nil {
				return nil, fmt.Errorf("bench: preparing the %s pass: %w", p.name, err)
			}
		}
		spec := passSpec{Name: p.name, Full: p.full, Force: p.force, ReadOnly: p.readOnly, State: state, StateKind: o.State,
			Sink: ten.spec(), Concurrency: o.Concurrency, RecheckNotFound: o.RecheckNotFound}
		spec.MemoryLimit, spec.MapLimit = o.MemoryLimit, o.MapLimit
		if o.Report && !p.readOnly {
			spec.Report = reportPath
		}
		if o.HeapProfile != "" && !p.readOnly {
			spec.HeapProfile = o.HeapProfile + "-" + p.name + ".pprof"
		}
		if o.CPUProfile != "" {
			spec.CPUProfile = o.CPUProfile + "." + source + "." + p.name
		}
		if o.MemProfile != "" {
			spec.MemProfile = o.MemProfile + "." + source + "." + p.name
		}
		spec.LDIF, spec.LDAP = p.source()
		ten.resetCounters()
		var (
			res *passOutcome
			err error
		)
		if s := ten.inProcess(); s != nil || o.InProcess {
			res, err = runInProcess(ctx, spec, s)
		} else {
			res, err = runChild(ctx, spec, log)
		}
		if err != nil {
			return nil, err
		}
		if res.Summary.Failed > 0 || len(res.Errors) > 0 {
			return nil, fmt.Errorf("bench: %s pass: %d writes failed, %d errors; the first: %s", p.name, res.Summary.Failed, len(res.Errors), cmp.Or(append(res.Errors, "")...))
		}
		req, thr, counted := ten.counters()
		r := passResult(p, res, req, thr, counted, o)
		switch {
		case p.readOnly && r.Entries == 0:
			return nil, fmt.Errorf("bench: the %s pass read nothing", p.name)
		case p.readOnly:
		case p.want < 0 && r.Written == 0:
			return nil, fmt.Errorf("bench: the %s pass wrote nothing", p.name)
		case p.want >= 0 && r.Written != p.want:
			return nil, fmt.Errorf("bench: the %s pass wrote %d recipients, want %d", p.name, r.Written, p.want)
		}
		fmt.Fprintf(log, "bench: %s pass: %d entries, %d written, %d memoized, %.1f s (plan %.1f s, apply %.1f s, state %.2f s), peak RSS %.0f MiB (anon %.0f MiB, heap %.0f MiB; file %.0f MiB at the sampled peak), state %.1f MiB, load average %.2f\n",
			p.name, r.Entries, r.Written, r.Memoized, r.WallSeconds, r.PlanSeconds, r.ApplySeconds, r.StateSeconds, float64(r.PeakRSSBytes)/(1<<20),
			float64(r.PeakAnonRSSBytes)/(1<<20), float64(r.PeakHeapBytes)/(1<<20), float64(r.FileRSSAtPeakBytes)/(1<<20),
			float64(r.StateBytes)/(1<<20), loadAverage())
		if res.Report != nil {
			rr := res.Report
			r.Report = &ReportResult{Rows: rr.Rows, Unlisted: rr.Unlisted, RecordSeconds: rr.Record.Seconds(), ExpiringSeconds: rr.Expiring.Seconds(),
				PeakRSSBytes: rr.PeakRSS, PeakAnonRSSBytes: rr.PeakAnonRSS, PeakHeapBytes: rr.PeakHeap, Bytes: rr.Bytes}
			fmt.Fprintf(log, "bench: %s pass: report store: %d rows, %d unlisted; record %.2f s, recipients expiring %.3f s, peak RSS %.0f MiB (anon %.0f MiB, heap %.0f MiB), store %.1f MiB\n",
				p.name, rr.Rows, rr.Unlisted, rr.Record.Seconds(), rr.Expiring.Seconds(), float64(rr.PeakRSS)/(1<<20), float64(rr.PeakAnonRSS)/(1<<20),
				float64(rr.PeakHeap)/(1<<20), float64(rr.Bytes)/(1<<20))
		}
		out = append(out, r)
	}
	return out, nil
}

// ReportResult is what merging a pass into the report store cost (-report).
type ReportResult struct {
	// Rows and Unlisted count the pass's rows, which the merge writes,
	// and its unlisted entries (read, unchanged), which it does not.
	Rows     int `json:"rows"`
	Unlisted int `json:"unlisted"`
	// RecordSeconds is report.Store.Record's time; ExpiringSeconds the
	// two RecipientsExpiring counts the metrics take after it.
	RecordSeconds   float64 `json:"recordSeconds"`
	ExpiringSeconds float64 `json:"expiringSeconds"`
	// The peaks of memory over them, measured as a pass's.
	PeakRSSBytes     uint64 `json:"peakRSSBytes"`
	PeakAnonRSSBytes uint64 `json:"peakAnonRSSBytes"`
	PeakHeapBytes    uint64 `json:"peakHeapBytes"`
	// Bytes is the store's size after the merge.
	Bytes int64 `json:"bytes"`
}

// passResult turns a pass's outcome and the service's counters into a
// row.
func passResult(p pass, res *passOutcome, requests, throttled int, counted bool, o *options) PassResult {
	s := res.Summary
	r := PassResult{
		Name:         p.name,
		Read:         p.read,
		Entries:      s.Entries,
		Written:      s.Written,
		Unchanged:    s.Unchanged,
		Skipped:      s.Skip,
		Memoized:     s.Memoized,
		PlanSeconds:  res.Plan.Seconds(),
		ApplySeconds: res.Apply.Seconds(),
		WallSeconds:  (res.Plan + res.Apply).Seconds(),
		PeakRSSBytes: res.PeakRSS,
		RSSFrom:      res.RSSFrom,
		SampledFrom:  res.SampledFrom,

		PeakAnonRSSBytes:   res.PeakAnonRSS,
		FileRSSAtPeakBytes: res.FileRSSAtPeak,
		PeakHeapBytes:      res.PeakHeap,
		MemoryLimitBytes:   res.MemoryLimit,

		Mallocs:    res.Mallocs,
		AllocBytes: res.AllocBytes,
		Requests:   -1,
		ReadOnly:   p.readOnly,

		StateSeconds:       res.State.Busy.Seconds(),
		StateLoadSeconds:   res.State.Load.Seconds(),
		StateSaveSeconds:   res.State.Save.Seconds(),
		StateRecordSeconds: (res.State.Record + res.State.Prepare).Seconds(),
		StateRecords:       res.State.Records,
		StateBytes:         res.State.Bytes,
	}
	if r.WallSeconds > 0 {
		r.UsersPerSecond = float64(r.Entries) / r.WallSeconds
	}
	if counted && !p.readOnly {
		r.Requests, r.Throttled = requests, throttled
		if r.Written > 0 {
			r.RequestsPerChanged = float64(requests) / float64(r.Written)
		}
	}
	if o.Budget && r.Written > budgetWrites {
		r.ServiceSeconds = r.ApplySeconds * o.TimeScale
		r.BoundSeconds = lowerBound(r.Written)
	}
	return r
}

// The service's write budget per app and tenant (Exchange's emulator and
// Graph's use the same figures).
const (
	budgetWrites = exchangetest.DefaultBudget
	budgetWindow = exchangetest.DefaultWindow
)

// lowerBound is the least service time n writes take under the budget:
// the first budgetWrites go at once, then each window lets the next
// budgetWrites through, so the last write cannot go before
// floor((n-1)/budgetWrites) windows have passed. (ceil(n/budgetWrites)
// windows, the figure often quoted, counts the last window whole.)
func lowerBound(n int) float64 {
	if n <= 0 {
		return 0
	}
	return math.Floor(float64(n-1)/budgetWrites) * budgetWindow.Seconds()
}

// newRun starts a Run's description from the options.
func newRun(o *options, source string, g *Generator) *Run {
	r := &Run{Source: source, Sink: o.Sink, Users: g.Users, Seed: g.Seed, TimeScale: o.TimeScale, Budget: o.Budget,
		InProcess: o.InProcess || o.Sink == "memory", State: o.State}
	if o.Sink == "exchange" {
		r.ReadBack = o.ReadBack
	}
	return r
}

// ldifScenario measures the LDIF source: it writes the synthetic
// directory as an LDIF file, then runs a full pass against an empty
// tenant, an unchanged pass, and a pass over a copy of the file where
// o.Changes users changed. LDIF has no deltas: every pass reads the whole
// file.
func ldifScenario(ctx context.Context, o *options, users int, dir string, log io.Writer) (*Run, error) {
	g, err := NewGenerator(o.Seed, users)
	if err != nil {
		return nil, err
	}
	run := newRun(o, "ldif", g)
	changed, err := g.Changed(o.Changes)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "bench: writing a synthetic directory of %d users (seed %d) to %s\n", users, o.Seed, dir)
	t0 := time.Now()
	lf, err := g.WriteLDIF(ctx, filepath.Join(dir, "directory.ldif"), changed)
	if err != nil {
		return nil, err
	}
	ten, err := newTenant(o.Sink, g, o.tenantConfig(dir))
	if err != nil {
		return nil, err
	}
	defer ten.Close()
	run.SetupSeconds = time.Since(t0).Seconds()
	run.SetupNote = fmt.Sprintf("generated the LDIF file (%.0f MB) and seeded the tenant", float64(lf.Size)/1e6)
	run.Directory, run.LDIFBytes = lf.Stats, lf.Size
	fmt.Fprintf(log, "bench: %s in %.1f s\n", run.SetupNote, run.SetupSeconds)

	current := lf.Path
	source := func() (string, *ldapSpec) { return current, nil }
	changedPath := filepath.Join(dir, "directory-changed.ldif")
	run.Passes, err = runPasses(ctx, o, "ldif", ten, dir, []pass{
		{name: "read", read: "whole file, Read alone (no policy, sink or state)", readOnly: true, source: source},
		{name: "full", read: "whole file; empty tenant", want: -1, force: true, source: source},
		{name: "unchanged", read: "whole file (LDIF has no deltas); nothing changed", want: 0, source: source},
		{name: fmt.Sprintf("delta-%d", len(changed)), read: fmt.Sprintf("whole file (LDIF has no deltas); %d users changed", len(changed)),
			want: len(changed), source: source, before: func(context.Context) error {
				if err := g.WriteChanged(lf, changedPath); err != nil {
					return err
				}
				current = changedPath
				return nil
			}},
	}, log)
	if err != nil {
		return nil, err
	}
	return run, nil
}
