package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

var discard = slog.New(slog.DiscardHandler)

// parseIn parses conf as the file smimesync.yaml of a new folder.
func parseIn(t *testing.T, conf string) *File {
	t.Helper()
	c, err := Parse([]byte(conf), filepath.Join(t.TempDir(), "smimesync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReportPath(t *testing.T) {
	for _, tt := range []struct{ state, report, want, legacy string }{
		{"state.json", "", "/etc/s/state.report.db", "/etc/s/state.report.json"},
		{"state.db", "", "/etc/s/state.report.db", "/etc/s/state.report.json"},
		{"/var/lib/s/state", "", "/var/lib/s/state.report.db", "/var/lib/s/state.report.json"},
		{"state.json", "out/r.json", "/etc/s/out/r.json", ""},
		{"", "", "", ""},
	} {
		c := &File{State: State{Path: tt.state}, Report: Report{Path: tt.report}, Dir: "/etc/s"}
		if got := c.ReportPath(); got != filepath.FromSlash(tt.want) {
			t.Errorf("state %q report %q: %q, want %q", tt.state, tt.report, got, tt.want)
		}
		if got := c.ReportImport(); got != filepath.FromSlash(tt.legacy) {
			t.Errorf("state %q report %q: imports %q, want %q", tt.state, tt.report, got, tt.legacy)
		}
	}
}

func TestErrorText(t *testing.T) {
	for _, tt := range []struct {
		err  Error
		want string
	}{
		{Error{File: "s.yaml", Line: 3, Key: "sink.file.path", Msg: "required"}, "s.yaml:3: sink.file.path: required"},
		{Error{File: "s.yaml", Key: "sink", Msg: "choose"}, "s.yaml: sink: choose"},
		{Error{File: "s.yaml", Msg: "empty configuration"}, "s.yaml: empty configuration"},
		{Error{Key: "state.path", Msg: "required"}, "state.path: required"},
		{Error{Msg: "reading config: gone"}, "reading config: gone"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestLoadUnreadable: a file that cannot be read is an *Error too, and
// wraps the cause.
func TestLoadUnreadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := Load(path)
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "reading config: ") || !strings.Contains(err.Error(), path) {
		t.Errorf("Load of a missing file: %v (%T)", err, err)
	}
}

const cloudConf = `source: {ldif: {path: users.ldif}}
state: {path: state.json}
sink:
  exchange: {tenant_id: t, client_id: c, organization: o, auth: {method: client_secret, secret_env: SMIMESYNC_CONFIG_TEST_SECRET}}
  graph:
    client_id: g
    page_size: 10
    certificate_user_ids: {format: ski, managed_issuers: [CN=CA]}
`

// TestNoGraphSink: without File.GraphSink, sink.graph is refused naming
// the key, and the cause is ErrNoGraphSink.
func TestNoGraphSink(t *testing.T) {
	t.Setenv("SMIMESYNC_CONFIG_TEST_SECRET", "s")
	c := parseIn(t, cloudConf)
	_, err := c.BuildSinks(discard)
	var ce *Error
	if !errors.Is(err, ErrNoGraphSink) || !errors.As(err, &ce) || ce.Key != "sink.graph" || ce.Line != 5 {
		t.Errorf("BuildSinks without GraphSink: %v", err)
	}
}

type fakeSink struct{ cloud.Sink }

// TestGraphSink: File.GraphSink gets the section's keys, the sign-in it
// inherits from sink.exchange field by field, and File.HTTPClient; its
// errors name the keys of sink.graph.
func TestGraphSink(t *testing.T) {
	t.Setenv("SMIMESYNC_CONFIG_TEST_SECRET", "s")
	c := parseIn(t, cloudConf)
	c.HTTPClient = &http.Client{}
	var got struct {
		keys GraphKeys
		auth azauth.Config
		hc   *http.Client
	}
	built := &fakeSink{}
	c.GraphSink = func(keys GraphKeys, auth azauth.Config, hc *http.Client, log *slog.Logger) (cloud.Sink, error) {
		got.keys, got.auth, got.hc = keys, auth, hc
		return built, nil
	}
	sinks, err := c.BuildSinks(discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(sinks) != 2 || sinks[0].Name != "exchange" || sinks[1].Name != "graph" || sinks[1].Sink != built {
		t.Errorf("sinks %+v", sinks)
	}
	if got.keys.PageSize != 10 || got.keys.CertificateUserIDs.Format != "ski" || len(got.keys.CertificateUserIDs.ManagedIssuers) != 1 {
		t.Errorf("keys %+v", got.keys)
	}
	if got.auth.TenantID != "t" || got.auth.ClientID != "g" || got.auth.Auth.SecretEnv != "SMIMESYNC_CONFIG_TEST_SECRET" {
		t.Errorf("auth %+v: want the tenant and sign-in of sink.exchange, and its own client_id", got.auth)
	}
	if got.hc != c.HTTPClient {
		t.Error("the graph sink did not get File.HTTPClient")
	}

	c.GraphSink = func(GraphKeys, azauth.Config, *http.Client, *slog.Logger) (cloud.Sink, error) {
		return nil, &azauth.ConfigError{Field: "client_id", Reason: "not a GUID"}
	}
	_, err = c.BuildSinks(discard)
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "sink.graph.client_id" || ce.Line != 6 || ce.Msg != "not a GUID" {
		t.Errorf("a GraphSink error: %v", err)
	}
}

// TestGraphKeysDecode: Decode sets in a struct with the same YAML keys
// what the file set, leaves the rest, and refuses a struct that lacks a
// key the file set.
func TestGraphKeysDecode(t *testing.T) {
	var k GraphKeys
	k.PageSize = 10
	k.BatchWait = 7 * time.Millisecond
	k.CertificateUserIDs.Format = "ski"
	type ids struct {
		Format string `yaml:"format"`
	}
	var full struct {
		PageSize  int           `yaml:"page_size"`
		BatchSize int           `yaml:"batch_size"`
		BatchWait time.Duration `yaml:"batch_wait"`
		IDs       ids           `yaml:"certificate_user_ids"`
	}
	full.BatchSize = 20
	if err := k.Decode(&full); err != nil {
		t.Fatal(err)
	}
	if full.PageSize != 10 || full.BatchSize != 20 || full.BatchWait != 7*time.Millisecond || full.IDs.Format != "ski" {
		t.Errorf("decoded %+v", full)
	}
	var lacking struct {
		BatchWait time.Duration `yaml:"batch_wait"`
		IDs       ids           `yaml:"certificate_user_ids"`
	}
	if err := k.Decode(&lacking); err == nil || !strings.Contains(err.Error(), "page_size") {
		t.Errorf("into a struct without page_size: %v", err)
	}
}

func TestBuildService(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c := parseIn(t, "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\n")
	c.Now = func() time.Time { return at }
	syncers, err := c.Syncers(discard)
	if err != nil {
		t.Fatal(err)
	}
	svc := c.BuildService(syncers, discard)
	if svc.Interval != service.DefaultInterval || svc.FullEvery != service.DefaultFullEvery || svc.Listen != DefaultListen ||
		syncers[0].WriteGrace != DefaultShutdownGrace || svc.Now() != at || syncers[0].Now() != at || len(svc.Syncers) != 1 {
		t.Errorf("defaults: %+v, grace %v", svc, syncers[0].WriteGrace)
	}

	c = parseIn(t, "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\n"+
		"service: {interval: 5m, full_every: 1h, listen: '', shutdown_grace: 3s}\n")
	syncers, err = c.Syncers(discard)
	if err != nil {
		t.Fatal(err)
	}
	svc = c.BuildService(syncers, discard)
	if svc.Interval != 5*time.Minute || svc.FullEvery != time.Hour || svc.Listen != "" || syncers[0].WriteGrace != 3*time.Second {
		t.Errorf("set: %+v, grace %v", svc, syncers[0].WriteGrace)
	}

	_, err = Parse([]byte("source: {ldif: {path: u.ldif}}\nsink: {file: {path: p.json}}\nservice: {listen: 'no port'}\n"), "s.yaml")
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "service.listen" || ce.Line != 3 {
		t.Errorf("a listen address without a port: %v", err)
	}
}

func TestRecheckNotFound(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want time.Duration
	}{
		{"", 0},
		{"recheck_not_found: 30m\n", 30 * time.Minute},
		{"recheck_not_found: every_pass\n", smimesync.RecheckNotFoundEveryPass},
	} {
		c := parseIn(t, "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\n"+tt.yaml)
		syncers, err := c.Syncers(discard)
		if err != nil {
			t.Fatalf("%q: %v", tt.yaml, err)
		}
		if got := syncers[0].RecheckNotFound; got != tt.want {
			t.Errorf("%q: RecheckNotFound %v, want %v", tt.yaml, got, tt.want)
		}
	}
	for _, v := range []string{"0s", "-1m", "soon"} {
		_, err := Parse([]byte("source: {ldif: {path: u.ldif}}\nsink: {file: {path: p.json}}\nrecheck_not_found: "+v+"\n"), "s.yaml")
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "recheck_not_found" || ce.Line != 3 {
			t.Errorf("recheck_not_found %s: %v, want an *Error naming the key on line 3", v, err)
		}
	}
}

func TestLogFile(t *testing.T) {
	c := &File{State: State{Path: "state.json"}, Dir: "/srv"}
	for _, tt := range []struct {
		logFile string
		svc     bool
		want    string
	}{
		{"", false, ""},
		{"", true, "/srv/state.log"},
		{"log/s.log", false, "/srv/log/s.log"},
		{"log/s.log", true, "/srv/log/s.log"},
	} {
		c.Service.LogFile = tt.logFile
		if got := c.LogFile(tt.svc); got != filepath.FromSlash(tt.want) {
			t.Errorf("log_file %q, service %v: %q, want %q", tt.logFile, tt.svc, got, tt.want)
		}
	}
}

// TestCheckFile: a file beside the configuration's (a plan) may not be
// one the configuration uses when either writes it.
func TestCheckFile(t *testing.T) {
	c := parseIn(t, "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\nstate: {path: state.json}\n")
	for _, tt := range []struct {
		name   string
		writes bool
		want   string
	}{
		{"plan.json", true, ""},
		{"users.ldif", false, ""},
		{"users.ldif", true, "users.ldif is the same file as source.ldif.path"},
		{"state.db", false, "state.db is the same file as the store of state.path"},
		{"smimesync.yaml", true, "is the same file as --config"},
	} {
		err := c.CheckFile(filepath.Join(c.Dir, tt.name), tt.writes)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s (writes %v): %v", tt.name, tt.writes, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s (writes %v): %v, want %q", tt.name, tt.writes, err, tt.want)
		}
	}
}

// TestStore: a parsed File hands out one store per file; the second
// sink's store lies beside the first's.
func TestStore(t *testing.T) {
	c := parseIn(t, "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\nstate: {path: state.json}\n")
	a, b := c.Store("file", 0), c.Store("file", 0)
	if a != b || a.Path != filepath.Join(c.Dir, "state.db") || a.Import != filepath.Join(c.Dir, "state.json") {
		t.Errorf("stores %p %p, %+v", a, b, a)
	}
	if g := c.Store("graph", 1); g.Path != filepath.Join(c.Dir, "state.graph.db") || g == a {
		t.Errorf("second sink's store %+v", g)
	}
	if (&File{}).Store("file", 0) != nil {
		t.Error("a store without state.path")
	}
	if _, err := os.Stat(a.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Store created its file: %v", err)
	}
	if a.MapLimit != 0 {
		t.Errorf("MapLimit %d without state.map_limit, want 0 (off)", a.MapLimit)
	}
	c = parseIn(t, "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\nstate: {path: state.json, map_limit: 16777216}\n")
	if a, g := c.Store("file", 0), c.Store("graph", 1); a.MapLimit != 16<<20 || g.MapLimit != 16<<20 {
		t.Errorf("state.map_limit 16777216: MapLimit %d and %d", a.MapLimit, g.MapLimit)
	}
	if _, err := Parse([]byte("source: {ldif: {path: u.ldif}}\nsink: {file: {path: p.json}}\nstate: {path: s.json, map_limit: -1}\n"), "s.yaml"); err == nil || !strings.Contains(err.Error(), "state.map_limit") {
		t.Errorf("state.map_limit -1: %v, want an error naming it", err)
	}
}
