package report

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportWriterLeavesForeignFiles: the report writer never renames or
// replaces a file that is not one of its reports: a state file (the slip
// `report.path: state.json`), a configuration, garbage, an empty file.
// The error says so and names the path; the file and its neighbours are as
// they were.
func TestReportWriterLeavesForeignFiles(t *testing.T) {
	for _, tt := range []struct{ name, content string }{
		{"state file", `{"format": "smimesync-state", "version": 1, "published": {}, "generation": 3}`},
		{"legacy state file", `{"version": 1, "published": {}, "generation": 3}`},
		{"configuration", "source: {ldif: {path: users.ldif}}\nstate: {path: state.json}\n"},
		{"garbage", "{not json"},
		{"empty", ""},
		{"null", "null"},
		{"JSON array", "[]"},
		{"report-like with an extra member", `{"version": 1, "updated": "2026-01-01T00:00:00Z", "sinks": [], "published": {}}`},
		{"another format", `{"format": "smimesync-state", "version": 1, "updated": "2026-01-01T00:00:00Z", "sinks": []}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			err := updateReport(path, "file", "sync", nil, errors.New("boom"), reportNow, nil)
			if !errors.Is(err, ErrNotReport) || !strings.Contains(err.Error(), path) {
				t.Errorf("updateReport over a %s: %v; want an error wrapping ErrNotReport that names %s", tt.name, err, path)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Errorf("the %s was changed to %q", tt.name, b)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("files in the folder: %v, want only state.json", names)
			}
		})
	}
}

// TestReportSaveChecksAgain: the service keeps the report in memory
// between passes; if the file was replaced by something else meanwhile,
// save refuses to write over it.
func TestReportSaveChecksAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	r, err := open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.save(path); err != nil {
		t.Fatal(err)
	}
	if err := r.save(path); err != nil {
		t.Fatalf("saving over its own report: %v", err)
	}
	const other = `{"format": "smimesync-state", "version": 1, "published": {}}`
	if err := os.WriteFile(path, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.save(path); !errors.Is(err, ErrNotReport) {
		t.Errorf("save over a state file: %v, want ErrNotReport", err)
	}
	if b, _ := os.ReadFile(path); string(b) != other {
		t.Errorf("the state file was replaced by %q", b)
	}
}

// TestReportLegacyFile: a report written before the marker is read, and
// updated with the marker.
func TestReportLegacyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	legacy := `{"version": 1, "updated": "2026-01-01T00:00:00Z", "sinks": [{"sink": "file", "lastPass": {"command": "sync", "full": true, "finished": "2026-01-01T00:00:00Z", "summary": {"entries": 0, "add": 0, "replace": 0, "remove": 0, "unchanged": 0, "skip": 0, "losing": 0, "overwriting": 0, "pruning": 0, "retried": 0, "keptValues": 0, "droppedValues": 0, "written": 0, "failed": 0, "notWritable": 0}, "cookieAdvanced": true}, "complete": true, "entries": []}]}`
	if err := os.WriteFile(path, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := updateReport(path, "other", "sync", nil, nil, reportNow, nil); err != nil {
		t.Fatalf("updating a legacy report: %v", err)
	}
	r, err := Load(path)
	if err != nil || len(r.Sinks) != 2 {
		t.Fatalf("after the update: %+v, %v", r, err)
	}
	if b, _ := os.ReadFile(path); !strings.HasPrefix(string(b), string(fileHead)) {
		t.Errorf("the updated report does not begin with the marker:\n%s", b)
	}
}
