package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

// childEnv, set to "1", makes the program (or the test binary) run one
// pass as described on its standard input and print the outcome as JSON:
// each pass runs in a process of its own, so that its peak RSS is its own.
const childEnv = "SMIMESYNC_BENCH_CHILD"

// passSpec is what one pass runs. The parent hands it to the child as
// JSON on standard input.
type passSpec struct {
	// Name names the pass in errors.
	Name string `json:"name"`
	// Full makes the pass ignore the saved delta cookie (Syncer.PlanFull).
	Full bool `json:"full,omitempty"`
	// Force overrides the mass-change guard (Plan.Force), as an admin
	// does for the first run against a tenant whose certificates a sink
	// cannot read back.
	Force bool `json:"force,omitempty"`
	// LDIF is the file an LDIF source reads; LDAP configures an LDAP
	// source instead.
	LDIF string    `json:"ldif,omitempty"`
	LDAP *ldapSpec `json:"ldap,omitempty"`
	// Sink says where to publish.
	Sink sinkSpec `json:"sink"`
	// State is the path of the state kept between passes; StateKind says
	// what keeps it: bolt (smimesync.BoltState, what the example binary
	// uses) or file (smimesync.FileState, JSON and its journal).
	State     string `json:"state"`
	StateKind string `json:"stateKind,omitempty"`
	// ReadOnly makes the pass read the source alone: Source.Read with a
	// callback that counts the entries, no policy, no sink, no state (the
	// baseline a pass over an unchanged directory compares with).
	ReadOnly bool `json:"readOnly,omitempty"`
	// Concurrency is the Syncer's (0: the sink's preference, else the
	// Syncer's default).
	Concurrency int `json:"concurrency,omitempty"`
	// RecheckNotFound is the Syncer's.
	RecheckNotFound time.Duration `json:"recheckNotFound,omitempty"`
	// HeapProfile, when not empty, is where the pass writes the heap
	// profile of its highest heap (see memSampler).
	HeapProfile string `json:"heapProfile,omitempty"`
	// MapLimit is the BoltState's (see -map-limit).
	MapLimit int64 `json:"mapLimit,omitempty"`
	// MemoryLimit, when not empty, is the GOMEMLIMIT of the pass's child
	// process (the Go runtime's soft memory limit, such as "200MiB").
	MemoryLimit string `json:"memoryLimit,omitempty"`
	// CPUProfile and MemProfile, when set, are where the pass writes its
	// CPU profile and its allocation profile (both over the pass alone,
	// as its other measurements).
	CPUProfile string `json:"cpuProfile,omitempty"`
	MemProfile string `json:"memProfile,omitempty"`
	// Report, when not empty, is a report store (smimesync/report) the
	// pass's report is merged into after the pass, as `smimesync run`
	// does (-report): Record, then RecipientsExpiring for the metrics.
	Report string `json:"report,omitempty"`
}

// reportOutcome is what merging a pass into the report store cost: the
// time of Record and of the two RecipientsExpiring counts the metrics
// take after it, the peaks of memory over them (measured as a pass's),
// and the store's size after.
type reportOutcome struct {
	Record      time.Duration `json:"record"`
	Expiring    time.Duration `json:"expiring"`
	PeakRSS     uint64        `json:"peakRSS"`
	PeakAnonRSS uint64        `json:"peakAnonRSS"`
	PeakHeap    uint64        `json:"peakHeap"`
	Bytes       int64         `json:"bytes"`
	// Rows and Unlisted count the pass's rows (what the merge writes)
	// and its unlisted entries (read, unchanged: no row).
	Rows     int `json:"rows"`
	Unlisted int `json:"unlisted"`
}

// ldapSpec is an LDAP source reading BaseDN as an administrator over
// StartTLS.
type ldapSpec struct {
	URL      string `json:"url"`
	CAFile   string `json:"caFile"`
	BindDN   string `json:"bindDN"`
	Password string `json:"password"`
	BaseDN   string `json:"baseDN"`
}

