package smimesync_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestPlanFileNames: one sink keeps the name as it is; several need
// {sink}, each getting its own file; the names come back absolute.
func TestPlanFileNames(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		sinks   []string
		want    map[string]string
		wantErr string
	}{
		{"plan.json", []string{"exchange"}, map[string]string{"exchange": "plan.json"}, ""},
		{"plan.{sink}.json", []string{"exchange"}, map[string]string{"exchange": "plan.exchange.json"}, ""},
		{"p/{sink}/{sink}.json", []string{"exchange", "graph"}, map[string]string{"exchange": "p/exchange/exchange.json", "graph": "p/graph/graph.json"}, ""},
		{"plan.json", []string{"exchange", "graph"}, nil, "plan.json: 2 sinks (exchange, graph), each with a plan of its own: put {sink} in the name"},
	} {
		got, err := smimesync.PlanFileNames(tt.name, tt.sinks)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %v: %v, want an error saying %q", tt.name, tt.sinks, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s %v: %v", tt.name, tt.sinks, err)
		}
		for s, rel := range tt.want {
			if want := filepath.Join(wd, filepath.FromSlash(rel)); got[s] != want {
				t.Errorf("%s: %s's file is %q, want %q", tt.name, s, got[s], want)
			}
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestPlanFileSaveRead: WritePlanFile saves mode 0600 what ReadPlanFile
// reads back and Apply applies; a file that is not a plan, or none, is
// refused with an error a caller can tell.
func TestPlanFileSaveRead(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	sink := cloudtest.NewMemorySink()
	s := newSyncer(writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"}))), sink,
		smimesync.FileState(filepath.Join(t.TempDir(), "state.json")))
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.json")
	if err := smimesync.WritePlanFile(path, plan); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Errorf("plan file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	read, err := smimesync.ReadPlanFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Apply(ctx, read); err != nil || rep.Summary.Written != 1 || len(sink.Writes()) != 1 {
		t.Errorf("applying the plan read: %+v, %v; want 1 write", rep, err)
	}

	notPlan := filepath.Join(dir, "state.json")
	if err := os.WriteFile(notPlan, []byte(`{"format":"smimesync-state"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := smimesync.ReadPlanFile(notPlan); !errors.Is(err, smimesync.ErrPlanFile) {
		t.Errorf("a state file read as a plan: %v, want ErrPlanFile", err)
	}
	if _, err := smimesync.ReadPlanFile(filepath.Join(dir, "none.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no file: %v, want fs.ErrNotExist", err)
	}
	if err := smimesync.WritePlanFile(filepath.Join(dir, "no", "such", "folder", "p.json"), plan); err == nil {
		t.Error("a plan saved into a folder that does not exist")
	}
}
