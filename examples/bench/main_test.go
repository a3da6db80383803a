package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestMain lets the test binary stand in for the command as the child
// process that runs one pass.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// runJSON runs the command with args and -json and decodes its report.
func runJSON(t *testing.T, args ...string) *Report {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if code := run(ctx, append(args, "-json"), &out, &errb); code != 0 {
		t.Fatalf("bench %v: exit %d\n%s", args, code, errb.String())
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("bench %v: %v\n%s", args, err, out.String())
	}
	return &rep
}

// checkRun asserts what every tiny run must show: the passes in order,
// every entry read, what each pass wrote, and measurements that are there.
func checkRun(t *testing.T, r *Run, users int, passes []string, counted bool) {
	t.Helper()
	var names []string
	for _, p := range r.Passes {
		names = append(names, p.Name)
	}
	if diff := cmp.Diff(passes, names); diff != "" {
		t.Fatalf("passes (-want +got):\n%s", diff)
	}
	if r.Directory.Users != users || r.Directory.Certificates == 0 {
		t.Errorf("directory %+v, want %d users with certificates", r.Directory, users)
	}
	for _, p := range r.Passes {
		if p.Name == "read" {
			// The baseline: the source's Read alone, no state, no sink.
			if !p.ReadOnly || p.Entries != users || p.Written != 0 || p.Requests != -1 || p.StateBytes != 0 || p.StateSeconds != 0 {
				t.Errorf("read pass: %+v", p)
			}
			if p.WallSeconds <= 0 || p.Mallocs == 0 || (runtime.GOOS == "linux" && p.PeakRSSBytes < 1<<20) {
				t.Errorf("read pass: wall %g s, %d allocations, peak RSS %d", p.WallSeconds, p.Mallocs, p.PeakRSSBytes)
			}
			checkMemory(t, p)
			continue
		}
		if p.ReadOnly {
			t.Errorf("%s pass marked read-only", p.Name)
		}
		// Every pass loads and saves the state; each write is recorded.
		if p.StateBytes == 0 || p.StateSeconds <= 0 || p.StateLoadSeconds <= 0 || p.StateSaveSeconds <= 0 || p.StateRecords < int64(p.Written) {
			t.Errorf("%s pass: state %d bytes, %g s (load %g s, save %g s), %d records for %d written",
				p.Name, p.StateBytes, p.StateSeconds, p.StateLoadSeconds, p.StateSaveSeconds, p.StateRecords, p.Written)
		}
		// The state's wall time is at least the save's (saves are never
		// in flight with another call), and at most the pass's. (Loads
		// are not bounded so: over a store, the plan's workers read
		// records and memos at once, and their times are summed.)
		if p.StateSeconds < p.StateSaveSeconds-1e-9 || p.StateSeconds > p.WallSeconds {
			t.Errorf("%s pass: state %g s, load %g s, save %g s, wall %g s", p.Name, p.StateSeconds, p.StateLoadSeconds, p.StateSaveSeconds, p.WallSeconds)
		}
		switch {
		case p.Name == "full" && p.Written == 0,
			p.Name == "unchanged" && p.Written != 0,
			strings.HasPrefix(p.Name, "delta-") && p.Written != 10:
			t.Errorf("%s pass wrote %d", p.Name, p.Written)
		}
		// LDIF has no deltas: every pass reads the whole file.
		if fullRead := r.Source == "ldif" || p.Name == "full" || p.Name == "full-reread"; fullRead && p.Entries != users {
			t.Errorf("%s pass read %d entries, want %d", p.Name, p.Entries, users)
		}
		if p.WallSeconds <= 0 || p.PlanSeconds <= 0 || p.Mallocs == 0 || p.AllocBytes == 0 {
			t.Errorf("%s pass: wall %g s, plan %g s, %d allocations of %d bytes: want all positive", p.Name, p.WallSeconds, p.PlanSeconds, p.Mallocs, p.AllocBytes)
		}
		if runtime.GOOS == "linux" && p.PeakRSSBytes < 1<<20 {
			t.Errorf("%s pass: peak RSS %d bytes (%s)", p.Name, p.PeakRSSBytes, p.RSSFrom)
		}
		checkMemory(t, p)
		if counted != (p.Requests >= 0) {
			t.Errorf("%s pass: requests %d; counted: %v", p.Name, p.Requests, counted)
		}
		if counted && p.Written > 0 && (p.Requests == 0 || p.RequestsPerChanged != float64(p.Requests)/float64(p.Written)) {
			t.Errorf("%s pass: %d requests for %d written (%.2f each)", p.Name, p.Requests, p.Written, p.RequestsPerChanged)
		}
		// Exchange has no batches: a write is a request of its own.
		if r.Sink == "exchange" && p.Requests < p.Written {
			t.Errorf("%s pass: %d requests to Exchange for %d writes", p.Name, p.Requests, p.Written)
		}
	}
}

