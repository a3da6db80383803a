package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/internal/atomicfile"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/metrics"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// syncBuffer is a bytes.Buffer the service may write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds, or fails the test after 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tenantCerts reads what the file sink holds for a recipient.
func tenantCerts(t *testing.T, path, recipient string) (cloud.FileRecipient, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return cloud.FileRecipient{}, false
	}
	var doc struct {
		Recipients map[string]cloud.FileRecipient `json:"recipients"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return cloud.FileRecipient{}, false // caught mid-rename: try again
	}
	r, ok := doc.Recipients[recipient]
	return r, ok
}

// dropSMIMEBlob removes Alice's userSMIMECertificate from an LDIF file.
func dropSMIMEBlob(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	skipping := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "userSMIMECertificate::") {
			skipping = true
			continue
		}
		if skipping && strings.HasPrefix(line, " ") {
			continue
		}
		skipping = false
		out = append(out, line)
	}
	if err := atomicfile.Write(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

const serviceConfig = basicConfig + `service: {interval: 200ms, listen: "127.0.0.1:0"}
log: {format: json}
`

var servingRE = regexp.MustCompile(`"msg":"serving /healthz and /metrics","addr":"([^"]+)"`)

// serviceRun is `smimesync run --config CFG` running in this process.
type serviceRun struct {
	addr    string      // where /healthz and /metrics answer
	stderr  *syncBuffer // the service's log
	cancel  context.CancelFunc
	done    chan int // its exit code
	stopped bool
}

// startService starts the service on cfg and waits until its HTTP server
// listens. It is stopped when t ends, if not before.
func startService(t *testing.T, cfg string) *serviceRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sr := &serviceRun{stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	var stdout syncBuffer
	go func() { sr.done <- run(ctx, []string{"run", "--config", cfg}, &stdout, sr.stderr) }()
	t.Cleanup(func() { sr.stop(t, 30*time.Second) })
	waitFor(t, "the HTTP server", func() bool {
		if m := servingRE.FindStringSubmatch(sr.stderr.String()); m != nil {
			sr.addr = m[1]
			return true
		}
		select {
		case code := <-sr.done:
			t.Fatalf("run ended early with %d: %s", code, sr.stderr.String())
		default:
		}
		return false
	})
	return sr
}

// stop cancels the service and reports whether it ended with exitOK
// within the given time (an error of t when not).
func (sr *serviceRun) stop(t *testing.T, within time.Duration) bool {
	t.Helper()
	if sr.stopped {
		return true
	}
	sr.stopped = true
	sr.cancel()
	select {
	case code := <-sr.done:
		if code != exitOK {
			t.Errorf("run after cancel: exit %d: %s", code, sr.stderr.String())
			return false
		}
		return true
	case <-time.After(within):
		t.Error("run did not stop after cancel")
		return false
	}
}

