package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

// printPlan prints a plan as a table a person reads at a glance: one line
// per user, what happens, and why values are dropped.
func printPlan(w io.Writer, sink string, p *smimesync.Plan) {
	kind := "delta"
	if p.Full {
		kind = "full"
	}
	fmt.Fprintf(w, "Plan for sink %q (%s read of the directory, %d entries)\n\n", termSafe(sink), kind, p.Summary.Entries)
	printChanges(w, p.Changes, false)
	fmt.Fprintln(w)
	printSummary(w, p.Summary, false)
	printNotWritable(w, p.Changes)
}

// printNotWritable lists the recipients the sink cannot write, and why.
func printNotWritable(w io.Writer, cs []*smimesync.Change) {
	for _, c := range cs {
		if r := c.Recipient; r != nil && r.ReadOnly != "" {
			fmt.Fprintf(w, "not writable: %s (%s %s): %s\n", termSafe(c.User), termSafe(dash(r.Kind)), termSafe(dash(r.Name)), termSafe(r.ReadOnly))
		}
	}
}

// printReport prints what a sync did.
func printReport(w io.Writer, sink string, r *smimesync.Report) {
	fmt.Fprintf(w, "Sync to sink %q\n\n", termSafe(sink))
	printChanges(w, r.Changes, true)
	fmt.Fprintln(w)
	printSummary(w, r.Summary, true)
	switch {
	case !r.StateSaved:
		fmt.Fprintln(w, "state NOT saved (see the errors below)")
	case r.CookieAdvanced:
		fmt.Fprintln(w, "state saved; the next pass continues from here")
	default:
		fmt.Fprintln(w, "state saved; the delta position was NOT advanced, so the next pass reads these changes again")
	}
	for _, e := range r.Errors {
		fmt.Fprintln(w, "error:", termSafe(e))
	}
}

func printChanges(w io.Writer, cs []*smimesync.Change, outcome bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hdr := "USER\tACTION\tKEEP\tDROP\tWHY"
	if outcome {
		hdr = "USER\tACTION\tOUTCOME\tKEEP\tDROP\tWHY"
	}
	fmt.Fprintln(tw, hdr)
	for _, c := range cs {
		why := report.DropSummary(c.Drop)
		if c.Departed() {
			why = departedWhy(c)
		} else if c.Action == smimesync.ActionSkip {
			// A read-only recipient: the sink's words say more than the code.
			why = strings.TrimSpace(cmp.Or(c.Detail, string(c.Reason)) + " " + c.Error)
		} else if c.Error != "" {
			why = strings.TrimSpace(why + " " + c.Error)
		}
		if c.Writes() && len(c.Removes) > 0 {
			why = strings.TrimSpace(why + fmt.Sprintf(" [takes away %s it carries now]", plural(len(c.Removes), "certificate")))
		}
		if c.CurrentFrom == smimesync.CurrentFromState || c.CurrentFrom == smimesync.CurrentUnknown {
			why = strings.TrimSpace(why + " [current set from " + string(c.CurrentFrom) + "]")
		}
		user, why := termSafe(c.User), termSafe(why)
		if outcome {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", user, c.Action, dash(string(c.Outcome)), len(c.Keep), len(c.Drop), why)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", user, c.Action, len(c.Keep), len(c.Drop), why)
		}
	}
	tw.Flush()
}

// departedWhy says what happens to a user who left the directory with
// certificates published.
func departedWhy(c *smimesync.Change) string {
	to := "the recipient"
	if c.Recipient != nil {
		to = cmp.Or(c.Recipient.Name, c.Recipient.ID)
	}
	if c.Action == smimesync.ActionDepart {
		return strings.TrimSpace("left the directory: removing what smimesync published from " + to + " " + c.Error)
	}
	why := fmt.Sprintf("left the directory: %s published on %s stay", plural(len(c.Published), "certificate"), to)
	switch {
	case c.Error != "":
		why += "; " + c.Error
	case c.Detail != "":
		why += " (" + c.Detail + ")"
	default:
		why += " (remove_departed is off)"
	}
	return why
}

func printSummary(w io.Writer, s smimesync.Summary, outcome bool) {
	fmt.Fprintf(w, "%s: %d add, %d replace, %d remove, %d unchanged, %d skipped; %s would lose a certificate (guard limit applies)\n",
		plural(s.Entries, "entry"), s.Add, s.Replace, s.Remove, s.Unchanged, s.Skip, plural(s.Losing, "recipient"))
	if s.Departed > 0 {
		fmt.Fprintf(w, "%s left the directory with certificates published: %d to remove, %d left in place\n",
			plural(s.Departed, "user"), s.Depart, s.Departed-s.Depart)
	}
	fmt.Fprintf(w, "%d values kept, %d dropped", s.KeptValues, s.DroppedValues)
	if len(s.Dropped) > 0 {
		var parts []string
		for _, r := range slices.Sorted(maps.Keys(s.Dropped)) {
			parts = append(parts, fmt.Sprintf("%s %d", r, s.Dropped[r]))
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	if outcome {
		fmt.Fprintf(w, "%d written, %d failed, %d not writable\n", s.Written, s.Failed, s.NotWritable)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural is "1 entry", "2 entries", "3 certificates".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, noun[:len(noun)-1])
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