// checkMemory asserts that a pass's sampled memory is there and sane: a
// Go heap, and on Linux an anonymous RSS of at least 1 MiB and a
// file-backed RSS at the sampled peak, each of which the peak RSS (VmHWM,
// which counts both) covers. (Not their sum: the highest anonymous RSS
// and the highest RSS may be sampled at different times.)
func checkMemory(t *testing.T, p PassResult) {
	t.Helper()
	if p.PeakHeapBytes == 0 || !strings.Contains(p.SampledFrom, heapMetric) {
		t.Errorf("%s pass: heap %d bytes (%s)", p.Name, p.PeakHeapBytes, p.SampledFrom)
	}
	if runtime.GOOS != "linux" {
		return
	}
	// VmHWM is read after the last sample; 1 MiB of slack for the
	// kernel's per-CPU counters.
	if p.PeakAnonRSSBytes < 1<<20 || p.PeakAnonRSSBytes > p.PeakRSSBytes+1<<20 ||
		p.FileRSSAtPeakBytes == 0 || p.FileRSSAtPeakBytes > p.PeakRSSBytes+1<<20 {
		t.Errorf("%s pass: anon RSS %d bytes, file RSS %d bytes at the sampled peak, peak RSS %d bytes (%s)",
			p.Name, p.PeakAnonRSSBytes, p.FileRSSAtPeakBytes, p.PeakRSSBytes, p.SampledFrom)
	}
	if !strings.Contains(p.SampledFrom, "RssAnon") || !strings.Contains(p.SampledFrom, " samples)") {
		t.Errorf("%s pass: sampled from %q", p.Name, p.SampledFrom)
	}
}

// TestTinyRun runs the command as the README does, on 50 users: LDIF to
// the Exchange emulator (with its write budget, and without), to the file
// sink and to the Graph emulator (with -tags graph), each pass in a child
// process; and to the memory sink, in this process.
func TestTinyRun(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		counted bool
	}{
		{"exchange", []string{"-sink", "exchange", "-timescale", "1000"}, true},
		{"exchange-filestate", []string{"-sink", "exchange", "-budget=false", "-state", "file"}, true},
		{"exchange-never-read-back", []string{"-sink", "exchange", "-budget=false", "-read-back", "never", "-memlimit", "300MiB"}, true},
		{"memory", []string{"-sink", "memory"}, false},
		{"file", []string{"-sink", "file"}, false},
		{"graph", []string{"-sink", "graph", "-timescale", "1000"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "graph" && !graphTag {
				t.Skip("the Graph sink is built with -tags graph")
			}
			dir := t.TempDir()
			table := filepath.Join(dir, "table.md")
			rep := runJSON(t, append([]string{"-users", "50", "-dir", dir, "-o", table}, tt.args...)...)
			if len(rep.Runs) != 1 {
				t.Fatalf("%d runs, want 1", len(rep.Runs))
			}
			checkRun(t, rep.Runs[0], 50, []string{"read", "full", "unchanged", "delta-10"}, tt.counted)
			wantState, stateFile := "bolt", filepath.Join(dir, "state.db")
			if tt.name == "exchange-filestate" {
				wantState, stateFile = "file", filepath.Join(dir, "state.json")
			}
			if rep.Runs[0].State != wantState {
				t.Errorf("state %q, want %q", rep.Runs[0].State, wantState)
			}
			if fi, err := os.Stat(stateFile); err != nil || fi.Size() > rep.Runs[0].Passes[3].StateBytes {
				t.Errorf("state file %s: %v; the last pass measured %d bytes", stateFile, err, rep.Runs[0].Passes[3].StateBytes)
			}
			// Over the store (BoltState) the unchanged pass takes its
			// entries on trust from their memos; a JSON FileState keeps none.
			if m := rep.Runs[0].Passes[2].Memoized; (wantState == "bolt") != (m > 0) {
				t.Errorf("unchanged pass over the %s state: %d entries memoized", wantState, m)
			}
			for _, p := range rep.Runs[0].Passes {
				if want := map[bool]int64{true: 300 << 20}[slices.Contains(tt.args, "-memlimit")]; !p.ReadOnly && p.MemoryLimitBytes != want {
					t.Errorf("%s pass: memory limit %d bytes, want %d", p.Name, p.MemoryLimitBytes, want)
				}
			}
			if rep.Runs[0].InProcess != (tt.name == "memory") {
				t.Errorf("in process: %v", rep.Runs[0].InProcess)
			}
			md, err := os.ReadFile(table)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range []string{"| read | whole file, Read alone (no policy, sink or state) | 50 | – |", "| full | whole file; empty tenant | 50 |", "| unchanged |", "| delta-10 |", "Machine: ",
				"| state s | state MiB |", "| peak RSS MiB | anon RSS MiB | heap MiB | allocs |", "anon RSS does not", "The unchanged pass took ", "× the time of reading the source alone", "state kept in a " + map[string]string{"bolt": "bbolt BoltState", "file": "JSON FileState"}[wantState]} {
				if !bytes.Contains(md, []byte(row)) {
					t.Errorf("table lacks %q:\n%s", row, md)
				}
			}
			if runtime.GOOS == "linux" {
				checkMemoryColumns(t, md)
			}
			if tt.counted && !bytes.Contains(md, []byte("scaled ×1000")) && !bytes.Contains(md, []byte("Write budget off")) {
				t.Errorf("table does not say how the emulator's clock runs:\n%s", md)
			}
		})
	}
}

