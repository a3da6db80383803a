package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report is everything one invocation measured.
type Report struct {
	// Machine is where it ran.
	Machine Machine `json:"machine"`
	// Command reproduces it.
	Command string `json:"command"`
	// Runs are the configurations measured.
	Runs []*Run `json:"runs"`
	// LoadBefore and LoadAfter are the machine's one-minute load average
	// when the benchmark started and ended (other work on the machine
	// slows it down; -1 when unknown).
	LoadBefore float64 `json:"loadBefore"`
	LoadAfter  float64 `json:"loadAfter"`
}

// loadAverage returns the one-minute load average from /proc/loadavg, or
// -1.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// Machine describes the computer the benchmark ran on.
type Machine struct {
	// CPUs is the number of logical CPUs (nproc); CPUModel the first
	// "model name" of /proc/cpuinfo.
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpuModel"`
	// MemoryGB is MemTotal of /proc/meminfo, in 10^9 bytes.
	MemoryGB float64 `json:"memoryGB"`
	// GoVersion, OS and Date (UTC, YYYY-MM-DD) complete the picture.
	GoVersion string `json:"goVersion"`
	OS        string `json:"os"`
	Date      string `json:"date"`
}

// thisMachine describes the running machine: runtime.NumCPU (nproc), the
// first "model name" of /proc/cpuinfo, MemTotal of /proc/meminfo.
func thisMachine(now time.Time) Machine {
	m := Machine{
		CPUs:      runtime.NumCPU(),
		CPUModel:  "unknown",
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		Date:      now.UTC().Format("2006-01-02"),
	}
	if v, ok := procField("/proc/cpuinfo", "model name"); ok {
		m.CPUModel = v
	}
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		if f := strings.Fields(v); len(f) == 2 && f[1] == "kB" {
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				m.MemoryGB = kb * 1024 / 1e9
			}
		}
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc
// file.
func procField(path, key string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// WriteMarkdown writes the report as Markdown: the machine, then for each
// run a paragraph saying how it ran and a table with a row per pass.
func (r *Report) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	m := r.Machine
	fmt.Fprintf(bw, "Machine: %d CPUs (%s), %.0f GB memory, %s, %s, %s.", m.CPUs, m.CPUModel, m.MemoryGB, m.GoVersion, m.OS, m.Date)
	if r.LoadBefore >= 0 && r.LoadAfter >= 0 {
		fmt.Fprintf(bw, " Load average (1 min): %.2f before, %.2f after.", r.LoadBefore, r.LoadAfter)
	}
	fmt.Fprintf(bw, "\n\n")
	if r.Command != "" {
		fmt.Fprintf(bw, "Command: `%s`\n\n", r.Command)
	}
	for _, run := range r.Runs {
		run.writeMarkdown(bw)
	}
	return bw.Flush()
}

