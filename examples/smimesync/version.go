package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// versionText is what `smimesync --version` prints: the module version the
// binary was built from ("(devel)" for a build from a working tree), the
// VCS revision and time when the build recorded them (with "+dirty" for
// uncommitted changes), and the Go version.
func versionText() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "smimesync (no build information)\n"
	}
	var b strings.Builder
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	fmt.Fprintf(&b, "smimesync %s", v)
	if bi.Main.Path != "" {
		fmt.Fprintf(&b, " (%s)", bi.Main.Path)
	}
	b.WriteString("\n")
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += "+dirty"
		}
		fmt.Fprintf(&b, "revision %s", rev)
		if t := settings["vcs.time"]; t != "" {
			fmt.Fprintf(&b, " (%s)", t)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "built with %s\n", bi.GoVersion)
	return b.String()
}

// cmdVersion prints versionText.
func cmdVersion(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usagef("version: unexpected arguments %v", args)
	}
	_, err := io.WriteString(stdout, versionText())
	return err
}
