package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestInspectGolden(t *testing.T) {
	useCorpusClock(t)
	files := []string{
		"testdata/alice.crt",                  // PEM certificate
		"testdata/alice.der",                  // DER certificate
		"testdata/signedByAliceRSA.p7m",       // DER SignedData, signed
		"testdata/encryptedForBobRSAOaep.p7m", // EnvelopedData: wrong content type
		"testdata/pkilint-mailbox-strict.pem", // expired in 2023
		"testdata/users.ldif",                 // two users
		"testdata/garbage.bin",                // not a certificate at all
		"testdata/missing.pem",                // does not exist
	}
	code, stdout, stderr := runCLI(t, append([]string{"inspect", "--json"}, files...)...)
	if code != exitRuntime {
		t.Errorf("exit code %d, want %d (three files cannot be read); stderr: %s", code, exitRuntime, stderr)
	}
	if !strings.Contains(stderr, "3 of 8 files could not be read") {
		t.Errorf("stderr does not say how many files failed: %q", stderr)
	}
	golden := filepath.Join("testdata", "inspect.golden.json")
	if *update {
		if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), stdout); diff != "" {
		t.Errorf("inspect --json differs from %s (-want +got); run with -update if intended:\n%s", golden, diff)
	}

	// The document's shape, as scripts read it.
	var doc struct {
		Files []struct {
			Path         string
			Kind         string
			Error        string
			Certificates []map[string]any
			Blob         *struct {
				Signers           []map[string]any
				SignatureVerified bool `json:"signature_verified"`
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.Files {
		for _, c := range f.Certificates {
			for _, k := range []string{"sha256", "subject", "issuer", "emails", "not_before", "not_after", "key", "can_encrypt", "can_sign", "verdict", "reasons"} {
				if _, ok := c[k]; !ok {
					t.Errorf("%s: certificate without %q", f.Path, k)
				}
			}
		}
	}
	if b := doc.Files[2].Blob; b == nil || !b.SignatureVerified || len(b.Signers) != 1 {
		t.Errorf("signed blob: %+v, want one signer and a verified signature", b)
	}
}

func TestInspectText(t *testing.T) {
	useCorpusClock(t)
	code, stdout, _ := runCLI(t, "inspect", "testdata/alice.crt", "testdata/users.ldif")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"sha256      ",
		"emails      alice@smime.example",
		"verdict     keep",
		"-- CN=Bob,OU=Staff,DC=smime,DC=example",
		": drop no-matching-address",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := runCLI(t, "demo", "--dir", dir)
	if code != exitOK {
		t.Fatalf("demo exit %d: %s", code, stderr)
	}
	for _, re := range []string{
		`alice@example.com +add +1 +0`,
		`bob@example.com +add +1 +1 +expired`,
		`carol@example.com +unchanged +0 +1 +not-for-smime`,
		`dave@example.com +unchanged +0 +1 +no-matching-address`,
		`erin@example.com +add +15 +5 +over-limit ×5`,
		`frank@example.com +add +1 +0`,
		`heidi@example.com +unchanged +0 +1 +not-yet-valid`,
		`ivan@example.com +add +1 +2 +security-settings, unparseable`,
		`judy@example.com +add +1 +1 +duplicate`,
		`mallory@example.com +skip +1 +0 +directory-synced`,
		`oscar@example.com +remove +0 +0`,
		`peggy@example.com +skip +0 +1 +no-recipient`,
		`9 written, 0 failed, 0 not writable`,
		`0 add, 0 replace, 0 remove, 12 unchanged, 2 skipped`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("demo output does not match %q", re)
		}
	}
	if t.Failed() {
		t.Log(stdout)
	}
	// The tenant file holds what was published.
	b, err := os.ReadFile(filepath.Join(dir, "published.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tenant struct {
		Recipients map[string]struct {
			UserCertificate      [][]byte
			UserSMIMECertificate [][]byte
		}
	}
	if err := json.Unmarshal(b, &tenant); err != nil {
		t.Fatal(err)
	}
	if n := len(tenant.Recipients["erin@example.com"].UserCertificate); n != 15 {
		t.Errorf("erin carries %d certificates, want 15", n)
	}
	if n := len(tenant.Recipients["frank@example.com"].UserSMIMECertificate); n != 1 {
		t.Errorf("frank carries %d blobs, want 1", n)
	}
	if n := len(tenant.Recipients["oscar@example.com"].UserCertificate); n != 0 {
		t.Errorf("oscar still carries %d certificates", n)
	}
}

// writeConfig writes a configuration and an LDIF directory to a temporary
// folder and returns the configuration's path.
func writeConfig(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	ldif, err := os.ReadFile("testdata/users.ldif")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.ldif"), ldif, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "smimesync.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const basicConfig = `source: {ldif: {path: users.ldif}}
sink:   {file: {path: published.json}}
policy: {max_values: 15}
state:  {path: state.json}
guard:  {max_removals: 500}
`

func TestPlanJSON(t *testing.T) {
	cfg := writeConfig(t, basicConfig)
	code, stdout, stderr := runCLI(t, "plan", "--config", cfg, "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Sink    string `json:"sink"`
		Changes []struct {
			ID     string `json:"id"`
			User   string `json:"user"`
			Action string `json:"action"`
			Keep   []struct {
				SHA256    string `json:"sha256"`
				Attribute string `json:"attribute"`
			} `json:"keep"`
			Drop []struct {
				SHA256    string   `json:"sha256"`
				Attribute string   `json:"attribute"`
				Reasons   []string `json:"reasons"`
			} `json:"drop"`
		} `json:"changes"`
		Summary map[string]any `json:"summary"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Sink != "file" || len(doc.Changes) != 2 || doc.Summary == nil {
		t.Fatalf("plan document: %+v", doc)
	}
	alice, bob := doc.Changes[0], doc.Changes[1]
	if alice.User != "alice@smime.example" || alice.Action != "add" || len(alice.Keep) != 2 || alice.ID != "04030201-0605-0807-090a-0b0c0d0e0f10" {
		t.Errorf("alice: %+v", alice)
	}
	if bob.Action != "unchanged" || len(bob.Drop) != 1 || bob.Drop[0].Reasons[0] != "no-matching-address" || len(bob.Drop[0].SHA256) != 64 {
		t.Errorf("bob: %+v", bob)
	}
	// plan wrote nothing.
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "published.json")); !os.IsNotExist(err) {
		t.Errorf("plan created the sink's file: %v", err)
	}
}

func TestSyncGuardAndDryRun(t *testing.T) {
	cfg := writeConfig(t, basicConfig)
	dir := filepath.Dir(cfg)
	// The tenant carries certificates for both users that the directory
	// does not hold: with a guard of 1, the sync stops.
	tenant := `{"recipients":{"alice@smime.example":{"userCertificate":["AQID"]},"bob@smime.example":{"userCertificate":["BAUG"]}}}`
	if err := os.WriteFile(filepath.Join(dir, "published.json"), []byte(tenant), 0o600); err != nil {
		t.Fatal(err)
	}
	strict := strings.Replace(basicConfig, "max_removals: 500", "max_removals: 1", 1)
	if err := os.WriteFile(cfg, []byte(strict), 0o600); err != nil {
		t.Fatal(err)
	}
	// The dry run says that the real run would stop, and exits as it would.
	code, stdout, stderr := runCLI(t, "sync", "--config", cfg, "--dry-run")
	if code != exitGuard || !strings.Contains(stdout, "dry run: nothing was written") ||
		!strings.Contains(stdout, "the guard would stop the real sync") || !strings.Contains(stdout, "--force") {
		t.Fatalf("dry run exit %d, want %d and the guard's word: %s %s", code, exitGuard, stdout, stderr)
	}
	if code, stdout, stderr = runCLI(t, "sync", "--config", cfg, "--dry-run", "--force"); code != exitOK || strings.Contains(stdout, "guard would stop") {
		t.Fatalf("forced dry run exit %d, want 0: %s %s", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, "sync", "--config", cfg)
	if code != exitGuard || !strings.Contains(stderr, "2 recipients would lose certificates") {
		t.Fatalf("sync exit %d, want %d: %s", code, exitGuard, stderr)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "published.json"))
	if string(b) != tenant {
		t.Error("the guard tripped but the tenant changed")
	}
	code, stdout, stderr = runCLI(t, "sync", "--config", cfg, "--force")
	if code != exitOK || !strings.Contains(stdout, "2 written") {
		t.Fatalf("forced sync exit %d: %s %s", code, stdout, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for name, tt := range map[string]struct {
		config string
		args   []string
		want   string
	}{
		"no command":      {args: []string{}, want: "usage:"},
		"unknown command": {args: []string{"frobnicate"}, want: `unknown command "frobnicate"`},
		"no config":       {args: []string{"plan"}, want: "--config is required"},
		"unknown key":     {config: basicConfig + "colour: blue\n", want: "smimesync.yaml:6: colour: unknown key"},
		"unknown nested":  {config: strings.Replace(basicConfig, "max_values: 15", "max_value: 15", 1), want: "smimesync.yaml:3: policy.max_value: unknown key"},
		"two sinks":       {config: basicConfig + "sink: {file: {path: a.json}}\n", want: `mapping key "sink" already defined`},
		"no source":       {config: "sink: {file: {path: a.json}}\n", want: "no source"},
		"bad reason":      {config: basicConfig + "prune: {reasons: [old]}\n", want: `unknown reason "old"`},
		"bad log level":   {config: basicConfig + "log: {level: loud}\n", want: "log.level"},
		"inspect nothing": {args: []string{"inspect"}, want: "name at least one FILE"},
		"guard of zero":   {config: strings.Replace(basicConfig, "max_removals: 500", "max_removals: 0", 1), want: "guard.max_removals: 0 would stop every run"},
		"cloud without state": {config: "source: {ldif: {path: users.ldif}}\nsink: {exchange: {tenant_id: t, client_id: c, organization: o}}\n",
			want: "state.path is required with a cloud sink"},
		"unsafe prune": {config: basicConfig + "prune: {reasons: [no-matching-address]}\n", want: "prune reason is not safe"},
		"revocation method": {config: strings.Replace(basicConfig, "max_values: 15", "max_values: 15, revocation: {methods: [ocsp, scvp]}", 1),
			want: `"scvp" is not ocsp or crl`},
	} {
		t.Run(name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = []string{"plan", "--config", writeConfig(t, tt.config)}
			}
			code, _, stderr := runCLI(t, args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q lacks %q", stderr, tt.want)
			}
		})
	}
}
