package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseServiceArgs(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want serviceArgs
		err  string // a regexp; "" for none
	}{
		{args: nil, err: `install, uninstall, start or stop\?`},
		{args: []string{"restart"}, err: `unknown action "restart"`},
		{args: []string{"install"}, err: `--config is required`},
		{args: []string{"install", "--config", "smimesync.yaml"},
			want: serviceArgs{Action: "install", Config: filepath.Join(wd, "smimesync.yaml"), Account: `NT SERVICE\smimesync`}},
		{args: []string{"install", "--config", "/etc/s.yaml", "--account", `CONTOSO\smimesync-gmsa$`},
			want: serviceArgs{Action: "install", Config: "/etc/s.yaml", Account: `CONTOSO\smimesync-gmsa$`}},
		{args: []string{"install", "--config", "/etc/s.yaml", "--account", "LocalSystem"},
			want: serviceArgs{Action: "install", Config: "/etc/s.yaml", Account: "LocalSystem"}},
		{args: []string{"install", "--config", "/etc/s.yaml", "--account", `CONTOSO\smimesync-gmsa$`, "--password-env", "PW"},
			err: `logs on without a password: drop --password-env`},
		{args: []string{"install", "--config", "/etc/s.yaml", "--account", `CONTOSO\svc-smime`},
			err: `needs its password in the variable --password-env names`},
		{args: []string{"install", "--config", "/etc/s.yaml", "--account", `CONTOSO\svc-smime`, "--password-env", "PW"},
			want: serviceArgs{Action: "install", Config: "/etc/s.yaml", Account: `CONTOSO\svc-smime`, PasswordEnv: "PW"}},
		{args: []string{"install", "--config", "/etc/s.yaml", "extra"}, err: `unexpected arguments \[extra\]`},
		{args: []string{"install", "--bogus"}, err: `service install: flag provided but not defined: -bogus`},
		{args: []string{"start"}, want: serviceArgs{Action: "start"}},
		{args: []string{"stop"}, want: serviceArgs{Action: "stop"}},
		{args: []string{"uninstall"}, want: serviceArgs{Action: "uninstall"}},
		{args: []string{"stop", "--config", "x.yaml"}, err: `service stop: takes no --config`},
		{args: []string{"start", "now"}, err: `service start: unexpected arguments \[now\]`},
	} {
		got, err := parseServiceArgs(tt.args)
		if tt.err != "" {
			var ue usageError
			if err == nil || !errors.As(err, &ue) || !regexp.MustCompile(tt.err).MatchString(err.Error()) {
				t.Errorf("%q: error %v, want a usage error matching %q", tt.args, err, tt.err)
			}
			continue
		}
		if runtime.GOOS == "windows" {
			tt.want.Config, got.Config = filepath.Base(tt.want.Config), filepath.Base(got.Config)
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}

func TestIsPasswordlessAccount(t *testing.T) {
	for account, want := range map[string]bool{
		"": true, "LocalSystem": true, `NT AUTHORITY\NetworkService`: true, `NT AUTHORITY\LOCAL SERVICE`: true,
		`NT SERVICE\smimesync`: true, `CONTOSO\smimesync-gmsa$`: true, `smimesync-gmsa$@contoso.com`: false,
		`CONTOSO\svc-smime`: false, "svc-smime@contoso.com": false, `.\localuser`: false,
	} {
		if got := isPasswordlessAccount(account); got != want {
			t.Errorf("%q: %v, want %v", account, got, want)
		}
	}
}

// TestDefaultRecovery: restart on every failure, never in a tight loop,
// the delays growing, failures counted anew after a day, and a service
// that stops with an error counting as failed.
func TestDefaultRecovery(t *testing.T) {
	p := defaultRecovery()
	if len(p.Restarts) < 3 {
		t.Errorf("%d restart actions: the Service Control Manager takes up to 3 kinds, the last one repeating", len(p.Restarts))
	}
	for i, d := range p.Restarts {
		if d < 30*time.Second || i > 0 && d < p.Restarts[i-1] {
			t.Errorf("restart %d after %s: under 30 s, or sooner than the one before", i+1, d)
		}
	}
	if p.ResetAfter != 24*time.Hour || !p.OnNonCrashFailures {
		t.Errorf("reset after %s, on non-crash failures %v", p.ResetAfter, p.OnNonCrashFailures)
	}
}

// fakeServices is the serviceManager of the tests.
type fakeServices struct {
	calls []string
	spec  serviceSpec
	err   error
}

func (f *fakeServices) install(spec serviceSpec) error {
	f.calls, f.spec = append(f.calls, "install "+spec.Name), spec
	return f.err
}

func (f *fakeServices) uninstall(name string, wait time.Duration) error {
	f.calls = append(f.calls, "uninstall "+name)
	return f.err
}

func (f *fakeServices) start(name string, wait time.Duration) error {
	f.calls = append(f.calls, "start "+name)
	return f.err
}

func (f *fakeServices) stop(name string, wait time.Duration) error {
	f.calls = append(f.calls, "stop "+name)
	return f.err
}

func TestRunServiceCommand(t *testing.T) {
	exe := func() (string, error) { return "/opt/smimesync/smimesync.exe", nil }
	env := map[string]string{"PW": "s3cret"}
	getenv := func(k string) string { return env[k] }
	cfg := writeConfig(t, basicConfig)

	t.Run("install", func(t *testing.T) {
		f := &fakeServices{}
		var out bytes.Buffer
		sa, err := parseServiceArgs([]string{"install", "--config", cfg})
		if err != nil {
			t.Fatal(err)
		}
		if err := runServiceCommand(sa, f, &out, exe, getenv); err != nil {
			t.Fatal(err)
		}
		want := serviceSpec{Name: "smimesync", DisplayName: windowsServiceDisplayName, Description: windowsServiceDescription,
			Exe: "/opt/smimesync/smimesync.exe", Args: []string{"run", "--config", cfg},
			Account: `NT SERVICE\smimesync`, Recovery: defaultRecovery()}
		got := f.spec
		if got.Name != want.Name || got.Exe != want.Exe || !slices.Equal(got.Args, want.Args) || got.Account != want.Account ||
			got.Password != "" || !slices.Equal(got.Recovery.Restarts, want.Recovery.Restarts) || got.DisplayName == "" || got.Description == "" {
			t.Errorf("spec %+v\nwant %+v", got, want)
		}
		for _, re := range []string{`installed service smimesync .* as NT SERVICE\\smimesync: /opt/smimesync/smimesync.exe run --config `,
			`restart after 1m0s, then 5m0s, then 15m0s; failure count reset after 24h0m0s; logs in the Event Log`} {
			if !regexp.MustCompile(re).MatchString(out.String()) {
				t.Errorf("output does not match %q:\n%s", re, out.String())
			}
		}
	})

	t.Run("install as a user", func(t *testing.T) {
		f := &fakeServices{}
		sa, _ := parseServiceArgs([]string{"install", "--config", cfg, "--account", `CONTOSO\svc-smime`, "--password-env", "PW"})
		if err := runServiceCommand(sa, f, &bytes.Buffer{}, exe, getenv); err != nil {
			t.Fatal(err)
		}
		if f.spec.Account != `CONTOSO\svc-smime` || f.spec.Password != "s3cret" {
			t.Errorf("account %q password %q", f.spec.Account, f.spec.Password)
		}
		sa.PasswordEnv = "UNSET"
		f = &fakeServices{}
		err := runServiceCommand(sa, f, &bytes.Buffer{}, exe, getenv)
		if exitCode(err, &bytes.Buffer{}) != exitUsage || !strings.Contains(err.Error(), "UNSET: the variable is not set") || len(f.calls) != 0 {
			t.Errorf("password variable unset: %v, calls %v", err, f.calls)
		}
	})

	t.Run("install LocalSystem", func(t *testing.T) {
		f := &fakeServices{}
		sa, _ := parseServiceArgs([]string{"install", "--config", cfg, "--account", "LocalSystem"})
		if err := runServiceCommand(sa, f, &bytes.Buffer{}, exe, getenv); err != nil || f.spec.Account != "" {
			t.Errorf("%v: account %q, want \"\" (the Service Control Manager's LocalSystem)", err, f.spec.Account)
		}
	})

	t.Run("a configuration that does not load is not installed", func(t *testing.T) {
		bad := writeConfig(t, "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\nstate: {path: s.json}\nservice: {interval: -1s}\n")
		noState := writeConfig(t, "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\n")
		for _, c := range []string{bad, noState, filepath.Join(t.TempDir(), "missing.yaml")} {
			f := &fakeServices{}
			sa, _ := parseServiceArgs([]string{"install", "--config", c})
			var stderr bytes.Buffer
			err := runServiceCommand(sa, f, &bytes.Buffer{}, exe, getenv)
			if code := exitCode(err, &stderr); code != exitUsage || len(f.calls) != 0 {
				t.Errorf("%s: exit %d, calls %v: %s", c, code, f.calls, stderr.String())
			}
		}
	})

	t.Run("start stop uninstall", func(t *testing.T) {
		f := &fakeServices{}
		for _, a := range []string{"start", "stop", "uninstall"} {
			var out bytes.Buffer
			if err := runServiceCommand(serviceArgs{Action: a}, f, &out, exe, getenv); err != nil || out.Len() == 0 {
				t.Errorf("%s: %v, output %q", a, err, out.String())
			}
		}
		if want := []string{"start smimesync", "stop smimesync", "uninstall smimesync"}; !slices.Equal(f.calls, want) {
			t.Errorf("calls %v, want %v", f.calls, want)
		}
		f.err = errors.New("Access is denied")
		err := runServiceCommand(serviceArgs{Action: "stop"}, f, &bytes.Buffer{}, exe, getenv)
		if code := exitCode(err, &bytes.Buffer{}); code != exitRuntime || !strings.Contains(err.Error(), "service stop: Access is denied") {
			t.Errorf("a manager's error: exit %d, %v", code, err)
		}
	})
}

// TestServiceCommandNotWindows: elsewhere than Windows, `smimesync
// service` exits 2 and says to use systemd; a bad command line is still
// told apart.
func TestServiceCommandNotWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("on Windows the service subcommands work")
	}
	cfg := writeConfig(t, basicConfig)
	for _, args := range [][]string{{"service", "install", "--config", cfg}, {"service", "start"}, {"service", "stop"}, {"service", "uninstall"}} {
		code, _, stderr := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, "work on Windows only; on Linux, run `smimesync run` under systemd") {
			t.Errorf("%q: exit %d: %s", args, code, stderr)
		}
	}
	code, _, stderr := runCLI(t, "service", "install")
	if code != exitUsage || !strings.Contains(stderr, "--config is required") {
		t.Errorf("service install: exit %d: %s", code, stderr)
	}
}