// TestRunService runs the service in-process against the LDIF source and
// the file sink: a change in the LDIF file is published by the next pass,
// /healthz and /metrics answer, and cancelling the context stops it with
// exit code 0 and its state, report and lock file in place.
func TestRunService(t *testing.T) {
	cfg := writeConfig(t, serviceConfig)
	dir := filepath.Dir(cfg)
	tenant := filepath.Join(dir, "published.json")

	sr := startService(t, cfg)
	addr, stderr := sr.addr, sr.stderr
	waitFor(t, "the first pass to publish Alice's blob", func() bool {
		r, _ := tenantCerts(t, tenant, "alice@smime.example")
		return len(r.UserSMIMECertificate) == 1 && len(r.UserCertificate) == 1
	})

	// The pass records its health after its writes and its state: the
	// tenant file can show the write a moment before /healthz says ok.
	var code int
	var doc healthResponse
	waitFor(t, "/healthz to report the good pass", func() bool {
		code, doc = getHealth(t, addr)
		return code == http.StatusOK && doc.Status == "ok"
	})
	if code != http.StatusOK || doc.Status != "ok" || len(doc.Sinks) != 1 || doc.Sinks[0].LastGood.IsZero() {
		t.Errorf("/healthz after a good pass: %d %+v", code, doc)
	}

	// A change in the directory: Alice's blob is gone. The next pass
	// takes it from her recipient.
	dropSMIMEBlob(t, filepath.Join(dir, "users.ldif"))
	waitFor(t, "the next pass to remove Alice's blob", func() bool {
		r, ok := tenantCerts(t, tenant, "alice@smime.example")
		return ok && len(r.UserSMIMECertificate) == 0 && len(r.UserCertificate) == 1
	})

	// The pass records its metrics after its writes: wait for them.
	var fams map[string]*dto.MetricFamily
	waitFor(t, "the second pass's metrics", func() bool {
		fams = getMetrics(t, addr)
		// Changes count as Apply settles them (OnChange), the pass
		// when it ends: wait for both.
		v, _ := lookupMetric(fams, "smimesync_recipients_changed_total", map[string]string{"sink": "file", "action": "replace"})
		p, _ := lookupMetric(fams, "smimesync_passes_total", map[string]string{"sink": "file", "kind": "full", "result": "ok"})
		return v == 1 && p >= 2
	})
	sink := map[string]string{"sink": "file"}
	if v := metricValue(t, fams, "smimesync_passes_total", map[string]string{"sink": "file", "kind": "full", "result": "ok"}); v < 2 {
		t.Errorf("passes_total{ok} = %v, want at least 2", v)
	}
	if v := metricValue(t, fams, "smimesync_passes_total", map[string]string{"sink": "file", "kind": "full", "result": "error"}); v != 0 {
		t.Errorf("passes_total{error} = %v, want 0", v)
	}
	if v := metricValue(t, fams, "smimesync_recipients_changed_total", map[string]string{"sink": "file", "action": "add"}); v != 1 {
		t.Errorf("recipients_changed_total{add} = %v, want 1 (Alice, first pass)", v)
	}
	if v := metricValue(t, fams, "smimesync_recipients_changed_total", map[string]string{"sink": "file", "action": "replace"}); v != 1 {
		t.Errorf("recipients_changed_total{replace} = %v, want 1 (Alice loses her blob)", v)
	}
	if v := metricValue(t, fams, "smimesync_certificates_dropped_total", map[string]string{"sink": "file", "reason": "no-matching-address"}); v < 2 {
		t.Errorf("certificates_dropped_total{no-matching-address} = %v, want one per pass", v)
	}
	if v := metricValue(t, fams, "smimesync_certificates_kept_total", sink); v < 3 {
		t.Errorf("certificates_kept_total = %v, want at least 2+1", v)
	}
	if v := metricValue(t, fams, "smimesync_last_good_pass_timestamp_seconds", sink); clock().Sub(time.Unix(int64(v), 0)).Abs() > time.Minute { // the service stamps with the binary's clock
		t.Errorf("last_good_pass_timestamp_seconds = %v, not recent", v)
	}
	if v := metricValue(t, fams, "smimesync_pass_duration_seconds", map[string]string{"sink": "file", "kind": "full"}); v < 2 {
		t.Errorf("pass_duration_seconds count = %v, want at least 2", v)
	}
	if v := metricValue(t, fams, "smimesync_pass_running", sink); v != 0 && v != 1 {
		t.Errorf("pass_running = %v", v)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("/metrics lacks the Go runtime's series")
	}

	if !sr.stop(t, 15*time.Second) {
		t.FailNow()
	}
	if !strings.Contains(stderr.String(), `"msg":"service stopped"`) {
		t.Errorf("no 'service stopped' log: %s", stderr.String())
	}
	snap, err := (&smimesync.BoltState{Path: filepath.Join(dir, "state.db")}).Load(context.Background())
	if err != nil || snap.LastGood.IsZero() || len(snap.Published) != 2 {
		t.Errorf("state after stop: %+v, %v", snap, err)
	}
	rep, err := report.Load(filepath.Join(dir, "state.report.db"))
	if err != nil || len(rep.Sinks) != 1 || !rep.Sinks[0].Complete || len(rep.Sinks[0].Entries) != 2 {
		t.Errorf("report after stop: %+v, %v", rep, err)
	}
	// The lock was let go.
	unlock, err := (&smimesync.BoltState{Path: filepath.Join(dir, "state.db")}).Lock()
	if err != nil {
		t.Fatalf("the lock is still held after run returned: %v", err)
	}
	unlock()
}