// sinkSpec says how a pass builds its sink.
type sinkSpec struct {
	// Kind is exchange, graph, file or memory (memory: in process only).
	Kind string `json:"kind"`
	// File is the file sink's path.
	File string `json:"file,omitempty"`
	// Cloud reaches an emulator (exchange, graph).
	Cloud *cloudSpec `json:"cloud,omitempty"`
}

// cloudSpec reaches an emulated Microsoft 365 tenant.
type cloudSpec struct {
	TenantID     string `json:"tenantID"`
	Organization string `json:"organization"`
	ClientID     string `json:"clientID"`
	Secret       string `json:"secret"`
	// Login is the token endpoint; Endpoint the service's (Exchange or
	// Graph) base URL.
	Login    string `json:"login"`
	Endpoint string `json:"endpoint"`
	// CA is the PEM certificate the emulators' TLS chains to.
	CA []byte `json:"ca"`
	// ReadBack is the Exchange sink's read_back.
	ReadBack string `json:"readBack,omitempty"`
	// WriteBudget and WriteWindow pace the Graph sink (Writes < 0: off);
	// the window is scaled like the emulator's clock.
	WriteBudget int           `json:"writeBudget,omitempty"`
	WriteWindow time.Duration `json:"writeWindow,omitempty"`
}

// passOutcome is what a pass measured.
type passOutcome struct {
	// Summary is the report's.
	Summary smimesync.Summary `json:"summary"`
	// Full is the plan's: the source read every entry in scope.
	Full bool `json:"full"`
	// Plan and Apply time the two halves.
	Plan  time.Duration `json:"plan"`
	Apply time.Duration `json:"apply"`
	// Mallocs and AllocBytes are runtime.MemStats deltas over the pass.
	Mallocs    uint64 `json:"mallocs"`
	AllocBytes uint64 `json:"allocBytes"`
	// PeakRSS is VmHWM in bytes (0 when unknown); RSSFrom says how it was
	// measured. It includes the file-backed pages the pass touched: the
	// program's code, and the pages of the bbolt state file's memory map
	// (page cache, which the kernel can reclaim).
	PeakRSS uint64 `json:"peakRSS"`
	RSSFrom string `json:"rssFrom"`
	// PeakAnonRSS is the highest RssAnon sampled during the pass: the
	// process's own memory, without the pages of mapped files (0 when
	// unknown). FileRSSAtPeak is RssFile when the sampled VmRSS was
	// highest. PeakHeap is the highest size of the Go heap's objects
	// (runtime/metrics heapMetric). SampledFrom says how they were
	// measured.
	PeakAnonRSS   uint64 `json:"peakAnonRSS"`
	FileRSSAtPeak uint64 `json:"fileRSSAtPeak"`
	PeakHeap      uint64 `json:"peakHeap"`
	// MemoryLimit is the Go runtime's soft memory limit in the pass's
	// process, in bytes (GOMEMLIMIT, -memlimit); 0 when there is none.
	MemoryLimit int64  `json:"memoryLimit,omitempty"`
	SampledFrom string `json:"sampledFrom"`
	// State measures the state over the pass (zero for a read-only
	// pass).
	State stateOutcome `json:"state"`
	// SinkRequests, SinkRetries and SinkThrottled are the sink's own
	// counters, when it keeps them.
	SinkRequests  int64 `json:"sinkRequests"`
	SinkRetries   int64 `json:"sinkRetries"`
	SinkThrottled int64 `json:"sinkThrottled"`
	// Errors are the report's.
	Errors []string `json:"errors,omitempty"`
	// Error is set when the pass could not run.
	Error string `json:"error,omitempty"`
	// Report is what merging the pass into the report store cost
	// (passSpec.Report); nil without one.
	Report *reportOutcome `json:"report,omitempty"`
}

// sinkCounters reads a sink's own counters.
type sinkCounters func() (requests, retries, throttled int64)