func (run *Run) writeMarkdown(w io.Writer) {
	d := run.Directory
	fmt.Fprintf(w, "#### %s → %s: %s users (seed %d)\n\n", run.Source, sinkName(run.Sink), thousands(float64(run.Users)), run.Seed)
	fmt.Fprintf(w, "Directory: %s certificates in userCertificate (%s good, %s expired, %s not yet valid, %s for another address, %s not for S/MIME, %s signing-only, %s damaged; %s users with none, %s with more than 15, at most %d), %s BER and %s DER userSMIMECertificate blobs, %s security-settings blobs",
		thousands(float64(d.Certificates)), thousands(float64(d.Good)), thousands(float64(d.Expired)), thousands(float64(d.NotYetValid)),
		thousands(float64(d.WrongAddress)), thousands(float64(d.NotForSMIME)), thousands(float64(d.SigningOnly)), thousands(float64(d.Damaged)),
		thousands(float64(d.UsersWithNone)), thousands(float64(d.UsersOver15)), d.MostPerUser,
		thousands(float64(d.BERBlobs)), thousands(float64(d.DERBlobs)), thousands(float64(d.SettingsBlobs)))
	if run.LDIFBytes > 0 {
		fmt.Fprintf(w, "; LDIF file %.0f MB", float64(run.LDIFBytes)/1e6)
	}
	fmt.Fprintf(w, ". Set-up: %s, %.1f s.\n\n", run.SetupNote, run.SetupSeconds)
	if run.Comparison != nil {
		run.Comparison.writeMarkdown(w)
		return
	}
	switch run.Sink {
	case "exchange", "graph":
		if run.Budget {
			fmt.Fprintf(w, "The emulator's clock is scaled ×%g: a 150 s throttling window lasts %.2f s of wall time. Write budget on: 3,000 writes per 150 s per app and tenant, the service's. Service s is the apply time in the emulator's time (wall × %g; the engine's own work is scaled too, so it overstates); bound s is the least the budget allows, ⌊(written−1)/3000⌋×150 s.", run.TimeScale, budgetWindow.Seconds()/run.TimeScale, run.TimeScale)
		} else {
			fmt.Fprintf(w, "Write budget off: the emulator never throttles (the engine's own speed).")
		}
		for _, p := range run.Passes {
			if p.BoundSeconds > 0 && p.ServiceSeconds > 1.25*p.BoundSeconds {
				fmt.Fprintf(w, " The %s pass's apply took %.0f%% longer than the budget requires: at this scale the budget allows %.0f writes per wall second, and the engine and the emulator, on this machine, set the pace instead (a lower -timescale makes the budget bind).",
					p.Name, 100*(p.ServiceSeconds/p.BoundSeconds-1), budgetWrites/(budgetWindow.Seconds()/run.TimeScale))
			}
		}
		if run.ReadBack != "" {
			fmt.Fprintf(w, " Exchange sink read_back: %s.", run.ReadBack)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
	}
	state := "a bbolt BoltState"
	if run.State == stateFile {
		state = "a JSON FileState"
	}
	if run.InProcess {
		fmt.Fprintf(w, "Passes ran in the benchmark's process (state kept in %s between them): peak RSS is its VmHWM, reset through /proc/self/clear_refs just before each pass, and includes the sink and the benchmark.", state)
	} else {
		fmt.Fprintf(w, "Each pass ran in a process of its own (state kept in %s between them): peak RSS is that process's VmHWM, reset through /proc/self/clear_refs just before the pass.", state)
	}
	mapped := "the program's code"
	if run.State != stateFile {
		mapped += " and the pages of the state file that bbolt maps into memory (page cache, which the kernel can reclaim)"
	}
	own := "the process's own memory (Go heap, stacks, runtime)"
	if run.InProcess {
		own = "the process's own memory (Go heap, stacks, runtime; the sink's and the benchmark's included)"
	}
	fmt.Fprintf(w, " Peak RSS includes the file-backed pages the pass touched: %s; anon RSS does not. Anon RSS is the highest RssAnon of /proc/self/status, sampled every %d ms during the pass and at its end: %s. Heap MiB is the highest size of the Go heap's objects (runtime/metrics %s: live, and dead not yet collected), sampled likewise.",
		mapped, sampleEvery.Milliseconds(), own, heapMetric)
	fmt.Fprintf(w, " State s is the wall time during which one of the State's methods (load, save, a write's record) was running; state MiB the size of its files after the pass.")
	if base, p, ok := run.readRatio(); ok {
		fmt.Fprintf(w, " The %s pass took %.2f× the time of reading the source alone (%.2f s against %.2f s).", p.Name, p.WallSeconds/base.WallSeconds, p.WallSeconds, base.WallSeconds)
	}
	fmt.Fprintf(w, "\n\n")
	fmt.Fprintln(w, "| pass | source reads | entries | written | memoized | wall s | plan s | apply s | users/s | peak RSS MiB | anon RSS MiB | heap MiB | allocs | alloc MiB | state s | state MiB | requests | req/changed | 429s | service s | bound s |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, p := range run.Passes {
		req, perChanged, thr := "–", "–", "–"
		if p.Requests >= 0 {
			req, thr = thousands(float64(p.Requests)), thousands(float64(p.Throttled))
			switch {
			case p.Written > 0 && p.RequestsPerChanged >= 100:
				perChanged = thousands(p.RequestsPerChanged)
			case p.Written > 0:
				perChanged = fmt.Sprintf("%.2f", p.RequestsPerChanged)
			}
		}
		service, bound := "–", "–"
		if p.BoundSeconds > 0 {
			service, bound = thousands(p.ServiceSeconds), thousands(p.BoundSeconds)
		}
		memo := thousands(float64(p.Memoized))
		written, apply, stateS, stateMiB := thousands(float64(p.Written)), fmt.Sprintf("%.2f", p.ApplySeconds), fmt.Sprintf("%.2f", p.StateSeconds), fmt.Sprintf("%.1f", float64(p.StateBytes)/(1<<20))
		if p.ReadOnly {
			written, apply, stateS, stateMiB, memo = "–", "–", "–", "–", "–"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			p.Name, p.Read, thousands(float64(p.Entries)), written, memo, p.WallSeconds, p.PlanSeconds, apply,
			thousands(p.UsersPerSecond), thousands(float64(p.PeakRSSBytes)/(1<<20)), mebibytes(p.PeakAnonRSSBytes), mebibytes(p.PeakHeapBytes),
			thousands(float64(p.Mallocs)), thousands(float64(p.AllocBytes)/(1<<20)),
			stateS, stateMiB, req, perChanged, thr, service, bound)
	}
	fmt.Fprintln(w)
	if !slices.ContainsFunc(run.Passes, func(p PassResult) bool { return p.Report != nil }) {
		return
	}
	fmt.Fprintln(w, "After each pass, its report was merged into a report store (smimesync/report, as `smimesync run` does: Store.Record, then RecipientsExpiring for 7 and 30 days), measured apart from the pass: peak RSS, anon RSS and heap over that merge alone.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| pass | rows | unlisted | record s | expiring s | peak RSS MiB | anon RSS MiB | heap MiB | store MiB |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, p := range run.Passes {
		if r := p.Report; r != nil {
			fmt.Fprintf(w, "| %s | %s | %s | %.2f | %.3f | %s | %s | %s | %.1f |\n", p.Name, thousands(float64(r.Rows)), thousands(float64(r.Unlisted)), r.RecordSeconds, r.ExpiringSeconds,
				thousands(float64(r.PeakRSSBytes)/(1<<20)), mebibytes(r.PeakAnonRSSBytes), mebibytes(r.PeakHeapBytes), float64(r.Bytes)/(1<<20))
		}
	}
	fmt.Fprintln(w)
}

// readRatio returns the read-alone pass and the last pass that read as
// many entries and wrote nothing (the unchanged LDIF pass, Samba's full
// re-read), whose times the table compares.
func (run *Run) readRatio() (base, p PassResult, ok bool) {
	i := slices.IndexFunc(run.Passes, func(p PassResult) bool { return p.ReadOnly })
	if i < 0 || run.Passes[i].WallSeconds <= 0 {
		return base, p, false
	}
	base = run.Passes[i]
	for _, q := range run.Passes {
		if !q.ReadOnly && q.Written == 0 && q.Entries == base.Entries {
			p, ok = q, true
		}
	}
	return base, p, ok
}

func sinkName(s string) string {
	switch s {
	case "exchange":
		return "Exchange Online emulator"
	case "graph":
		return "Microsoft Graph emulator"
	case "file":
		return "file sink"
	case "memory":
		return "memory sink"
	}
	return s
}

// mebibytes formats n bytes as whole MiB with comma separators, or "–"
// when n is 0 (unknown: not measured, or a report from before it was).
func mebibytes(n uint64) string {
	if n == 0 {
		return "–"
	}
	return thousands(float64(n) / (1 << 20))
}

// thousands formats x rounded to an integer with comma separators.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