type healthResponse struct {
	Status string
	Reason string
	Sinks  []struct {
		Sink, Status string
		LastGood     time.Time `json:"last_good"`
	}
}

func getHealth(t *testing.T, addr string) (int, healthResponse) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc healthResponse
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("/healthz body: %v", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/healthz Content-Type %q", ct)
	}
	return resp.StatusCode, doc
}

func getMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return fams
}

// metricValue is the value of the series with exactly these labels: a
// counter's or a gauge's value, a histogram's count. It fails the test
// when there is no such series.
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := lookupMetric(fams, name, labels)
	if !ok {
		t.Errorf("no series %s%v", name, labels)
	}
	return v
}

// lookupMetric is metricValue without the test: -1 and false when there
// is no such series.
func lookupMetric(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return -1, false
}

// TestRunSecondInstance: a second run on the same state gets a clear
// error and exit code 1, and leaves the holder's lock alone.
func TestRunSecondInstance(t *testing.T) {
	cfg := writeConfig(t, serviceConfig)
	st := &smimesync.BoltState{Path: filepath.Join(filepath.Dir(cfg), "state.db")}
	unlock, err := st.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, _, stderr := runCLI(t, "run", "--config", cfg)
	if code != exitRuntime {
		t.Errorf("second instance: exit %d, want %d", code, exitRuntime)
	}
	for _, want := range []string{"is locked by process " + fmt.Sprint(os.Getpid()), st.Path, "another `smimesync run`"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "published.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the second instance wrote to the sink: %v", err)
	}
}

