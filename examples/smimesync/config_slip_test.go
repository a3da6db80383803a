package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
	"github.com/smimesync/go-smimesync/smimesync/config"
)

// These tests are written against the binary's run function and the
// configuration types only, so that they also compile against the code
// before issue 9's fixes and show what it let through.

// lineOf returns the 1-based line of the first line of text that contains
// s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not in:\n%s", s, text)
	return 0
}

// wantConfigError checks a configuration error: exit 2, the file, line
// and YAML path named, one line saying how to get help and not the whole
// usage text.
func wantConfigError(t *testing.T, code int, stderr, key string, line int, more ...string) {
	t.Helper()
	if code != exitUsage {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
	}
	want := fmt.Sprintf("smimesync.yaml:%d: %s:", line, key)
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr does not name %q:\n%s", want, stderr)
	}
	for _, m := range more {
		if !strings.Contains(stderr, m) {
			t.Errorf("stderr lacks %q:\n%s", m, stderr)
		}
	}
	if strings.Contains(stderr, "usage:\n") || !strings.Contains(stderr, "run 'smimesync help' for usage") {
		t.Errorf("stderr should end with one line on how to get help, not the usage text:\n%s", stderr)
	}
}

func TestGuardMaxRemovalsRange(t *testing.T) {
	for _, tc := range []struct {
		value string
		ok    bool
	}{{"-5", false}, {"-2", false}, {"0", false}, {"-1", true}, {"1", true}, {"500", true}} {
		t.Run(tc.value, func(t *testing.T) {
			conf := strings.Replace(basicConfig, "max_removals: 500", "max_removals: "+tc.value, 1)
			code, stdout, stderr := runCLI(t, "plan", "--config", writeConfig(t, conf))
			if tc.ok {
				if code != exitOK {
					t.Errorf("exit %d: %s %s", code, stdout, stderr)
				}
				return
			}
			wantConfigError(t, code, stderr, "guard.max_removals", lineOf(t, conf, "max_removals"), "-1")
		})
	}
}

// TestNumericKnobs: no numeric key silently takes a negative or huge
// value for its default.
func TestNumericKnobs(t *testing.T) {
	const ldap = "source: {ldap: {url: ldaps://127.0.0.1:1, bind: {method: anonymous}, %s}}\nsink: {file: {path: published.json}}\n"
	const exo = "source: {ldif: {path: users.ldif}}\nstate: {path: state.json}\nsink: {exchange: {tenant_id: t, client_id: c, organization: o, auth: {method: client_secret, secret_env: X}, %s}}\n"
	for _, tc := range []struct {
		name, conf, key string
	}{
		{"concurrency negative", basicConfig + "concurrency: -5\n", "concurrency"},
		{"concurrency huge", basicConfig + "concurrency: 200000\n", "concurrency"},
		{"max_values negative", strings.Replace(basicConfig, "max_values: 15", "max_values: -1", 1), "policy.max_values"},
		{"revocation timeout", strings.Replace(basicConfig, "max_values: 15", "revocation: {timeout: -1s}", 1), "policy.revocation.timeout"},
		{"ldap page_size", fmt.Sprintf(ldap, "page_size: -1"), "source.ldap.page_size"},
		{"ldap dial_timeout", fmt.Sprintf(ldap, "dial_timeout: -5s"), "source.ldap.dial_timeout"},
		{"ldap read_connections negative", fmt.Sprintf(ldap, "read_connections: -2"), "source.ldap.read_connections"},
		{"ldap read_connections huge", fmt.Sprintf(ldap, "read_connections: 500"), "source.ldap.read_connections"},
		{"exchange concurrency negative", fmt.Sprintf(exo, "concurrency: -5"), "sink.exchange.concurrency"},
		{"exchange concurrency huge", fmt.Sprintf(exo, "concurrency: 100000"), "sink.exchange.concurrency"},
		{"exchange page_size", fmt.Sprintf(exo, "page_size: 5000"), "sink.exchange.page_size"},
		{"exchange request_timeout", fmt.Sprintf(exo, "request_timeout: -1s"), "sink.exchange.request_timeout"},
		{"exchange retry", fmt.Sprintf(exo, "retry: {max_tries: -3}"), "sink.exchange.retry.max_tries"},
		{"service full_every", basicConfig + "service: {full_every: -1h}\n", "service.full_every"},
		{"recheck_not_found negative", basicConfig + "recheck_not_found: -5m\n", "recheck_not_found"},
		{"recheck_not_found zero", basicConfig + "recheck_not_found: 0s\n", "recheck_not_found"},
		{"recheck_not_found a number", basicConfig + "recheck_not_found: -1\n", "recheck_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, "plan", "--config", writeConfig(t, tc.conf))
			k := tc.key[strings.LastIndex(tc.key, ".")+1:]
			wantConfigError(t, code, stderr, tc.key, lineOf(t, tc.conf, k+":"))
		})
	}
	for _, v := range []string{"0", "1", "256"} {
		if code, _, stderr := runCLI(t, "plan", "--config", writeConfig(t, basicConfig+"concurrency: "+v+"\n")); code != exitOK {
			t.Errorf("concurrency %s: exit %d: %s", v, code, stderr)
		}
	}
	for _, v := range []string{"every_pass", "30m", "2h"} {
		if code, _, stderr := runCLI(t, "plan", "--config", writeConfig(t, basicConfig+"recheck_not_found: "+v+"\n")); code != exitOK {
			t.Errorf("recheck_not_found %s: exit %d: %s", v, code, stderr)
		}
	}
}

