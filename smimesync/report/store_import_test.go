package report

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestImportJSONReports: a JSON report of version 1 or 2 at the old
// default path (beside the state) is imported once into the store, with
// nothing lost, and kept as a backup; one at the store's own path is
// converted in place, its JSON kept as a backup.
func TestImportJSONReports(t *testing.T) {
	for _, name := range []string{"report.v1.json", "report.v2.json"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		want.Updated = want.Sinks[0].LastPass.Finished
		t.Run(name+" beside", func(t *testing.T) {
			dir := t.TempDir()
			legacy, path := filepath.Join(dir, "state.report.json"), filepath.Join(dir, "state.report.db")
			if err := os.WriteFile(legacy, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenOptions(path, Options{Import: legacy})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the imported report (-JSON +store):\n%s", diff)
			}
			if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the JSON report is still at %s: %v", legacy, err)
			}
			baks, _ := filepath.Glob(legacy + ".imported-*.bak")
			if len(baks) != 1 {
				t.Fatalf("backups: %v, want one", baks)
			}
			if b, _ := os.ReadFile(baks[0]); !bytes.Equal(b, raw) {
				t.Error("the backup is not the JSON report")
			}
			// Opened again, nothing is imported again.
			if _, err := OpenOptions(path, Options{Import: legacy}); err != nil {
				t.Fatal(err)
			}
			// Another JSON report beside a store that holds one is
			// refused; both are kept. (The same one again is taken for
			// an import a crash kept from renaming it, and renamed.)
			second := append(bytes.Clone(raw), ' ')
			if err := os.WriteFile(legacy, second, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := s.Record("other", "sync", nil, errors.New("boom"), reportNow); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenOptions(path, Options{Import: legacy}); err == nil || !strings.Contains(err.Error(), "move one of them away") {
				t.Errorf("a second JSON report beside the store: %v", err)
			}
			if b, _ := os.ReadFile(legacy); !bytes.Equal(b, second) {
				t.Error("the second JSON report was changed")
			}
		})
		t.Run(name+" in place", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report.json")
			if err := os.WriteFile(path, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the converted report (-JSON +store):\n%s", diff)
			}
			if ok, _ := isBolt(path); !ok {
				t.Error("the report was not converted to a store")
			}
			baks, _ := filepath.Glob(path + ".imported-*.bak")
			if len(baks) != 1 {
				t.Fatalf("backups: %v, want one", baks)
			}
			if b, _ := os.ReadFile(baks[0]); !bytes.Equal(b, raw) {
				t.Error("the backup is not the JSON report")
			}
			if left, _ := filepath.Glob(path + ".im*ing"); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// TestStoreRefusesOtherBoltFiles: a bbolt file that is not a report store
// (a state store named as the report) is refused and left as it was.
func TestStoreRefusesOtherBoltFiles(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	st := &smimesync.BoltState{Path: path}
	if err := st.Save(ctx, &smimesync.Snapshot{Version: smimesync.StateVersion}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, nil); !errors.Is(err, ErrNotReport) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of a state store: %v, want ErrNotReport naming the path", err)
	}
	// A Store opened before the file was replaced refuses too.
	other := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(other, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, before, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Record("file", "sync", nil, errors.New("boom"), reportNow); !errors.Is(err, ErrNotReport) {
		t.Errorf("Record over a state store: %v, want ErrNotReport", err)
	}
	for _, p := range []string{path, other} {
		if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
			t.Errorf("the state store at %s was changed", p)
		}
	}
}

// TestDamagedStoreSetAside: a store of ours whose marker or header cannot
// be read is renamed to <path>.bad, and a new one started.
func TestDamagedStoreSetAside(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(tx *bolt.Tx) error
	}{
		{"header", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketSinks).Bucket([]byte("file")).Put(keyHeader, []byte("{not json"))
		}},
		{"version", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyFormat, []byte(`{"format": "smimesync-report-store", "version": 9}`))
		}},
		{"order", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyOrder, []byte(`["file", "gone"]`))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.db")
			if err := updateReport(path, "file", "sync", fullOf(3), nil, reportNow, nil); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(tt.damage); err != nil {
				t.Fatal(err)
			}
			db.Close()
			damaged, _ := os.ReadFile(path)
			if _, err := Load(path); !errors.Is(err, ErrBadReport) || errors.Is(err, ErrNotReport) {
				t.Errorf("Load of a damaged store: %v, want ErrBadReport", err)
			}
			if err := updateReport(path, "file", "sync", nil, errors.New("boom"), reportNow, nil); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path + ".bad"); !bytes.Equal(b, damaged) {
				t.Error("the damaged store was not set aside as it was")
			}
			r, err := Load(path)
			if err != nil || len(r.Sinks) != 1 || r.Sinks[0].LastPass.Error != "boom" || len(r.Sinks[0].Entries) != 0 {
				t.Errorf("the new report: %+v, %v", r, err)
			}
			// An existing .bad is not replaced.
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), "exists already") {
				t.Errorf("a second damaged store: %v", err)
			}
		})
	}
}

// fullOf is a full pass of n entries "0" to "n-1", each keeping one
// certificate.
func fullOf(n int) *smimesync.Report {
	rep := &smimesync.Report{Plan: smimesync.Plan{Full: true}}
	for i := range n {
		rep.Changes = append(rep.Changes, change(strconv.Itoa(i), smimesync.ActionUnchanged, "", "userCertificate"))
	}
	return rep
}
