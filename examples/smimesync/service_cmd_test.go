package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync/service/winsvc"
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

// fakeServices is the winsvc.Manager of the tests.
type fakeServices struct {
	calls []string
	spec  winsvc.Spec
	err   error
}

func (f *fakeServices) Install(spec winsvc.Spec) error {
	f.calls, f.spec = append(f.calls, "install "+spec.Name), spec
	return f.err
}

func (f *fakeServices) Uninstall(name string, wait time.Duration) error {
	f.calls = append(f.calls, "uninstall "+name)
	return f.err
}

func (f *fakeServices) Start(name string, wait time.Duration) error {
	f.calls = append(f.calls, "start "+name)
	return f.err
}

func (f *fakeServices) Stop(name string, wait time.Duration) error {
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
		want := winsvc.Spec{Name: "smimesync", DisplayName: windowsServiceDisplayName, Description: windowsServiceDescription,
			Exe: "/opt/smimesync/smimesync.exe", Args: []string{"run", "--config", cfg},
			Account: `NT SERVICE\smimesync`, Recovery: winsvc.DefaultRecovery()}
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
