package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestSyncClosesItsTemporaryFiles: sync hands Apply's report to the
// report store and prints it, and must then Close it: the report keeps its
// rows in a temporary file of its own, and where a file cannot be
// unlinked while open (Windows) a report not closed leaves it behind in
// TMP when the command exits (a finalizer does not run at exit). On Linux
// the file is unlinked at once, so this test looks for it among the open
// descriptors instead.
func TestSyncClosesItsTemporaryFiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/fd")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cfg := writeConfig(t, basicConfig)
	if code, stdout, stderr := runCLI(t, "sync", "--config", cfg); code != exitOK || !strings.Contains(stdout, "written") {
		t.Fatalf("sync exit %d: %s %s", code, stdout, stderr)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, tmp+string(filepath.Separator)) {
			t.Errorf("sync returned with %s still open", target)
		}
	}
}
