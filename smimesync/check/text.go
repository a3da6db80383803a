package check

import (
	"fmt"
	"io"

	"github.com/smimesync/go-smimesync/internal/termsafe"
)

// WriteText writes the checks for people, as `smimesync check` prints
// them: grouped by part under a title ("Configuration and state",
// "Directory", "Sink NAME", "Probe (writes)"), one line per check marked
// ✓ or ✗ with its detail, then its fix or note. Text that came from the
// directory or the cloud is escaped, so that it cannot act on a terminal.
func (r Report) WriteText(w io.Writer) error {
	ew := &termsafe.ErrWriter{W: w}
	part := ""
	for _, it := range r.Checks {
		if it.Part != part {
			part = it.Part
			fmt.Fprintln(ew, termsafe.String(partTitle(part)))
		}
		mark := "✓"
		if !it.OK {
			mark = "✗"
		}
		line := "  " + mark + " " + it.Check
		if it.Detail != "" {
			line += ": " + it.Detail
		}
		fmt.Fprintln(ew, termsafe.String(line))
		if it.Fix != "" {
			fmt.Fprintln(ew, termsafe.String("      fix: "+it.Fix))
		}
		if it.Note != "" {
			fmt.Fprintln(ew, termsafe.String("      note: "+it.Note))
		}
	}
	return ew.Err
}

// partTitle is the title of a part's group.
func partTitle(part string) string {
	switch part {
	case PartConfig:
		return "Configuration and state"
	case PartDirectory:
		return "Directory"
	case PartProbe:
		return "Probe (writes)"
	}
	return "Sink " + part
}