// TestRunSIGTERM runs the real main in a child process (this test binary
// again), sends it SIGTERM after its first pass, and expects a graceful
// exit 0 with the state saved; while the child runs, a second instance
// is refused with the child's PID in the message.
func TestRunSIGTERM(t *testing.T) {
	if cfg := os.Getenv("SMIMESYNC_RUN_CHILD"); cfg != "" {
		os.Args = []string{"smimesync", "run", "--config", cfg}
		main() // exits
		return
	}
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows: the service stop is handled by golang.org/x/sys/windows/svc")
	}
	cfg := writeConfig(t, serviceConfig)
	dir := filepath.Dir(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunSIGTERM$")
	cmd.Env = append(os.Environ(), "SMIMESYNC_RUN_CHILD="+cfg)
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	waitFor(t, "the child's first pass", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("child ended early: %v\n%s", err, stderr.String())
		default:
		}
		return strings.Contains(stderr.String(), `"msg":"pass done"`)
	})

	code, _, errOut := runCLI(t, "run", "--config", cfg)
	if code != exitRuntime || !strings.Contains(errOut, fmt.Sprintf("is locked by process %d", cmd.Process.Pid)) {
		t.Errorf("second instance while the child runs: exit %d, %q", code, errOut)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("child after SIGTERM: %v, want exit 0\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("child did not stop after SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"service stopped"`) {
		t.Errorf("child's log lacks 'service stopped':\n%s", stderr.String())
	}
	snap, err := (&smimesync.BoltState{Path: filepath.Join(dir, "state.db")}).Load(context.Background())
	if err != nil || snap.LastGood.IsZero() || len(snap.Published) == 0 {
		t.Errorf("state after SIGTERM: %+v, %v", snap, err)
	}
}

// TestInstrument counts requests through the transport by host and
// status, and 429s as throttled.
func TestInstrument(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/busy":
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	m := metrics.New()
	cfg := &Config{metrics: m}
	client := cfg.httpClient()
	for _, p := range []string{"/ok", "/ok", "/busy", "/missing"} {
		resp, err := client.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// No answer at all: a closed port.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	if _, err := client.Get(deadURL); err == nil {
		t.Fatal("request to a closed server succeeded")
	}

	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	host := "127.0.0.1"
	for code, want := range map[string]float64{"200": 2, "429": 1, "404": 1, "error": 1} {
		if v := metricValue(t, byName, "smimesync_api_requests_total", map[string]string{"host": host, "code": code}); v != want {
			t.Errorf("api_requests_total{code=%s} = %v, want %v", code, v, want)
		}
	}
	if v := metricValue(t, byName, "smimesync_api_throttled_total", map[string]string{"host": host}); v != 1 {
		t.Errorf("api_throttled_total = %v, want 1", v)
	}

	// Without metrics, nothing is wrapped.
	if c := (&Config{}).httpClient(); c != nil {
		t.Errorf("httpClient without metrics = %v, want nil (the sink's default)", c)
	}
}

// TestProgressPiped: when standard error is not a terminal (here a
// buffer), run --once with quiet logs prints nothing at all (the progress
// line itself is package report's, tested there).
func TestProgressPiped(t *testing.T) {
	cfg := writeConfig(t, basicConfig+"log: {level: error}\n")
	code, stdout, stderr := runCLI(t, "run", "--once", "--config", cfg)
	if code != exitOK || stdout != "" || stderr != "" {
		t.Errorf("run --once piped: exit %d, stdout %q, stderr %q; want 0 and nothing", code, stdout, stderr)
	}
}

func TestRunUsage(t *testing.T) {
	for name, tt := range map[string]struct {
		config string
		args   []string
		want   string
	}{
		"no config":      {args: []string{"run"}, want: "--config is required"},
		"no state":       {config: strings.Replace(basicConfig, "state:  {path: state.json}\n", "", 1), want: "state.path is required"},
		"bad interval":   {config: basicConfig + "service: {interval: -1s}\n", want: "service.interval: must not be negative"},
		"bad listen":     {config: basicConfig + "service: {listen: nowhere}\n", want: "service.listen"},
		"unknown key":    {config: basicConfig + "service: {intervall: 1s}\n", want: "service.intervall: unknown key"},
		"extra argument": {args: []string{"run", "--config", "x.yaml", "now"}, want: "unexpected arguments"},
	} {
		t.Run(name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = []string{"run", "--config", writeConfig(t, tt.config)}
			}
			code, _, stderr := runCLI(t, args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tt.want)
			}
		})
	}
}

// TestRunListenBusy: an address already in use stops the service at
// once with a clear error.
func TestRunListenBusy(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	cfg := writeConfig(t, basicConfig+fmt.Sprintf("service: {listen: %q}\n", addr))
	code, _, stderr := runCLI(t, "run", "--config", cfg)
	if code != exitRuntime || !strings.Contains(stderr, "serving /healthz and /metrics") || !strings.Contains(stderr, addr) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestLockStates: when one state of several is locked, none is held.
func TestLockStates(t *testing.T) {
	dir := t.TempDir()
	a := &smimesync.BoltState{Path: filepath.Join(dir, "state.exchange.db")}
	b := &smimesync.BoltState{Path: filepath.Join(dir, "state.graph.db")}
	syncers := []service.Named{
		{Name: "exchange", Syncer: &smimesync.Syncer{State: a}},
		{Name: "graph", Syncer: &smimesync.Syncer{State: b}},
		{Name: "memory", Syncer: &smimesync.Syncer{}}, // nothing to lock
	}
	holdB, err := b.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockStates(syncers); !errors.Is(err, smimesync.ErrLocked) || !strings.Contains(err.Error(), b.Path) {
		t.Fatalf("lockStates with %s held: %v, want ErrLocked naming it", b.Path, err)
	}
	// a was let go again.
	ua, err := a.Lock()
	if err != nil {
		t.Fatalf("lockStates kept %s after failing: %v", a.Path, err)
	}
	ua()
	holdB()

	unlock, err := lockStates(syncers)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lock(); !errors.Is(err, smimesync.ErrLocked) {
		t.Errorf("%s not locked: %v", a.Path, err)
	}
	unlock()
	for _, st := range []*smimesync.BoltState{a, b} {
		u, err := st.Lock()
		if err != nil {
			t.Errorf("%s still locked after unlock: %v", st.Path, err)
			continue
		}
		u()
	}
}
