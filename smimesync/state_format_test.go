package smimesync_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestStateFileRefusesForeignJSON: a file at the state's path that is not a
// smimesync state file (a slip in the configuration, a report, `printf
// null`) is an error that names the path, never an empty state.
func TestStateFileRefusesForeignJSON(t *testing.T) {
	for _, tt := range []struct{ name, content string }{
		{"null", "null"},
		{"null with newline", "null\n"},
		{"array", `[]`},
		{"string", `"state"`},
		{"number", `1`},
		{"empty object", `{}`},
		{"version only", `{"version":1}`},
		{"unknown member", `{"format":"smimesync-state","version":1,"published":{},"sinks":[]}`},
		{"legacy with unknown member", `{"version":1,"published":{},"updated":"2026-01-01T00:00:00Z"}`},
		{"a report file", `{"version":1,"updated":"2026-01-01T00:00:00Z","sinks":[]}`},
		{"another format", `{"format":"other","version":1,"published":{}}`},
		{"empty format", `{"format":"","version":1,"published":{}}`},
		{"trailing data", `{"format":"smimesync-state","version":1,"published":{}} {}`},
		{"unknown member in a record", `{"format":"smimesync-state","version":1,"published":{"x":{"recipient":"r","at":"2026-01-01T00:00:00Z","extra":1}}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := smimesync.FileState(path).Load(context.Background())
			if !errors.Is(err, smimesync.ErrStateUnreadable) {
				t.Fatalf("Load(%s) = %+v, %v; want an error wrapping ErrStateUnreadable", tt.content, s, err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
		})
	}
}

// TestStateFileMarker: Save writes the StateFormat marker, and Load reads
// it back.
func TestStateFileMarker(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	st := smimesync.FileState(path)
	s, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Cookie = []byte("c")
	if err := st.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["format"] != smimesync.StateFormat {
		t.Errorf("saved file's format = %v, want %q:\n%s", m["format"], smimesync.StateFormat, b)
	}
	got, err := st.Load(ctx)
	if err != nil {
		t.Fatalf("Load of a saved file: %v", err)
	}
	if string(got.Cookie) != "c" || got.Generation != 1 {
		t.Errorf("Load = cookie %q generation %d, want c, 1", got.Cookie, got.Generation)
	}
}

// TestStateFileLegacy: a state file written by the release before the
// marker (testdata/state/v1-legacy.json, saved by that code) still loads,
// whole, and the next Save marks it.
func TestStateFileLegacy(t *testing.T) {
	ctx := context.Background()
	legacy, err := os.ReadFile(filepath.Join("testdata", "state", "v1-legacy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(legacy), `"format"`) {
		t.Fatal("testdata/state/v1-legacy.json must be the unmarked layout")
	}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	st := smimesync.FileState(path)
	s, err := st.Load(ctx)
	if err != nil {
		t.Fatalf("Load of a legacy state file: %v", err)
	}
	p, ok := s.Published["ldap\x00id-1"]
	if string(s.Cookie) != "cookie-1" || s.Generation != 1 || !ok || p.Recipient != "r-1" || len(p.UserSMIMECertificate) != 1 ||
		s.Pending["ldap\x00id-2"] == nil || s.Pending["ldap\x00id-2"].Mail != "bob@example.org" || s.LastGood.IsZero() {
		t.Fatalf("legacy state read as %+v", s)
	}
	if err := st.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"format": "smimesync-state"`) {
		t.Errorf("Save after a legacy Load did not mark the file:\n%s", b)
	}
	again, err := st.Load(ctx)
	if err != nil || string(again.Cookie) != "cookie-1" || again.Published["ldap\x00id-1"].Recipient != "r-1" {
		t.Fatalf("Load after the marking save = %+v, %v", again, err)
	}
}