// stateOutcome is what the state cost a pass.
type stateOutcome struct {
	// Busy is the wall time during which at least one of the State's
	// methods was running: the pass's time in the state.
	Busy time.Duration `json:"busy"`
	// Load, Save, Prepare and Record are the time spent in each of the
	// State's methods; Record is summed over the calls, which Apply makes
	// from several workers at once (waiting for each other when the
	// state serializes them), so it can exceed Busy and the apply's wall
	// time.
	Load    time.Duration `json:"load"`
	Save    time.Duration `json:"save"`
	Prepare time.Duration `json:"prepare"`
	Record  time.Duration `json:"record"`
	// Records is the number of Record calls.
	Records int64 `json:"records"`
	// Bytes is the size of the state's files after the pass (the bbolt
	// file; or the JSON file and its journal).
	Bytes int64 `json:"bytes"`
}

// recordingState is a State that records each write and prepares for
// them: what FileState and BoltState are, and what Apply looks for.
type recordingState interface {
	smimesync.Recorder
	smimesync.Preparer
}

// timedState wraps a State and measures the time spent in its methods. It
// is a Recorder and a Preparer, as both states the benchmark uses are, so
// that Apply treats it as it treats them.
type timedState struct {
	st                          recordingState
	load, save, prepare, record atomic.Int64 // nanoseconds, summed
	records                     atomic.Int64

	mu       sync.Mutex
	inFlight int
	since    time.Time     // when inFlight last went from 0 to 1
	busy     time.Duration // the union of the calls' intervals
}

// enter notes a call's start; the function it returns notes its end and
// adds its duration to d.
func (t *timedState) enter(d *atomic.Int64) func() {
	t0 := time.Now()
	t.mu.Lock()
	if t.inFlight == 0 {
		t.since = t0
	}
	t.inFlight++
	t.mu.Unlock()
	return func() {
		t1 := time.Now()
		d.Add(int64(t1.Sub(t0)))
		t.mu.Lock()
		if t.inFlight--; t.inFlight == 0 {
			t.busy += t1.Sub(t.since)
		}
		t.mu.Unlock()
	}
}

// Load times the wrapped Load.
func (t *timedState) Load(ctx context.Context) (*smimesync.Snapshot, error) {
	defer t.enter(&t.load)()
	return t.st.Load(ctx)
}

// Save times the wrapped Save.
func (t *timedState) Save(ctx context.Context, s *smimesync.Snapshot) error {
	defer t.enter(&t.save)()
	return t.st.Save(ctx, s)
}

// Prepare times the wrapped Prepare.
func (t *timedState) Prepare(ctx context.Context) error {
	defer t.enter(&t.prepare)()
	return t.st.Prepare(ctx)
}

// Record times the wrapped Record.
func (t *timedState) Record(ctx context.Context, id string, p smimesync.Published) error {
	defer t.enter(&t.record)()
	t.records.Add(1)
	return t.st.Record(ctx, id, p)
}

// timedStore is a timedState over a store that also reads records one at
// a time (smimesync.RecordStore), keeps memos (smimesync.MemoState) and
// locks (smimesync.Locker): a BoltState. It forwards those, so that the
// Syncer takes the same paths as over the bare store; the view's reads,
// SaveChanges and the memos' reads and saves are timed as load, save and
// (memos) load and save too.
type timedStore struct {
	*timedState
	store storeState
}

// storeState is what timedStore wraps.
type storeState interface {
	recordingState
	smimesync.RecordStore
	smimesync.MemoState
	smimesync.Locker
}

// wrapState returns the timed wrapper of st that has st's methods.
func wrapState(st recordingState) (smimesync.State, *timedState) {
	ts := &timedState{st: st}
	if s, ok := st.(storeState); ok {
		return &timedStore{timedState: ts, store: s}, ts
	}
	return ts, ts
}

// View opens the store's view; its reads are timed as loads.
func (t *timedStore) View(ctx context.Context) (smimesync.StateView, error) {
	done := t.enter(&t.load)
	v, err := t.store.View(ctx)
	done()
	if err != nil {
		return nil, err
	}
	return &timedView{v: v, t: t.timedState}, nil
}

// SaveChanges times the store's SaveChanges as a save.
func (t *timedStore) SaveChanges(ctx context.Context, head *smimesync.Snapshot, changes map[string]smimesync.Published) error {
	defer t.enter(&t.save)()
	return t.store.SaveChanges(ctx, head, changes)
}

