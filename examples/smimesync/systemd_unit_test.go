package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const unitFile = "smimesync.service"

// TestSystemdUnitInstallNotes: the install notes put the configuration
// where the service's DynamicUser can read it: a folder and a file
// readable by all (the secrets live in the environment file or in
// credentials), never 0640 or 0750 root-owned, which the made-up user
// cannot open.
func TestSystemdUnitInstallNotes(t *testing.T) {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	if !strings.Contains(unit, "\nDynamicUser=yes") {
		t.Skip("the unit no longer uses DynamicUser; these notes are about it")
	}
	dir := regexp.MustCompile(`install -d -m (0\d+) /etc/smimesync\b`).FindStringSubmatch(unit)
	cfg := regexp.MustCompile(`install -m (0\d+) smimesync\.yaml /etc/smimesync/smimesync\.yaml`).FindStringSubmatch(unit)
	env := regexp.MustCompile(`install -m (0\d+) /dev/null /etc/smimesync/env`).FindStringSubmatch(unit)
	switch {
	case dir == nil || cfg == nil || env == nil:
		t.Fatalf("the install notes lost a line (folder %v, configuration %v, environment file %v)", dir, cfg, env)
	case dir[1] != "0755":
		t.Errorf("/etc/smimesync is installed %s: the DynamicUser cannot enter it; want 0755", dir[1])
	case cfg[1] != "0644":
		t.Errorf("smimesync.yaml is installed %s: the DynamicUser cannot read it; want 0644 (secrets in the environment file or credentials)", cfg[1])
	case env[1] != "0600":
		t.Errorf("the environment file is installed %s, want 0600 (systemd reads it as root)", env[1])
	}
	for _, want := range []string{"EnvironmentFile=/etc/smimesync/env", "LoadCredential=", "/run/credentials/smimesync.service/"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit does not mention %s", want)
		}
	}
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit, where
// the command is available (it is on the project's Debian test machine),
// with ExecStart pointed at an executable that exists (verify checks it).
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed here; the unit was not verified")
	}
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(b), "ExecStart=/usr/local/bin/smimesync ", "ExecStart="+exe+" ")
	if unit == string(b) {
		t.Fatal("ExecStart no longer names /usr/local/bin/smimesync; update this test")
	}
	path := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	var about []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, unitFile) {
			about = append(about, line)
		}
	}
	if err != nil || len(about) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