// checkMemoryColumns asserts that every pass's row of a table gives a
// number of MiB for peak RSS, anon RSS and heap, with the anon RSS no
// higher than the peak RSS.
func checkMemoryColumns(t *testing.T, md []byte) {
	t.Helper()
	var head []string
	rows := 0
	for line := range strings.SplitSeq(string(md), "\n") {
		cells := strings.Split(line, " | ")
		switch {
		case !strings.HasPrefix(line, "| "):
		case head == nil:
			head = cells
		case strings.HasPrefix(line, "|---"):
		default:
			rows++
			mib := map[string]int{}
			for _, col := range []string{"peak RSS MiB", "anon RSS MiB", "heap MiB"} {
				i := slices.Index(head, col)
				if i < 0 || i >= len(cells) {
					t.Fatalf("no column %q in %q", col, line)
				}
				n, err := strconv.Atoi(strings.ReplaceAll(cells[i], ",", ""))
				if err != nil || n < 1 {
					t.Errorf("%s %q in %q", col, cells[i], line)
				}
				mib[col] = n
			}
			if mib["anon RSS MiB"] > mib["peak RSS MiB"]+1 {
				t.Errorf("anon RSS above peak RSS in %q", line)
			}
		}
	}
	if rows != 4 {
		t.Errorf("%d rows of passes, want 4:\n%s", rows, md)
	}
}

// TestSambaRun runs the Samba scenario on 40 users of the machine's Samba
// DC (skipped, or failed with SMIMESYNC_REQUIRE_SERVERS=1, without it).
func TestSambaRun(t *testing.T) {
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o, err := parseFlags([]string{"-source", "samba", "-users", "40", "-dir", t.TempDir(), "-timescale", "1000"}, &errb)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := measure(ctx, o, &out)
	if errors.Is(err, errNoServer) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("%s", out.String())
	r := rep.Runs[0]
	checkRun(t, r, 40, []string{"read", "full", "unchanged", "delta-10", "full-reread"}, true)
	for _, p := range r.Passes {
		switch p.Name {
		case "unchanged", "delta-10":
			// A DirSync delta reads what changed, not the directory. It
			// also yields every tombstone made since (Samba cannot tell
			// whether a deleted object was in scope): other tests on the
			// shared DC delete their OUs meanwhile, and those deletions
			// are planned as skips.
			if live := p.Entries - p.Skipped; live >= 40 {
				t.Errorf("%s pass read %d entries (%d skipped): not a delta", p.Name, p.Entries, p.Skipped)
			}
		case "full-reread":
			if p.Entries != 40 {
				t.Errorf("full re-read read %d entries", p.Entries)
			}
		}
	}
}

