package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestStateImportedOnce: a state.json kept by an earlier release (a
// FileState, its journal included) is imported into state.db by the next
// sync, which then knows everything it knew, and is kept as a backup.
func TestStateImportedOnce(t *testing.T) {
	ctx := context.Background()
	cfg := writeConfig(t, basicConfig)
	dir := filepath.Dir(cfg)
	if code, _, stderr := runCLI(t, "sync", "--config", cfg); code != exitOK {
		t.Fatalf("first sync: exit %d: %s", code, stderr)
	}
	store := &smimesync.BoltState{Path: filepath.Join(dir, "state.db")}
	snap, err := store.Load(ctx)
	if err != nil || len(snap.Published) == 0 {
		t.Fatalf("state after the first sync: %+v, %v", snap, err)
	}
	// Make it the state of an earlier release: a JSON file and a journal
	// record, and no store.
	if err := os.Remove(store.Path); err != nil {
		t.Fatal(err)
	}
	legacy := smimesync.FileState(filepath.Join(dir, "state.json"))
	var one string
	for id := range snap.Published {
		one = id
		break
	}
	rec := snap.Published[one]
	delete(snap.Published, one)
	if err := legacy.Save(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := legacy.Record(ctx, one, rec); err != nil { // only in the journal
		t.Fatal(err)
	}
	want, err := legacy.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(string(legacy))
	if err != nil {
		t.Fatal(err)
	}

	// plan imports it, and plans nothing to write.
	if code, stdout, stderr := runCLI(t, "plan", "--config", cfg); code != exitOK {
		t.Fatalf("plan over the JSON state: exit %d: %s%s", code, stdout, stderr)
	}
	got, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Published, want.Published) {
		t.Errorf("published after the import:\n got %v\nwant %v", got.Published, want.Published)
	}
	if _, err := os.Lstat(string(legacy)); !os.IsNotExist(err) {
		t.Errorf("state.json is still there after the import: %v", err)
	}
	baks, _ := filepath.Glob(filepath.Join(dir, "state.json.imported-*.bak"))
	if len(baks) != 1 {
		t.Fatalf("backups: %v, want one", baks)
	}
	if b, err := os.ReadFile(baks[0]); err != nil || string(b) != string(raw) {
		t.Errorf("the backup is not the imported state.json (%v)", err)
	}
	code, rep, stderr := syncJSON(t, cfg)
	if code != exitOK || rep == nil || rep.Summary.Written != 0 {
		t.Fatalf("sync over the imported state: exit %d, %+v: %s", code, rep, stderr)
	}
	if baks, _ := filepath.Glob(filepath.Join(dir, "state.json*")); len(baks) != 2 {
		t.Errorf("after the next sync: %v, want the backups of state.json and its journal", baks)
	}
}

// TestStateForeignJSONRefused: a state.path that names some other JSON
// file is refused, and the file is left alone.
func TestStateForeignJSONRefused(t *testing.T) {
	cfg := writeConfig(t, basicConfig)
	path := filepath.Join(filepath.Dir(cfg), "state.json")
	const foreign = `{"tenant": "contoso"}`
	if err := os.WriteFile(path, []byte(foreign), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "sync", "--config", cfg)
	if code != exitRuntime || !strings.Contains(stderr, path) || !strings.Contains(stderr, "not a smimesync state file") {
		t.Errorf("sync over a foreign state.json: exit %d, want %d and an error naming %s:\n%s", code, exitRuntime, path, stderr)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != foreign {
		t.Errorf("the foreign file was changed: %q, %v", b, err)
	}
}
