package report

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOpenReadJSON: a JSON report opened for reading is read whole, left
// byte for byte as it was, with nothing written beside it; Close removes
// the temporary store; the Store refuses to record.
func TestOpenReadJSON(t *testing.T) {
	for _, name := range []string{"report.v1.json", "report.v2.json"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			want, err := decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			want.Updated = want.Sinks[0].LastPass.Finished
			dir := t.TempDir()
			path := filepath.Join(dir, "old.report.json")
			if err := os.WriteFile(path, raw, 0o400); err != nil {
				t.Fatal(err)
			}
			s, err := OpenRead(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the report read (-JSON +read):\n%s", diff)
			}
			if _, err := s.Summarize(path, want.Updated, 30); err != nil {
				t.Fatal(err)
			}
			if err := s.Record("exchange", "sync", nil, errors.New("x"), time.Now()); !errors.Is(err, ErrReadOnly) {
				t.Errorf("Record = %v, want ErrReadOnly", err)
			}
			temp := s.tempDir
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(temp); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Close left the temporary store's folder %s: %v", temp, err)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, raw) {
				t.Error("the JSON report changed")
			}
			if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 1 {
				t.Errorf("files beside the report: %v, want only it", names)
			}
		})
	}
}

// TestOpenReadRefuses: OpenRead refuses what is not a report, and reads a
// missing one as empty without creating it.
func TestOpenReadRefuses(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(other, []byte("source: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRead(other); !errors.Is(err, ErrNotReport) {
		t.Errorf("OpenRead(a YAML file) = %v, want ErrNotReport", err)
	}
	missing := filepath.Join(dir, "none.db")
	s, err := OpenRead(missing)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := s.Summarize(missing, time.Now(), 30); err != nil || len(sum.Sinks) != 0 {
		t.Errorf("Summarize of a missing report: %+v, %v", sum, err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenRead created %s", missing)
	}
}
