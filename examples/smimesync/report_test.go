package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync/report"
)

// TestReportCommand runs `run --once` then `report` on its report.
func TestReportCommand(t *testing.T) {
	// testdata/users.ldif holds the RFC 9216 sample certificates, whose
	// validity is fixed: judge them at the corpus's time, and ask for the
	// certificates report.Expiring within the days Alice's has left then.
	useCorpusClock(t)
	days := strconv.Itoa(int(pemCertificate(t, "testdata/alice.crt").NotAfter.Sub(clock()).Hours()/24) + 1)
	cfg := writeConfig(t, basicConfig+"log: {level: error}\n")
	code, _, stderr := runCLI(t, "report", "--config", cfg)
	if code != exitRuntime || !strings.Contains(stderr, "does not exist yet") {
		t.Errorf("report before any run: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "run", "--once", "--config", cfg); code != exitOK {
		t.Fatalf("run --once: exit %d: %s", code, stderr)
	}

	code, stdout, stderr := runCLI(t, "report", "--config", cfg)
	if code != exitOK {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		`Sink "file": 2 users`,
		"run full, finished",
		"no usable certificate    1",
		"No usable certificate (1)",
		"bob@smime.example  all dropped: no-matching-address",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, _ = runCLI(t, "report", "--file", filepath.Join(filepath.Dir(cfg), "state.report.db"), "--json", "--days", days)
	var doc report.Summary
	if err := json.Unmarshal([]byte(stdout), &doc); code != exitOK || err != nil {
		t.Fatalf("report --json: exit %d, %v", code, err)
	}
	if len(doc.Sinks) != 1 || strconv.Itoa(doc.WithinDays) != days || len(doc.Sinks[0].Expiring) != 2 || len(doc.Sinks[0].NoUsable) != 1 {
		t.Errorf("report --json: %+v", doc)
	}

	code, stdout, _ = runCLI(t, "report", "--config", cfg, "--csv")
	if code != exitOK || !strings.HasPrefix(stdout, "sink,section,user,") || !strings.Contains(stdout, "file,dropped,bob@smime.example,") {
		t.Errorf("report --csv: exit %d:\n%s", code, stdout)
	}

	for name, args := range map[string][]string{
		"neither":   {"report"},
		"both":      {"report", "--config", cfg, "--file", "x.json"},
		"json+csv":  {"report", "--config", cfg, "--json", "--csv"},
		"bad days":  {"report", "--config", cfg, "--days", "-1"},
		"extra arg": {"report", "--config", cfg, "more"},
		"no state":  {"report", "--config", writeConfig(t, strings.Replace(basicConfig, "state:  {path: state.json}\n", "", 1))},
	} {
		if code, _, stderr := runCLI(t, args...); code != exitUsage {
			t.Errorf("%s: exit %d, want %d (%s)", name, code, exitUsage, stderr)
		}
	}
}
