package demo

import (
	"fmt"
	"io"
	"strings"
)

// WriteIntro writes what `smimesync demo` says before it plans: how many
// users were made in dir, one line per user's story, and the
// configuration, indented.
func (d *Directory) WriteIntro(w io.Writer, dir string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "smimesync demo: %d directory users made at run time in %s\n\n", len(d.Entries), dir)
	for _, st := range d.Stories {
		fmt.Fprintf(&b, "  %s\n", st)
	}
	fmt.Fprintf(&b, "\n  %s (the directory), %s (the tenant), %s:\n\n", LDIFFile, TenantFile, ConfigFile)
	for line := range strings.SplitSeq(strings.TrimRight(Config, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
