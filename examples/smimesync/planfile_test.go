package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync/service"
)

// tenantCerts is what a file sink's recipients carry, without the times.
func planTenantCerts(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Recipients map[string]map[string]any `json:"recipients"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for addr, r := range doc.Recipients {
		delete(r, "updated")
		out[addr] = r
	}
	return out
}

func planJSONString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPlanOutSyncPlan: plan --out saves the plan (0600); sync --plan
// applies exactly it, whatever the directory holds by then; a second
// sync --plan of the same file, or one after another sync, is refused as
// stale (exit 1) and writes nothing; a hand-edited file is refused (exit
// 2) and writes nothing.
func TestPlanOutSyncPlan(t *testing.T) {
	cfg := writeConfig(t, basicConfig)
	dir := filepath.Dir(cfg)
	planFile := filepath.Join(dir, "plan.json")
	published := filepath.Join(dir, "published.json")

	// What a plain sync of this directory publishes, elsewhere.
	control := writeConfig(t, basicConfig)
	if code, _, stderr := runCLI(t, "sync", "--config", control); code != exitOK {
		t.Fatalf("control sync: exit %d: %s", code, stderr)
	}
	want := planTenantCerts(t, filepath.Join(filepath.Dir(control), "published.json"))

	code, stdout, stderr := runCLI(t, "plan", "--config", cfg, "--out", planFile)
	if code != exitOK || !strings.Contains(stdout, "plan saved to "+planFile) {
		t.Fatalf("plan --out: exit %d: %s %s", code, stdout, stderr)
	}
	if fi, err := os.Stat(planFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("plan file: %v, %v; want mode 0600", err, fi)
	}
	if _, err := os.Stat(published); !os.IsNotExist(err) {
		t.Fatalf("plan --out wrote to the sink: %v", err)
	}

	// The directory changes after the review: everyone leaves it.
	if err := os.WriteFile(filepath.Join(dir, "users.ldif"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI(t, "sync", "--config", cfg, "--plan", planFile)
	if code != exitOK || !strings.Contains(stdout, "1 written") {
		t.Fatalf("sync --plan: exit %d: %s %s", code, stdout, stderr)
	}
	if got := planTenantCerts(t, published); planJSONString(t, got) != planJSONString(t, want) {
		t.Errorf("sync --plan published\n%s\nwant what the plan showed\n%s", planJSONString(t, got), planJSONString(t, want))
	}

	// The same file again: the state has moved.
	before, _ := os.ReadFile(published)
	code, _, stderr = runCLI(t, "sync", "--config", cfg, "--plan", planFile)
	if code != exitRuntime || !strings.Contains(stderr, "stale plan file") || !strings.Contains(stderr, "another sync ran") || !strings.Contains(stderr, "nothing was written") {
		t.Errorf("sync --plan of an applied plan: exit %d, want %d and why: %s", code, exitRuntime, stderr)
	}
	if after, _ := os.ReadFile(published); string(after) != string(before) {
		t.Error("a plan applied twice changed the tenant")
	}

	// Another sync between plan and sync --plan.
	if code, _, stderr = runCLI(t, "plan", "--config", cfg, "--out", planFile); code != exitOK {
		t.Fatalf("plan --out: exit %d: %s", code, stderr)
	}
	if code, _, stderr = runCLI(t, "sync", "--config", cfg); code != exitOK {
		t.Fatalf("sync: exit %d: %s", code, stderr)
	}
	before, _ = os.ReadFile(published)
	if code, _, stderr = runCLI(t, "sync", "--config", cfg, "--plan", planFile); code != exitRuntime || !strings.Contains(stderr, "stale plan file") {
		t.Errorf("sync --plan after another sync: exit %d, want %d: %s", code, exitRuntime, stderr)
	}
	if after, _ := os.ReadFile(published); string(after) != string(before) {
		t.Error("a stale plan changed the tenant")
	}

	// A hand-edited plan.
	if code, _, stderr = runCLI(t, "plan", "--config", cfg, "--out", planFile); code != exitOK {
		t.Fatalf("plan --out: exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(planFile)
	edited := strings.Replace(string(b), `"full": true`, `"full": false`, 1)
	if edited == string(b) {
		t.Fatal("nothing to edit in the plan file")
	}
	if err := os.WriteFile(planFile, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, "sync", "--config", cfg, "--plan", planFile)
	if code != exitUsage || !strings.Contains(stderr, "changed after it was written") {
		t.Errorf("sync --plan of an edited file: exit %d, want %d: %s", code, exitUsage, stderr)
	}
	if after, _ := os.ReadFile(published); string(after) != string(before) {
		t.Error("an edited plan changed the tenant")
	}
}

// TestPlanFileFlagSlips: a plan file may not be a file the configuration
// uses, and --plan does not go with --dry-run or --full: exit 2, nothing
// overwritten.
func TestPlanFileFlagSlips(t *testing.T) {
	cfg := writeConfig(t, basicConfig)
	dir := filepath.Dir(cfg)
	ldif, _ := os.ReadFile(filepath.Join(dir, "users.ldif"))
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"--out over the state":      {[]string{"plan", "--out", filepath.Join(dir, "state.json")}, "same file as state.path"},
		"--out over the journal":    {[]string{"plan", "--out", filepath.Join(dir, "state.json.journal")}, "the journal of state.path"},
		"--out over the sink file":  {[]string{"plan", "--out", filepath.Join(dir, "published.json")}, "same file as sink.file.path"},
		"--out over the LDIF file":  {[]string{"plan", "--out", filepath.Join(dir, "users.ldif")}, "same file as source.ldif.path"},
		"--out over the config":     {[]string{"plan", "--out", cfg}, "same file as --config"},
		"--out over the report":     {[]string{"plan", "--out", filepath.Join(dir, "state.report.db")}, "the report store beside state.path"},
		"--out over the old report": {[]string{"plan", "--out", filepath.Join(dir, "state.report.json")}, "the JSON report beside state.path"},
		"--plan from the state":     {[]string{"sync", "--plan", filepath.Join(dir, "state.json")}, "same file as state.path"},
		"--plan with --dry-run":     {[]string{"sync", "--plan", "p.json", "--dry-run"}, "--plan and --dry-run"},
		"--plan with --full":        {[]string{"sync", "--plan", "p.json", "--full"}, "--plan and --full"},
		"--plan missing":            {[]string{"sync", "--plan", filepath.Join(dir, "none.json")}, "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append(tc.args, "--config", cfg)...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want %d saying %q: %s", code, exitUsage, tc.want, stderr)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "users.ldif")); string(b) != string(ldif) {
		t.Error("the LDIF file was overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); !os.IsNotExist(err) {
		t.Errorf("a state file appeared: %v", err)
	}
}

// TestPlanPathsPerSink: with several sinks, each has a plan file of its
// own, named by {sink}; a name without it is refused.
func TestPlanPathsPerSink(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, basicConfig))
	if err != nil {
		t.Fatal(err)
	}
	two := []service.Named{{Name: "exchange"}, {Name: "graph"}}
	if _, err := cfg.planPaths("--out", "plan.json", two, true); err == nil || !strings.Contains(err.Error(), "{sink}") {
		t.Errorf("two sinks, one file: %v, want a usage error naming {sink}", err)
	}
	dir := t.TempDir()
	paths, err := cfg.planPaths("--out", filepath.Join(dir, "plan.{sink}.json"), two, true)
	if err != nil {
		t.Fatal(err)
	}
	if paths["exchange"] != filepath.Join(dir, "plan.exchange.json") || paths["graph"] != filepath.Join(dir, "plan.graph.json") {
		t.Errorf("paths %v", paths)
	}
}