// LookupMemo times a memo's read as a load.
func (t *timedStore) LookupMemo(ctx context.Context, key string) (smimesync.Memo, bool, error) {
	defer t.enter(&t.load)()
	return t.store.LookupMemo(ctx, key)
}

// SaveMemos times the memos' save as a save.
func (t *timedStore) SaveMemos(ctx context.Context, put map[string]smimesync.Memo, drop []string) error {
	defer t.enter(&t.save)()
	return t.store.SaveMemos(ctx, put, drop)
}

// Lock locks the store (not timed: it is the instance lock).
func (t *timedStore) Lock() (func() error, error) { return t.store.Lock() }

// timedView times a store view's reads as loads.
type timedView struct {
	v smimesync.StateView
	t *timedState
}

func (v *timedView) Header(ctx context.Context) (*smimesync.Snapshot, error) {
	defer v.t.enter(&v.t.load)()
	return v.v.Header(ctx)
}

func (v *timedView) Published(ctx context.Context, key string) (smimesync.Published, bool, error) {
	defer v.t.enter(&v.t.load)()
	return v.v.Published(ctx, key)
}

func (v *timedView) EachPublished(ctx context.Context, skip func(key string) bool, fn func(key string, p smimesync.Published) error) error {
	defer v.t.enter(&v.t.load)()
	return v.v.EachPublished(ctx, skip, fn)
}

func (v *timedView) Holders(ctx context.Context, recipient string) ([]string, error) {
	defer v.t.enter(&v.t.load)()
	return v.v.Holders(ctx, recipient)
}

func (v *timedView) Close() error { return v.v.Close() }

func (t *timedState) outcome() stateOutcome {
	t.mu.Lock()
	busy := t.busy
	t.mu.Unlock()
	return stateOutcome{
		Busy: busy,
		Load: time.Duration(t.load.Load()), Save: time.Duration(t.save.Load()),
		Prepare: time.Duration(t.prepare.Load()), Record: time.Duration(t.record.Load()),
		Records: t.records.Load(),
	}
}

// State kinds (-state).
const (
	stateBolt = "bolt"
	stateFile = "file"
)

// buildState returns the state of a pass.
func buildState(spec passSpec) (recordingState, error) {
	switch spec.StateKind {
	case stateBolt, "":
		return &smimesync.BoltState{Path: spec.State, MapLimit: spec.MapLimit}, nil
	case stateFile:
		return smimesync.FileState(spec.State), nil
	}
	return nil, fmt.Errorf("bench: pass %s: unknown state %q (want bolt or file)", spec.Name, spec.StateKind)
}

// stateBytes is the size of the state's files at path.
func stateBytes(kind, path string) (int64, error) {
	paths := []string{path}
	if kind == stateFile {
		paths = append(paths, path+".journal")
	}
	var n int64
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		n += fi.Size()
	}
	return n, nil
}

