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

// TestReportSaveChecksAgain: the service keeps the Store between passes;
// if the file was replaced by something else meanwhile, Record refuses to
// write over it.
func TestReportSaveChecksAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	r, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Record("file", "run", nil, errors.New("boom"), reportNow); err != nil {
		t.Fatal(err)
	}
	if err := r.Record("file", "run", nil, errors.New("boom"), reportNow); err != nil {
		t.Fatalf("writing over its own report: %v", err)
	}
	for _, other := range []string{`{"format": "smimesync-state", "version": 1, "published": {}}`, ""} {
		if err := os.WriteFile(path, []byte(other), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := r.Record("file", "run", nil, errors.New("boom"), reportNow); !errors.Is(err, ErrNotReport) {
			t.Errorf("Record over %q: %v, want ErrNotReport", other, err)
		}
		if err := r.Flush(); err != nil {
			t.Errorf("Flush with nothing to write: %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != other {
			t.Errorf("the file %q was replaced by %q", other, b)
		}
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
	if ok, err := isBolt(path); !ok || err != nil {
		t.Errorf("the updated report is not a store: %v", err)
	}
	if baks, _ := filepath.Glob(path + ".imported-*.bak"); len(baks) != 1 {
		t.Errorf("backups of the JSON report: %v, want one", baks)
	} else if b, _ := os.ReadFile(baks[0]); string(b) != legacy {
		t.Errorf("the backup holds %q", b)
	}
}