// TestSambaVsLdapsearch runs -vs-ldapsearch on 40 users of the machine's
// Samba DC: each repetition times the whole plan and ldapsearch over the
// same entries, and the summary is their minimum and median.
func TestSambaVsLdapsearch(t *testing.T) {
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	prof := filepath.Join(dir, "cpu.out")
	o, err := parseFlags([]string{"-source", "samba", "-users", "40", "-dir", dir, "-vs-ldapsearch", "3", "-cpuprofile", prof}, &errb)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := measure(ctx, o, &out)
	if errors.Is(err, errNoServer) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	c := rep.Runs[0].Comparison
	if c == nil || len(c.Reps) != 3 || len(rep.Runs[0].Passes) != 0 {
		t.Fatalf("comparison %+v, passes %v", c, rep.Runs[0].Passes)
	}
	var ratios []float64
	for i, r := range c.Reps {
		if r.PlanEntries != 40 || r.ReadEntries != 40 || r.LdapsearchEntries != 40 || r.PlanSeconds <= 0 || r.ReadSeconds <= 0 || r.LdapsearchSeconds <= 0 ||
			r.Ratio != r.PlanSeconds/r.LdapsearchSeconds || r.ReadRatio != r.ReadSeconds/r.LdapsearchSeconds {
			t.Errorf("repetition %d: %+v", i+1, r)
		}
		ratios = append(ratios, r.Ratio)
	}
	slices.Sort(ratios)
	if c.RatioMin != ratios[0] || c.RatioMedian != ratios[1] || c.Concurrency != smimesync.DefaultConcurrency || !strings.HasPrefix(c.URL, "ldaps://") {
		t.Errorf("comparison %+v", c)
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("CPU profile: %v", err)
	}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| repetition | entries | plan s | read alone s | ldapsearch s | ratio | read ratio |", "Ratio = plan ÷ ldapsearch: minimum "} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}

// TestTimedStateBusy: the state's wall time counts overlapping calls once.
func TestTimedStateBusy(t *testing.T) {
	ts := &timedState{st: &slowState{d: 50 * time.Millisecond}}
	var wg sync.WaitGroup
	t0 := time.Now()
	for range 4 {
		wg.Go(func() {
			if err := ts.Record(context.Background(), "x", smimesync.Published{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	wall := time.Since(t0)
	o := ts.outcome()
	if o.Records != 4 || o.Record < 4*50*time.Millisecond {
		t.Errorf("%d records, %v in Record", o.Records, o.Record)
	}
	if o.Busy < 50*time.Millisecond || o.Busy > wall {
		t.Errorf("busy %v; the calls overlapped within %v", o.Busy, wall)
	}
}

// slowState is a recordingState whose every method takes d.
type slowState struct{ d time.Duration }

func (s *slowState) Load(context.Context) (*smimesync.Snapshot, error) {
	time.Sleep(s.d)
	return (&smimesync.MemoryState{}).Load(context.Background())
}
func (s *slowState) Save(context.Context, *smimesync.Snapshot) error { time.Sleep(s.d); return nil }
func (s *slowState) Prepare(context.Context) error                   { time.Sleep(s.d); return nil }
func (s *slowState) Record(context.Context, string, smimesync.Published) error {
	time.Sleep(s.d)
	return nil
}

func TestMinMedian(t *testing.T) {
	for _, tt := range []struct {
		in       []float64
		lo, want float64
	}{{nil, 0, 0}, {[]float64{3}, 3, 3}, {[]float64{5, 1, 3}, 1, 3}, {[]float64{4, 1, 3, 2}, 1, 2.5}} {
		if lo, med := minMedian(tt.in); lo != tt.lo || med != tt.want {
			t.Errorf("minMedian(%v) = %g, %g; want %g, %g", tt.in, lo, med, tt.lo, tt.want)
		}
	}
}

// TestPassProfiles: -cpuprofile and -memprofile write each pass's CPU and
// allocation profiles (gzipped, as pprof writes them), one file per pass
// named after the source and the pass, passes run in a child process
// included.
func TestPassProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.out"), filepath.Join(dir, "mem.out")
	rep := runJSON(t, "-users", "20", "-sink", "file", "-dir", dir, "-cpuprofile", cpu, "-memprofile", mem)
	if len(rep.Runs) != 1 || len(rep.Runs[0].Passes) != 4 {
		t.Fatalf("runs %+v", rep.Runs)
	}
	for _, p := range rep.Runs[0].Passes {
		for _, prefix := range []string{cpu, mem} {
			b, err := os.ReadFile(prefix + ".ldif." + p.Name)
			if err != nil {
				t.Error(err)
				continue
			}
			if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
				t.Errorf("%s.ldif.%s is not a gzipped profile: % x", prefix, p.Name, b[:min(len(b), 8)])
			}
		}
	}
	if strings.Contains(rep.Command, "profile") {
		t.Errorf("command %q names where the profiles went", rep.Command)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-source", "ldap"}, {"-sink", "s3"}, {"-timescale", "0"}, {"-read-back", "sometimes"},
		{"-changes", "0"}, {"-users", "-1"}, {"extra"}, {"-nosuchflag"}, {"-state", "sqlite"},
		{"-vs-ldapsearch", "3"}, {"-source", "ldif,samba", "-vs-ldapsearch", "3"}, {"-source", "samba", "-vs-ldapsearch", "-1"},
		{"-source", "samba", "-vs-ldapsearch", "3", "-memprofile", "mem.out"},
		{"-source", "samba", "-vs-ldapsearch", "3", "-read-connections", "-1"},
		{"-source", "samba", "-vs-ldapsearch", "3", "-read-connections", "17"},
		{"-source", "samba", "-read-connections", "2"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
		if errb.Len() == 0 {
			t.Errorf("%v: nothing said on standard error", args)
		}
	}
	// More changes than users is an error of the run, not of the flags.
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-users", "5", "-changes", "6", "-sink", "memory", "-dir", t.TempDir()}, &out, &errb); code != 1 {
		t.Errorf("6 changes among 5 users: exit %d, want 1 (%s)", code, errb.String())
	}
}

// TestGeneratorDeterministic: a seed makes the same users byte for byte,
// whatever the order; another seed makes others.
func TestGeneratorDeterministic(t *testing.T) {
	a, err := NewGenerator(7, 100)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewGenerator(7, 100)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewGenerator(8, 100)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for _, i := range []int{99, 3, 42, 0} {
		ea, _, err := a.Entry(i, false)
		if err != nil {
			t.Fatal(err)
		}
		eb, _, err := b.Entry(i, false)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ea, eb); diff != "" {
			t.Errorf("user %d differs between two generators of one seed:\n%s", i, diff)
		}
		ec, _, err := c.Entry(i, false)
		if err != nil {
			t.Fatal(err)
		}
		if cmp.Equal(ea.UserCertificate, ec.UserCertificate) && len(ea.UserCertificate) > 0 {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d users have the same certificates under seeds 7 and 8", same)
	}
	ca, _ := a.Changed(10)
	cb, _ := b.Changed(10)
	if !slices.Equal(ca, cb) || len(ca) != 10 {
		t.Errorf("changed users %v and %v", ca, cb)
	}
}

// TestGeneratorKinds: each kind of certificate the generator makes gets
// the policy's verdict it stands for.
func TestGeneratorKinds(t *testing.T) {
	g, err := NewGenerator(1, 10)
	if err != nil {
		t.Fatal(err)
	}
	pol := &smimesync.Policy{Now: refClock}
	tests := []struct {
		kind    certKind
		keep    bool
		reasons []smimesync.Reason
	}{
		{kindGood, true, nil},
		{kindExpired, false, []smimesync.Reason{smimesync.ReasonExpired}},
		{kindNotYetValid, false, []smimesync.Reason{smimesync.ReasonNotYetValid}},
		{kindWrongAddress, false, []smimesync.Reason{smimesync.ReasonNoMatchingAddress}},
		{kindNotForSMIME, false, []smimesync.Reason{smimesync.ReasonNotForSMIME}},
		{kindSigningOnly, true, nil},
		{kindDamaged, false, []smimesync.Reason{smimesync.ReasonUnparseable}},
	}
	for _, tt := range tests {
		c, err := g.issue(3, 0, tt.kind, newRand(1, "test", uint64(tt.kind)))
		if err != nil {
			t.Fatal(err)
		}
		e := &directory.Entry{ID: "u3", DN: "CN=User 000003", Mail: g.Mail(3), UserCertificate: [][]byte{c.der}}
		d := pol.Evaluate(context.Background(), e).Decisions()
		if len(d) != 1 || d[0].Keep != tt.keep || !slices.Equal(d[0].Reasons, tt.reasons) {
			t.Errorf("kind %d: decisions %v, want keep=%v reasons %v", tt.kind, d, tt.keep, tt.reasons)
		}
	}

	// The blobs: BER (indefinite lengths) and DER, signed by the user's
	// certificate, which they carry; and Outlook's security settings.
	good, err := g.issue(3, 0, kindGood, newRand(1, "test", 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, ber := range []bool{true, false} {
		raw, err := g.blob(good, ber)
		if err != nil {
			t.Fatal(err)
		}
		if got := raw[1] == 0x80; got != ber {
			t.Errorf("blob BER=%v starts % x", ber, raw[:4])
		}
		b, err := smimesync.ParseSMIMECertificate(raw)
		if err != nil {
			t.Fatalf("blob BER=%v: %v", ber, err)
		}
		if b.BER != ber || !b.Verified || len(b.Certificates) != 2 || len(b.Signers) != 1 {
			t.Errorf("blob BER=%v: BER %v, verified %v (%v), %d certificates, %d signers", ber, b.BER, b.Verified, b.VerifyError, len(b.Certificates), len(b.Signers))
		}
		e := &directory.Entry{ID: "u3", DN: "CN=User 000003", Mail: g.Mail(3), UserSMIMECertificate: [][]byte{raw}}
		if d := pol.Evaluate(context.Background(), e).Decisions(); len(d) != 1 || !d[0].Keep {
			t.Errorf("blob BER=%v: decisions %v, want it kept", ber, d)
		}
	}
	e := &directory.Entry{ID: "u3", DN: "CN=User 000003", Mail: g.Mail(3), UserSMIMECertificate: [][]byte{securitySettings}}
	if d := pol.Evaluate(context.Background(), e).Decisions(); len(d) != 1 || d[0].Keep || !slices.Contains(d[0].Reasons, smimesync.ReasonSecuritySettings) {
		t.Errorf("security settings: decisions %v", d)
	}
}

// TestWriteChanged: the delta's LDIF file differs from the original in the
// changed users only, each of whom has one more certificate, and reads
// back whole.
func TestWriteChanged(t *testing.T) {
	g, err := NewGenerator(3, 300)
	if err != nil {
		t.Fatal(err)
	}
	changed, err := g.Changed(10)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lf, err := g.WriteLDIF(context.Background(), filepath.Join(dir, "a.ldif"), changed)
	if err != nil {
		t.Fatal(err)
	}
	if lf.Stats.Users != 300 {
		t.Fatalf("wrote %d users", lf.Stats.Users)
	}
	if err := g.WriteChanged(lf, filepath.Join(dir, "b.ldif")); err != nil {
		t.Fatal(err)
	}
	read := func(name string) map[string]*directory.Entry {
		out := map[string]*directory.Entry{}
		_, err := directory.LDIFFile{Path: filepath.Join(dir, name)}.Read(context.Background(), directory.Pass{}, func(e *directory.Entry) error {
			out[e.Mail] = e
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := read("a.ldif"), read("b.ldif")
	if len(a) != 300 || len(b) != 300 {
		t.Fatalf("read %d and %d users", len(a), len(b))
	}
	var diff []string
	for mail, ea := range a {
		eb := b[mail]
		if !cmp.Equal(ea, eb) {
			diff = append(diff, mail)
			if len(eb.UserCertificate) != len(ea.UserCertificate)+1 {
				t.Errorf("%s: %d certificates, then %d", mail, len(ea.UserCertificate), len(eb.UserCertificate))
			}
		}
	}
	var want []string
	for _, i := range changed {
		want = append(want, g.Mail(i))
	}
	slices.Sort(diff)
	if d := cmp.Diff(want, diff); d != "" {
		t.Errorf("changed users (-want +got):\n%s", d)
	}
}

// TestMarkdownGolden renders a fixed report (testdata/report.json) as
// testdata/report.golden.md; -update rewrites the golden file.
func TestMarkdownGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := rep.WriteMarkdown(&got); err != nil {
		t.Fatal(err)
	}
	golden := "testdata/report.golden.md"
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Errorf("markdown (-golden +got):\n%s", diff)
	}
}

func TestThousands(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{{0, "0"}, {999, "999"}, {999.6, "1,000"}, {1234567, "1,234,567"}, {100000, "100,000"}, {-4321, "-4,321"}} {
		if got := thousands(tt.in); got != tt.want {
			t.Errorf("thousands(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPeakRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("VmHWM is Linux's")
	}
	n, why := peakRSS()
	if n < 1<<20 {
		t.Fatalf("peak RSS %d bytes (%s)", n, why)
	}
}

// TestPeakRSSPerPass: a pass's peak RSS is its own, not the process's
// since it started: memory the process touched and freed before the pass
// does not count.
func TestPeakRSSPerPass(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("VmHWM is Linux's")
	}
	if !resetPeakRSS() {
		t.Skip("/proc/self/clear_refs refused")
	}
	g, err := NewGenerator(1, 20)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := g.WriteLDIF(context.Background(), filepath.Join(t.TempDir(), "d.ldif"), nil)
	if err != nil {
		t.Fatal(err)
	}
	const big = 512 << 20
	b := make([]byte, big)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	b = nil
	if n, _ := peakRSS(); n < big {
		t.Fatalf("peak RSS %d after touching %d bytes", n, big)
	}
	o, err := runInProcess(context.Background(), passSpec{Name: "read", ReadOnly: true, LDIF: lf.Path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Summary.Entries != 20 {
		t.Errorf("read %d entries", o.Summary.Entries)
	}
	if o.PeakRSS == 0 || o.PeakRSS > big/2 {
		t.Errorf("pass peak RSS %d bytes (%s): the process's earlier %d bytes counted", o.PeakRSS, o.RSSFrom, big)
	}
	if !strings.Contains(o.RSSFrom, "clear_refs") {
		t.Errorf("RSSFrom %q does not say how", o.RSSFrom)
	}
}

// TestPeakAnonRSSPerPass: the sampled anonymous RSS and heap catch memory
// allocated and freed in the middle of a measured section, which the RSS
// at its end does not show.
func TestPeakAnonRSSPerPass(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("RssAnon is Linux's")
	}
	m := startMeasure("")
	defer m.stop()
	const big = 64 << 20
	b := make([]byte, big)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	// Hold it until the sampler has read it twice (whenever the machine
	// lets its goroutine run).
	deadline := time.Now().Add(30 * time.Second)
	for n := m.sampler.samples.Load(); m.sampler.samples.Load() < n+2; {
		if time.Now().After(deadline) {
			t.Fatalf("the sampler took %d samples in 30 s", m.sampler.samples.Load()-n)
		}
		time.Sleep(time.Millisecond)
	}
	runtime.KeepAlive(b)
	b = nil
	runtime.GC()
	debug.FreeOSMemory()
	out := &passOutcome{}
	m.end(out)
	if out.PeakAnonRSS < 48<<20 || out.PeakHeap < 48<<20 {
		t.Errorf("peak anon RSS %d bytes, heap %d bytes, over %d bytes allocated and touched (%s)", out.PeakAnonRSS, out.PeakHeap, big, out.SampledFrom)
	}
	s := startSampler(time.Hour, "") // one sample: the RSS now
	now := s.stop()
	if now.Anon == 0 || now.Anon > out.PeakAnonRSS-32<<20 {
		t.Errorf("anon RSS %d bytes at the end, peak %d bytes: the %d bytes were not freed, or the peak is the end's", now.Anon, out.PeakAnonRSS, big)
	}
	if out.PeakRSS < out.PeakAnonRSS {
		t.Errorf("peak RSS %d bytes, below the anon RSS %d", out.PeakRSS, out.PeakAnonRSS)
	}
}

// TestSamplerStops: stop ends the sampler's goroutine, takes a last
// sample, and may be called again.
func TestSamplerStops(t *testing.T) {
	var ss []*memSampler
	for range 20 {
		ss = append(ss, startSampler(time.Millisecond, ""))
	}
	for _, s := range ss {
		n := s.samples.Load()
		p := s.stop()
		if p.Samples <= n || p.Heap == 0 {
			t.Errorf("stop took no last sample: %d samples before, %+v after", n, p)
		}
		if q := s.stop(); q != p {
			t.Errorf("a second stop: %+v, then %+v", p, q)
		}
	}
	// A goroutine that has closed done may still be on its way out.
	for deadline := time.Now().Add(10 * time.Second); ; {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "(*memSampler).run") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a sampler's goroutine runs after stop:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSampleAllocatesNothing: sampling does not add to the pass's
// allocation counters.
func TestSampleAllocatesNothing(t *testing.T) {
	s := startSampler(time.Hour, "")
	defer s.stop()
	if n := testing.AllocsPerRun(100, s.sample); n != 0 {
		t.Errorf("a sample allocates %g times", n)
	}
}

func TestStatusKB(t *testing.T) {
	const status = "Name:\tbench\nVmHWM:\t  900 kB\nVmRSS:\t  800 kB\nRssAnon:\t  300 kB\nRssFile:\t  500 kB\nRssShmem:\t 0 kB\nThreads:\t5\n"
	if rss, anon, file := statusKB([]byte(status)); rss != 800<<10 || anon != 300<<10 || file != 500<<10 {
		t.Errorf("statusKB = %d, %d, %d", rss, anon, file)
	}
	if rss, anon, file := statusKB([]byte("VmRSS:\t 8x kB\nRssAnon: 12 MB\nRssFile:")); rss != 0 || anon != 0 || file != 0 {
		t.Errorf("statusKB of garbage = %d, %d, %d", rss, anon, file)
	}
}

// BenchmarkSample measures one sample of a pass's memory: what the
// sampler costs every sampleEvery.
func BenchmarkSample(b *testing.B) {
	s := startSampler(time.Hour, "")
	defer s.stop()
	for b.Loop() {
		s.sample()
	}
}

// BenchmarkEntry measures making one synthetic user: what the set-up of a
// run costs per user.
func BenchmarkEntry(b *testing.B) {
	g, err := NewGenerator(1, 100000)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if _, _, err := g.Entry(i%g.Users, false); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func TestLowerBound(t *testing.T) {
	for _, tt := range []struct {
		writes int
		want   float64
	}{{0, 0}, {1, 0}, {3000, 0}, {3001, 150}, {6000, 150}, {7191, 300}, {72017, 3600}} {
		if got := lowerBound(tt.writes); got != tt.want {
			t.Errorf("lowerBound(%d) = %g s, want %g s", tt.writes, got, tt.want)
		}
	}
}

// TestSamplerHeapProfile: with a profile path the sampler writes the heap
// profile of the highest heap it saw, one that lists the allocation that
// made it.
func TestSamplerHeapProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heap.pprof")
	s := startSampler(time.Millisecond, path)
	runtime.GC() // the profile is as of the last collection
	keep := heapProfileBallast(64 << 20)
	runtime.GC()
	s.sample()
	s.stop()
	runtime.KeepAlive(keep)
	if s.profileErr != nil {
		t.Fatal(s.profileErr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the profile is not gzip (pprof's format): %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("heapProfileBallast")) {
		t.Errorf("the profile (%d bytes) does not name heapProfileBallast, which holds 64 MiB", len(raw))
	}
}

//go:noinline
func heapProfileBallast(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// TestMemLimitFlag: -memlimit takes what GOMEMLIMIT takes, for the child
// processes only; -map-limit a number of bytes, not negative.
func TestMemLimitFlag(t *testing.T) {
	var errb strings.Builder
	for _, bad := range [][]string{
		{"-memlimit", "200M"}, {"-memlimit", "-1MiB"}, {"-map-limit", "-1"}, {"-memlimit", "200MiB", "-inprocess"}, {"-memlimit", "200MiB", "-sink", "memory"},
	} {
		if _, err := parseFlags(bad, &errb); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
	o, err := parseFlags([]string{"-memlimit", "200MiB", "-map-limit", "16777216"}, &errb)
	if err != nil || o.MemoryLimit != "200MiB" || !strings.Contains(o.command, "-memlimit=200MiB") || o.MapLimit != 16<<20 {
		t.Fatalf("-memlimit 200MiB: %+v, %v", o, err)
	}
}
