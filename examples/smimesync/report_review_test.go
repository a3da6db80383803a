package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestReportCommandLeavesTheStore: `smimesync report` only reads. A store
// it cannot read (here one another release wrote: a newer store version)
// is an error naming the path, and is left where it is: the reader must
// not rename the service's store to <path>.bad and then say the report
// "does not exist yet".
func TestReportCommandLeavesTheStore(t *testing.T) {
	cfg := writeConfig(t, basicConfig+"log: {level: error}\n")
	if code, _, stderr := runCLI(t, "run", "--once", "--config", cfg); code != exitOK {
		t.Fatalf("run --once: exit %d: %s", code, stderr)
	}
	path := filepath.Join(filepath.Dir(cfg), "state.report.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte(`{"format": "smimesync-report-store", "version": 2}`))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"--config": {"report", "--config", cfg},
		"--file":   {"report", "--file", path},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(t, args...)
			if code == exitOK || !strings.Contains(stderr, "version 2") || !strings.Contains(stderr, path) {
				t.Errorf("report of a store of another version: exit %d, %q; want an error naming the version and %s", code, stderr, path)
			}
			if after, err := os.ReadFile(path); err != nil || !bytes.Equal(before, after) {
				t.Errorf("the store at %s was moved or changed by a read: %v", path, err)
			}
			if _, err := os.Stat(path + ".bad"); err == nil {
				t.Errorf("the reader set the store aside as %s.bad", path)
				os.Rename(path+".bad", path)
			}
		})
	}
}

// TestReportCommandUnreadablePath: a --file that cannot be looked at
// (here a path under a regular file: ENOTDIR, as EACCES for a user who may
// not search the state's directory) is an error naming it, not a crash.
func TestReportCommandUnreadablePath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "regular")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(file, "state.report.db")
	var code int
	var stderr string
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("report --file %s panicked: %v", path, r)
			}
		}()
		code, _, stderr = runCLI(t, "report", "--file", path)
	}()
	if code != exitRuntime || !strings.Contains(stderr, path) {
		t.Errorf("report --file %s: exit %d, %q", path, code, stderr)
	}
}