// runPass runs one pass: Plan (or PlanFull), then Apply, and measures it;
// or, for a read-only pass, the source's Read alone. sink, when not nil,
// is used instead of one built from spec.Sink. The peak RSS is the
// process's VmHWM, reset (when the kernel lets us) just before the pass;
// the peaks of anonymous RSS and of the Go heap are sampled during it.
func runPass(ctx context.Context, spec passSpec, sink cloud.Sink) (*passOutcome, error) {
	src, closeSrc, err := buildSource(spec)
	if err != nil {
		return nil, err
	}
	defer closeSrc()
	prof, err := startProfiles(spec)
	if err != nil {
		return nil, err
	}
	defer prof.stop()
	if spec.ReadOnly {
		return readPass(ctx, spec, src, prof)
	}
	var counters sinkCounters
	if sink == nil {
		if sink, counters, err = buildSink(spec.Sink); err != nil {
			return nil, err
		}
	}
	st, err := buildState(spec)
	if err != nil {
		return nil, err
	}
	state, ts := wrapState(st)
	s := &smimesync.Syncer{
		Source:      src,
		Sink:        sink,
		Policy:      &smimesync.Policy{Now: refClock},
		State:       state,
		Concurrency: spec.Concurrency,

		RecheckNotFound: spec.RecheckNotFound,
	}
	m := startMeasure(spec.HeapProfile)
	defer m.stop()
	t0 := time.Now()
	var plan *smimesync.Plan
	if spec.Full {
		plan, err = s.PlanFull(ctx)
	} else {
		plan, err = s.Plan(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("%s pass: %w", spec.Name, err)
	}
	t1 := time.Now()
	plan.Force = spec.Force
	rep, aerr := s.Apply(ctx, plan)
	t2 := time.Now()
	out := &passOutcome{Plan: t1.Sub(t0), Apply: t2.Sub(t1)}
	m.end(out)
	if err := m.sampler.profileErr; err != nil {
		return nil, fmt.Errorf("%s pass: writing the heap profile: %w", spec.Name, err)
	}
	if err := prof.stop(); err != nil {
		return nil, fmt.Errorf("%s pass: %w", spec.Name, err)
	}
	if rep == nil {
		return nil, fmt.Errorf("%s pass: %w", spec.Name, aerr)
	}
	out.Summary, out.Full, out.Errors = rep.Summary, rep.Full, rep.Errors
	out.State = ts.outcome()
	if out.State.Bytes, err = stateBytes(spec.StateKind, spec.State); err != nil {
		return nil, fmt.Errorf("%s pass: measuring the state: %w", spec.Name, err)
	}
	if aerr != nil && len(out.Errors) == 0 {
		out.Errors = []string{aerr.Error()}
	}
	if counters != nil {
		out.SinkRequests, out.SinkRetries, out.SinkThrottled = counters()
	}
	if spec.Report != "" {
		if out.Report, err = recordReport(spec, rep, aerr, t2); err != nil {
			return nil, fmt.Errorf("%s pass: %w", spec.Name, err)
		}
	}
	return out, nil
}

// recordReport merges the pass's report into the report store, as
// `smimesync run` does after each pass, and measures it.
func recordReport(spec passSpec, rep *smimesync.Report, passErr error, finished time.Time) (*reportOutcome, error) {
	m := startMeasure("")
	defer m.stop()
	t0 := time.Now()
	store, err := report.Open(spec.Report, nil)
	if err != nil {
		return nil, err
	}
	if err := store.Record("exchange", "run", rep, passErr, finished); err != nil {
		return nil, err
	}
	t1 := time.Now()
	for _, days := range []int{7, 30} {
		store.RecipientsExpiring("exchange", refClock().AddDate(0, 0, days))
	}
	t2 := time.Now()
	var pass passOutcome
	m.end(&pass)
	out := &reportOutcome{Record: t1.Sub(t0), Expiring: t2.Sub(t1), PeakRSS: pass.PeakRSS, PeakAnonRSS: pass.PeakAnonRSS, PeakHeap: pass.PeakHeap}
	fi, err := os.Stat(spec.Report)
	if err != nil {
		return nil, err
	}
	out.Bytes = fi.Size()
	for range rep.Rows() {
		out.Rows++
	}
	out.Unlisted = rep.UnlistedCount()
	return out, nil
}

// readPass reads the source alone, counting the entries.
func readPass(ctx context.Context, spec passSpec, src directory.Source, prof *profiles) (*passOutcome, error) {
	m := startMeasure("")
	defer m.stop()
	t0 := time.Now()
	n := 0
	res, err := src.Read(ctx, directory.Pass{}, func(*directory.Entry) error { n++; return nil })
	if err != nil {
		return nil, fmt.Errorf("%s pass: %w", spec.Name, err)
	}
	out := &passOutcome{Plan: time.Since(t0), Full: res.Full}
	m.end(out)
	if err := prof.stop(); err != nil {
		return nil, fmt.Errorf("%s pass: %w", spec.Name, err)
	}
	out.Summary.Entries = n
	return out, nil
}

// profiles are a pass's CPU and allocation profiles (spec.CPUProfile,
// spec.MemProfile), from startProfiles to stop.
type profiles struct {
	cpu     *os.File
	mem     string
	stopped bool
}

// startProfiles starts the CPU profile of spec and notes where its
// allocation profile goes. The allocation profile is written by stop: it
// holds the allocations since the process started, which are the pass's
// own in a child (the benchmark's too with -inprocess).
func startProfiles(spec passSpec) (*profiles, error) {
	p := &profiles{mem: spec.MemProfile}
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("bench: %s pass: %w", spec.Name, err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("bench: %s pass: %w", spec.Name, err)
		}
		p.cpu = f
	}
	return p, nil
}