// sections lists the YAML path of every section (a key whose value is a
// mapping) of the configuration, the top level ("") included; list items
// are named by index 0.
func sections(t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			path += "[0]"
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	*out = append(*out, path)
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			switch {
			case name == "-" || tag == "" && !f.Anonymous:
			case strings.Contains(opts, "inline"):
				ft := f.Type
				for ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
				}
			default:
				p := name
				if path != "" {
					p = path + "." + name
				}
				sections(f.Type, p, out)
			}
		}
	}
	walk(t)
}

// withKey returns doc with value set at path (creating mappings, and
// one-item lists for [0]).
func withKey(doc map[string]any, path string, value any) map[string]any {
	segs := strings.Split(path, ".")
	m := doc
	for i, seg := range segs {
		list := strings.HasSuffix(seg, "[0]")
		seg = strings.TrimSuffix(seg, "[0]")
		if i == len(segs)-1 && !list {
			m[seg] = value
			return doc
		}
		var next map[string]any
		if list {
			l, _ := m[seg].([]any)
			if len(l) == 0 {
				l = []any{map[string]any{}}
			}
			next, _ = l[0].(map[string]any)
			m[seg] = l
		} else {
			next, _ = m[seg].(map[string]any)
			if next == nil {
				next = map[string]any{}
			}
			m[seg] = next
		}
		m = next
		if i == len(segs)-1 {
			m["x"] = value // unreachable: paths end in a key
		}
	}
	return doc
}

