package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersion: `smimesync --version` and `smimesync version` print the
// module's version and path and the Go version the binary was built with,
// and exit 0.
func TestVersion(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build information in the test binary")
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, stdout, stderr := runCLI(t, args...)
		if code != exitOK {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
		first, _, _ := strings.Cut(stdout, "\n")
		if !strings.HasPrefix(first, "smimesync ") || !strings.Contains(first, bi.Main.Path) {
			t.Errorf("%v: first line %q, want smimesync, the version and %s", args, first, bi.Main.Path)
		}
		if !strings.Contains(stdout, "built with "+runtime.Version()) {
			t.Errorf("%v: %q does not name the Go version %s", args, stdout, runtime.Version())
		}
	}
	if code, _, _ := runCLI(t, "version", "extra"); code != exitUsage {
		t.Errorf("version with an argument: exit %d, want %d", code, exitUsage)
	}
}