// stop ends the profiles and writes them; the calls after the first do
// nothing.
func (p *profiles) stop() error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	var err error
	if p.cpu != nil {
		pprof.StopCPUProfile()
		err = p.cpu.Close()
	}
	if p.mem != "" {
		err = cmp.Or(err, writeProfile(p.mem, "allocs"))
	}
	return err
}

// measurement measures a pass's memory, from startMeasure to end.
type measurement struct {
	m0      runtime.MemStats
	reset   bool
	sampler *memSampler
}

// startMeasure collects the garbage, resets the peak RSS, starts sampling
// the memory and reads the allocation counters at the start of a pass.
// The caller defers stop, so that the sampler ends with the pass whatever
// happens.
func startMeasure(heapProfile string) *measurement {
	m := &measurement{reset: resetPeakRSS()}
	m.sampler = startSampler(sampleEvery, heapProfile)
	runtime.ReadMemStats(&m.m0)
	return m
}

// stop stops the sampler and returns its peaks; end calls it, and so may
// a deferred call after it.
func (m *measurement) stop() memPeaks { return m.sampler.stop() }

// end fills out's allocations and memory peaks at the end of a pass.
func (m *measurement) end(out *passOutcome) {
	peaks := m.stop()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	out.Mallocs, out.AllocBytes = m1.Mallocs-m.m0.Mallocs, m1.TotalAlloc-m.m0.TotalAlloc
	out.PeakRSS, out.RSSFrom = peakRSS()
	switch {
	case out.PeakRSS == 0:
	case m.reset:
		out.RSSFrom = "VmHWM reset through /proc/self/clear_refs just before the pass"
	default:
		out.RSSFrom = "VmHWM since the process started (/proc/self/clear_refs refused)"
	}
	out.PeakAnonRSS, out.FileRSSAtPeak, out.PeakHeap = peaks.Anon, peaks.FileAtPeak, peaks.Heap
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		out.MemoryLimit = l
	}
	out.SampledFrom = peaks.from()
}

func buildSource(spec passSpec) (directory.Source, func(), error) {
	switch {
	case spec.LDIF != "" && spec.LDAP == nil:
		return directory.LDIFFile{Path: spec.LDIF}, func() {}, nil
	case spec.LDAP != nil && spec.LDIF == "":
		l := spec.LDAP
		src, err := ldapsource.New(ldapsource.Config{
			URL:    l.URL,
			CAFile: l.CAFile,
			Bind:   ldapsource.Bind{User: l.BindDN, Password: l.Password},
			BaseDN: ldapsource.StringList{l.BaseDN},
		}, nil)
		if err != nil {
			return nil, nil, err
		}
		return src, func() { _ = src.Close() }, nil
	}
	return nil, nil, fmt.Errorf("bench: pass %s needs exactly one of an LDIF file and an LDAP source", spec.Name)
}

// buildSink makes the sink a child process publishes through.
func buildSink(spec sinkSpec) (cloud.Sink, sinkCounters, error) {
	switch spec.Kind {
	case "file":
		return &cloud.FileSink{Path: spec.File}, nil, nil
	case "exchange":
		return buildExchangeSink(spec.Cloud)
	case "graph":
		return buildGraphSink(spec.Cloud)
	case "memory":
		return nil, nil, errors.New("bench: the memory sink lives in the benchmark's own process; it cannot be rebuilt in a child")
	}
	return nil, nil, fmt.Errorf("bench: unknown sink %q", spec.Kind)
}

// emulatorClient returns an HTTP client that trusts the emulators' CA and
// keeps enough idle connections for the sinks' concurrency.
func emulatorClient(caPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("bench: the emulators' CA is not PEM")
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t}, nil
}

// secretVar is the variable name the sinks' credential is told to read;
// the value comes from the spec, never from the environment.
const secretVar = "SMIMESYNC_BENCH_SECRET"