// TestConfigTypoInEverySection puts a misspelt key into every section and
// sub-section of the configuration: each must be refused with exit 2,
// naming the key's YAML path and line. (guard: {max_removal: 2} was
// silently ignored: GuardConfig's own UnmarshalYAML escaped the check.)
func TestConfigTypoInEverySection(t *testing.T) {
	var paths []string
	sections(reflect.TypeFor[config.File](), "", &paths)
	if len(paths) < 20 {
		t.Fatalf("only %d sections found: %v", len(paths), paths)
	}
	for _, p := range paths {
		t.Run(cmpOr(p, "top"), func(t *testing.T) {
			var doc map[string]any
			if err := yaml.Unmarshal([]byte(basicConfig), &doc); err != nil {
				t.Fatal(err)
			}
			key := "max_removal"
			if p != "" {
				key = p + "." + key
			}
			b, err := yaml.Marshal(withKey(doc, key, 2))
			if err != nil {
				t.Fatal(err)
			}
			conf := string(b)
			code, _, stderr := runCLI(t, "plan", "--config", writeConfig(t, conf))
			wantConfigError(t, code, stderr, key, lineOf(t, conf, "max_removal:"), "unknown key")
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestPathCollisions: the files smimesync writes may not be one another,
// or a file it reads, once resolved; nothing may lie in a backup folder.
func TestPathCollisions(t *testing.T) {
	ldapPrune := func(extra string) string {
		return "source: {ldap: {url: ldaps://127.0.0.1:1, bind: {method: anonymous}, prune: {backup_dir: backup, dry_run: false}}}\n" +
			"sink: {file: {path: published.json}}\nstate: {path: state.json}\n" + extra
	}
	cloud := "source: {ldif: {path: users.ldif}}\nstate: {path: state.json}\n" +
		"sink: {exchange: {tenant_id: t, client_id: c, organization: o, auth: {method: client_secret, secret_env: X}}, graph: {}}\n"
	for _, tc := range []struct {
		name, conf, key string
		prep            func(t *testing.T, dir string)
	}{
		{name: "report is state", conf: basicConfig + "report: {path: state.json}\n", key: "report.path"},
		{name: "report is journal", conf: basicConfig + "report: {path: state.json.journal}\n", key: "report.path"},
		{name: "report is the store", conf: basicConfig + "report: {path: ./state.db}\n", key: "report.path"},
		{name: "report is config", conf: basicConfig + "report: {path: smimesync.yaml}\n", key: "report.path"},
		{name: "sink is state", conf: strings.Replace(basicConfig, "published.json", "state.json", 1), key: "state.path"},
		{name: "sink is source", conf: strings.Replace(basicConfig, "published.json", "users.ldif", 1), key: "sink.file.path"},
		{name: "log is sink", conf: basicConfig + "service: {log_file: published.json}\n", key: "service.log_file"},
		{name: "log is report", conf: basicConfig + "report: {path: r.json}\nservice: {log_file: r.json}\n", key: "service.log_file"},
		{name: "state is default report", conf: strings.Replace(basicConfig, "published.json", "state.report.json", 1), key: "state.path"},
		{name: "report is second sink's state", conf: cloud + "report: {path: state.graph.json}\n", key: "report.path"},
		{name: "report is second sink's journal", conf: cloud + "report: {path: state.graph.json.journal}\n", key: "report.path"},
		{name: "state in backup folder", conf: ldapPrune("report: {path: backup/r.json}\n"), key: "report.path"},
		{name: "backup folder holds the config", conf: strings.Replace(ldapPrune(""), "backup_dir: backup", "backup_dir: .", 1), key: "source.ldap.prune.backup_dir"},
		{
			name: "link to the state", conf: basicConfig + "report: {path: link.json}\n", key: "report.path",
			prep: func(t *testing.T, dir string) { symlink(t, "state.json", filepath.Join(dir, "link.json")) }, // dangling: no state yet
		},
		{
			name: "missing file in a linked folder", conf: basicConfig + "report: {path: alias/state.json}\n", key: "report.path",
			prep: func(t *testing.T, dir string) { symlink(t, ".", filepath.Join(dir, "alias")) },
		},
		{
			name: "linked state folder", conf: strings.Replace(basicConfig, "state.json", "alias/s.json", 1) + "report: {path: s.json}\n", key: "report.path",
			prep: func(t *testing.T, dir string) { symlink(t, dir, filepath.Join(dir, "alias")) },
		},
		{
			name: "hard link", conf: basicConfig + "report: {path: hard.json}\n", key: "report.path",
			prep: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, "state.json"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Link(filepath.Join(dir, "state.json"), filepath.Join(dir, "hard.json")); err != nil {
					t.Skip("no hard links here:", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.conf)
			if tc.prep != nil {
				tc.prep(t, filepath.Dir(cfg))
			}
			code, _, stderr := runCLI(t, "sync", "--config", cfg)
			segs := strings.Split(tc.key, ".")
			k := segs[len(segs)-1]
			if k == "path" { // every section has a path: find the section
				k = segs[len(segs)-2]
			}
			wantConfigError(t, code, stderr, tc.key, lineOf(t, tc.conf, k+":"))
			if !regexp.MustCompile(`same file|backup folder`).MatchString(stderr) {
				t.Errorf("stderr does not say what collides:\n%s", stderr)
			}
		})
	}
	// Distinct files pass.
	cfg := writeConfig(t, basicConfig+"report: {path: r/report.json}\nservice: {log_file: smimesync.log}\n")
	if code, _, stderr := runCLI(t, "plan", "--config", cfg); code != exitOK {
		t.Errorf("distinct paths: exit %d: %s", code, stderr)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skip("no symbolic links here:", err)
	}
}

// TestReportOverStateRefused is the repro: report.path: state.json
// overwrote the state, and the next sync started from nothing with exit 0.
func TestReportOverStateRefused(t *testing.T) {
	cfg := writeConfig(t, basicConfig)
	if code, _, stderr := runCLI(t, "sync", "--config", cfg); code != exitOK {
		t.Fatalf("sync exit %d: %s", code, stderr)
	}
	state := filepath.Join(filepath.Dir(cfg), "state.db")
	before, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(basicConfig+"report: {path: state.json}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "sync", "--config", cfg)
	wantConfigError(t, code, stderr, "report.path", 6)
	if after, _ := os.ReadFile(state); string(after) != string(before) {
		t.Error("the refused sync changed the state file")
	}
}

// TestPlanExitsOneWhenLookupsFail: lookups that fail one by one (the
// service refuses each with a 400) leave those entries skipped; plan still
// prints the plan, and exits 1 so scripts can tell. (A refused sign-in is
// not one user's failure: see TestWrongSecretReportedOnce.)
func TestPlanExitsOneWhenLookupsFail(t *testing.T) {
	exo, _, cfg := exchangeTenant(t)
	// A good plan first: it exits 0, and counts the lookups a plan makes.
	if code, _, stderr := runCLI(t, "plan", "--config", cfg); code != exitOK {
		t.Fatalf("plan exit %d while the service answers: %s", code, stderr)
	}
	lookups := exo.Requests("Get-Recipient")
	fail := func() {
		exo.Fail(exchangetest.Fault{Cmdlet: "Get-Recipient", Kind: exchangetest.FaultStatus, Status: http.StatusBadRequest, Times: lookups})
	}
	fail()
	code, stdout, stderr := runCLI(t, "plan", "--config", cfg)
	if code != exitRuntime {
		t.Errorf("plan exit %d, want %d", code, exitRuntime)
	}
	if !regexp.MustCompile(`alice@smime.example +skip`).MatchString(stdout) {
		t.Errorf("the plan was not printed:\n%s", stdout)
	}
	if !strings.Contains(stderr, "2 of 2 recipient lookups failed") {
		t.Errorf("stderr does not say that lookups failed:\n%s", stderr)
	}
	fail()
	code, stdout, _ = runCLI(t, "plan", "--config", cfg, "--json")
	if code != exitRuntime || !strings.Contains(stdout, `"error"`) {
		t.Errorf("plan --json exit %d, want %d with the plan:\n%s", code, exitRuntime, stdout)
	}
	// Once the service answers again, the same plan exits 0.
	if code, _, stderr := runCLI(t, "plan", "--config", cfg); code != exitOK {
		t.Errorf("plan exit %d once the service answers: %s", code, stderr)
	}
}

// TestLDAPConfigSlipsExitTwo: slips that only a pass finds (a password
// variable that is not set, a password file that does not exist, a base
// DN outside the server's naming contexts) are configuration errors, exit
// 2, naming the YAML path and its line. Against the real Samba DC.
func TestLDAPConfigSlipsExitTwo(t *testing.T) {
	srv := ldaptest.Samba(t)
	t.Setenv("SMIMESYNC_TEST_LDAP_PASSWORD", srv.AdminPassword)
	conf := func(bind, base string) string {
		return fmt.Sprintf("source:\n  ldap:\n    url: %s\n    ca_file: %s\n    bind:\n      method: simple\n      user: %q\n      %s\n    base_dn: %q\n    delta: none\n"+
			"sink: {file: {path: published.json}}\nstate: {path: state.json}\n", srv.LDAPSURL, srv.CAFile, srv.AdminDN, bind, base)
	}
	base := srv.NewOU(t) // a small, empty subtree of the shared DC
	for _, tc := range []struct {
		name, conf, key, line string
	}{
		{"password_env not set", conf("password_env: SMIMESYNC_TEST_UNSET_PASSWORD", base), "source.ldap.bind.password_env", "password_env:"},
		{"password_file missing", conf("password_file: no-such-file", base), "source.ldap.bind.password_file", "password_file:"},
		{"base DN outside the naming contexts", conf("password_env: SMIMESYNC_TEST_LDAP_PASSWORD", "OU=People,DC=elsewhere,DC=invalid"), "source.ldap.base_dn", "base_dn:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range []string{"plan", "sync"} {
				code, _, stderr := runCLI(t, cmd, "--config", writeConfig(t, tc.conf))
				t.Logf("%s: exit %d: %s", cmd, code, stderr)
				wantConfigError(t, code, stderr, tc.key, lineOf(t, tc.conf, tc.line))
			}
		})
	}
	// The same source with a base DN in the domain works.
	code, _, stderr := runCLI(t, "plan", "--config", writeConfig(t, conf("password_env: SMIMESYNC_TEST_LDAP_PASSWORD", base)))
	if code != exitOK {
		t.Errorf("a good configuration: exit %d: %s", code, stderr)
	}
}

// TestUsageErrorHint: a usage error prints one line on how to get help,
// not the whole usage text.
func TestUsageErrorHint(t *testing.T) {
	code, _, stderr := runCLI(t, "plan", "--bogus")
	if code != exitUsage || strings.Contains(stderr, "usage:\n") || !strings.Contains(stderr, "run 'smimesync help' for usage") {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
	if n := strings.Count(strings.TrimSpace(stderr), "\n") + 1; n != 2 {
		t.Errorf("%d lines, want the error and the hint:\n%s", n, stderr)
	}
}