// fakeEventLog records the events an eventLogHandler writes.
type fakeEventLog struct{ events []string }

func (f *fakeEventLog) add(kind string, eid uint32, msg string) error {
	f.events = append(f.events, kind+" "+string(rune('0'+eid))+" "+msg)
	return nil
}
func (f *fakeEventLog) Info(eid uint32, msg string) error    { return f.add("info", eid, msg) }
func (f *fakeEventLog) Warning(eid uint32, msg string) error { return f.add("warning", eid, msg) }
func (f *fakeEventLog) Error(eid uint32, msg string) error   { return f.add("error", eid, msg) }

func TestEventLogHandler(t *testing.T) {
	f := &fakeEventLog{}
	log := slog.New(newEventLogHandler(f, eventLogLevel("info")))
	log.Debug("not written")
	log.Info("service started", "sinks", 2, "interval", 60*time.Second)
	sinkLog := log.With("sink", "exchange").WithGroup("pass")
	sinkLog.Warn("pass stopped by shutdown; state saved", "kind", "delta", "err", errors.New(`context canceled: "quoted" and spaced`))
	log.Error("pass failed", "sink", "graph", "dn", "CN=Bob Example,OU=Staff,DC=contoso,DC=com", "code", "sink-auth")
	want := []string{
		"info 1 service started\r\nsinks=2\r\ninterval=1m0s",
		"warning 2 pass stopped by shutdown; state saved\r\nsink=exchange\r\npass.kind=delta\r\npass.err=\"context canceled: \\\"quoted\\\" and spaced\"",
		"error 3 pass failed\r\nsink=graph\r\ndn=\"CN=Bob Example,OU=Staff,DC=contoso,DC=com\"\r\ncode=sink-auth",
	}
	if !slices.Equal(f.events, want) {
		t.Errorf("events:\n%q\nwant\n%q", f.events, want)
	}

	// Levels: warn and error configured keep info out; debug never goes.
	for level, enabled := range map[string][]slog.Level{
		"debug": {slog.LevelInfo, slog.LevelWarn, slog.LevelError}, "info": {slog.LevelInfo, slog.LevelWarn, slog.LevelError},
		"warn": {slog.LevelWarn, slog.LevelError}, "error": {slog.LevelError},
	} {
		h := newEventLogHandler(f, eventLogLevel(level))
		var got []slog.Level
		for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
			if h.Enabled(context.Background(), l) {
				got = append(got, l)
			}
		}
		if !slices.Equal(got, enabled) {
			t.Errorf("log.level %s: enabled %v, want %v", level, got, enabled)
		}
	}

	// A message too long for the Event Log is cut, at a character, and
	// says so.
	f.events = nil
	log.Info(strings.Repeat("é", maxEventMessage))
	got := strings.TrimPrefix(f.events[0], "info 1 ")
	if len(got) > maxEventMessage || !strings.HasSuffix(got, "(cut: the message was too long for the Event Log)") || !strings.HasPrefix(got, "éé") {
		t.Errorf("a long message: %d bytes, ends %q", len(got), got[max(0, len(got)-80):])
	}
	if strings.ContainsRune(got, '\uFFFD') {
		t.Error("a long message was cut inside a character")
	}
}