func credentialConfig(c *cloudSpec, exo bool) azauth.Config {
	ep := azauth.Endpoints{Login: c.Login}
	if exo {
		ep.Exchange = c.Endpoint
	} else {
		ep.Graph = c.Endpoint
	}
	return azauth.Config{
		TenantID:  c.TenantID,
		ClientID:  c.ClientID,
		Auth:      azauth.Auth{Method: azauth.ClientSecret, SecretEnv: secretVar},
		Endpoints: ep,
	}
}

func getenvSecret(c *cloudSpec) func(string) string {
	return func(k string) string {
		if k == secretVar {
			return c.Secret
		}
		return ""
	}
}

func buildExchangeSink(c *cloudSpec) (cloud.Sink, sinkCounters, error) {
	if c == nil {
		return nil, nil, errors.New("bench: the exchange sink needs its emulator's address")
	}
	client, err := emulatorClient(c.CA)
	if err != nil {
		return nil, nil, err
	}
	ac := credentialConfig(c, true)
	cred, err := ac.Credential(azauth.WithHTTPClient(client), azauth.WithGetenv(getenvSecret(c)))
	if err != nil {
		return nil, nil, err
	}
	s, err := exchange.New(exchange.Config{
		Config:       ac,
		Organization: c.Organization,
		HTTPClient:   client,
		Credential:   cred,
		ReadBack:     exchange.ReadBack(c.ReadBack),
	})
	if err != nil {
		return nil, nil, err
	}
	return s, func() (int64, int64, int64) {
		st := s.Stats()
		return st.Requests, st.Retries, st.Throttled
	}, nil
}

// childMain runs one pass for a parent: the spec on standard input, the
// outcome as JSON on standard output. It returns the exit code.
func childMain(stdin io.Reader, stdout io.Writer) int {
	var spec passSpec
	out := &passOutcome{}
	if err := json.NewDecoder(stdin).Decode(&spec); err != nil {
		out.Error = "bench child: reading the pass: " + err.Error()
	} else if o, err := runPass(context.Background(), spec, nil); err != nil {
		out.Error = err.Error()
	} else {
		out = o
		out.RSSFrom += ", in the pass's own process"
	}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		return 1
	}
	if out.Error != "" {
		return 1
	}
	return 0
}

// runChild runs spec in a child process (this executable again, with
// childEnv set) and returns its outcome.
func runChild(ctx context.Context, spec passSpec, stderr io.Writer) (*passOutcome, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: finding this program to run a pass in a child: %w", err)
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	if spec.MemoryLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+spec.MemoryLimit)
	}
	cmd.Stdin = bytes.NewReader(in)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = stderr
	runErr := cmd.Run()
	var o passOutcome
	if err := json.Unmarshal(out.Bytes(), &o); err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("bench: %s pass in a child process: %w", spec.Name, runErr)
		}
		return nil, fmt.Errorf("bench: %s pass: reading the child's outcome: %w", spec.Name, err)
	}
	if o.Error != "" {
		return nil, fmt.Errorf("bench: %s pass (child process): %s", spec.Name, o.Error)
	}
	if runErr != nil {
		return nil, fmt.Errorf("bench: %s pass in a child process: %w", spec.Name, runErr)
	}
	return &o, nil
}

// runInProcess runs spec in this process with sink. The peak RSS then
// includes the emulators and whatever else this process holds.
func runInProcess(ctx context.Context, spec passSpec, sink cloud.Sink) (*passOutcome, error) {
	o, err := runPass(ctx, spec, sink)
	if err != nil {
		return nil, err
	}
	o.RSSFrom += ", in the benchmark's process (includes the sink and the benchmark)"
	return o, nil
}

// peakRSS reads VmHWM from /proc/self/status (Linux).
func peakRSS() (uint64, string) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, "unknown (no /proc/self/status)"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return n << 10, ""
				}
			}
		}
	}
	return 0, "unknown (no VmHWM in /proc/self/status)"
}

// resetPeakRSS returns memory to the system and resets VmHWM to the
// current RSS by writing "5" to /proc/self/clear_refs (Linux 4.0+). It
// reports whether the reset was allowed.
func resetPeakRSS() bool {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}
