package report

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smimesync/go-smimesync/internal/termsafe"
	"github.com/smimesync/go-smimesync/smimesync"
)

// The text renderers below escape everything that came from the
// directory, a certificate or the cloud (users, DNs, reasons, error text)
// so that it cannot act on a terminal: a control character shows as \x1b,
// a bidirectional override as \u202e. The CSV's cells are escaped too: CSV
// is often read on a terminal, and encoding/csv quotes a control character
// but does not escape it.

// WritePlan writes p as a table a person reads at a glance, as `smimesync
// plan` prints it: a heading naming sink, one line per change (user,
// action, values kept and dropped, and why), the summary, and the
// recipients the sink cannot write. Changes are in the plan's order.
func WritePlan(w io.Writer, sink string, p *smimesync.Plan) error {
	ew := &termsafe.ErrWriter{W: w}
	kind := "delta"
	if p.Full {
		kind = "full"
	}
	fmt.Fprintf(ew, "Plan for sink %q (%s read of the directory, %d entries)\n\n", termsafe.String(sink), kind, p.Summary.Entries)
	if err := writeChanges(ew, p.Rows(), false); err != nil {
		return err
	}
	fmt.Fprintln(ew)
	writeSummary(ew, p.Summary, false)
	if p.Summary.Skip == 0 {
		return ew.Err // no read-only recipient: no need to read the rows again
	}
	for c, err := range p.Rows() {
		if err != nil {
			return err
		}
		if r := c.Recipient; r != nil && r.ReadOnly != "" {
			fmt.Fprintf(ew, "not writable: %s (%s %s): %s\n", termsafe.String(c.User), termsafe.String(dash(r.Kind)), termsafe.String(dash(r.Name)), termsafe.String(r.ReadOnly))
		}
	}
	return ew.Err
}

// WriteSync writes what a sync to sink did, as `smimesync sync` prints it:
// the plan's table with each change's outcome, the summary with the writes
// that succeeded and failed, whether the state was saved and the delta
// position advanced, and the run's errors.
func WriteSync(w io.Writer, sink string, r *smimesync.Report) error {
	ew := &termsafe.ErrWriter{W: w}
	fmt.Fprintf(ew, "Sync to sink %q\n\n", termsafe.String(sink))
	if err := writeChanges(ew, r.Rows(), true); err != nil {
		return err
	}
	fmt.Fprintln(ew)
	writeSummary(ew, r.Summary, true)
	switch {
	case !r.StateSaved:
		fmt.Fprintln(ew, "state NOT saved (see the errors below)")
	case r.CookieAdvanced:
		fmt.Fprintln(ew, "state saved; the next pass continues from here")
	default:
		fmt.Fprintln(ew, "state saved; the delta position was NOT advanced, so the next pass reads these changes again")
	}
	for _, e := range r.Errors {
		fmt.Fprintln(ew, "error:", termsafe.String(e))
	}
	return ew.Err
}

// tableBlock is how many rows of a table are aligned together.
const tableBlock = 1024

func writeChanges(w io.Writer, cs iter.Seq2[*smimesync.Change, error], outcome bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hdr := "USER\tACTION\tKEEP\tDROP\tWHY"
	if outcome {
		hdr = "USER\tACTION\tOUTCOME\tKEEP\tDROP\tWHY"
	}
	fmt.Fprintln(tw, hdr)
	n := 0
	for c, err := range cs {
		if err != nil {
			tw.Flush()
			return err
		}
		if n++; n%tableBlock == 0 {
			// The columns of a long table are aligned a block at a
			// time: the table is never held whole.
			tw.Flush()
		}
		why := DropSummary(c.Drop)
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
		user, why := termsafe.String(c.User), termsafe.String(why)
		if outcome {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", user, c.Action, dash(string(c.Outcome)), len(c.Keep), len(c.Drop), why)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", user, c.Action, len(c.Keep), len(c.Drop), why)
		}
	}
	return tw.Flush()
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

func writeSummary(w io.Writer, s smimesync.Summary, outcome bool) {
	fmt.Fprintf(w, "%s: %d add, %d replace, %d remove, %d unchanged, %d skipped; %s would lose a certificate (guard limit applies)\n",
		plural(s.Entries, "entry"), s.Add, s.Replace, s.Remove, s.Unchanged, s.Skip, plural(s.Losing, "recipient"))
	if s.Departed > 0 {
		fmt.Fprintf(w, "%s left the directory with certificates published: %d to remove, %d left in place\n",
			plural(s.Departed, "user"), s.Depart, s.Departed-s.Depart)
	}
	fmt.Fprintf(w, "%d values kept, %d dropped%s\n", s.KeptValues, s.DroppedValues, reasonCounts(s.Dropped))
	if outcome {
		fmt.Fprintf(w, "%d written, %d failed, %d not writable\n", s.Written, s.Failed, s.NotWritable)
	}
}

// WriteText writes the summary as `smimesync report` prints it: per
// sink, the last passes and the counts a person reads at a glance, then
// the lists (no usable certificate, expiring, dropped values, not
// published, left the directory), in the summary's order.
func (r *Summary) WriteText(w io.Writer) error {
	ew := &termsafe.ErrWriter{W: w}
	fmt.Fprintf(ew, "smimesync report from %s, as of %s\n", termsafe.String(r.File), stamp(r.At))
	for _, s := range r.Sinks {
		s.writeText(ew, r)
	}
	return ew.Err
}

func (s *SinkSummary) writeText(w io.Writer, r *Summary) {
	fmt.Fprintf(w, "\nSink %q: %s\n", termsafe.String(s.Sink), plural(s.Users, "user"))
	lp := s.LastPass
	kind := "delta"
	if lp.Full {
		kind = "full"
	}
	result := "ok"
	if lp.Error != "" {
		result = "FAILED: " + termsafe.String(lp.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  last pass\t%s %s, finished %s: %s; %d written, %d failed, %d not writable\n",
		lp.Command, kind, stamp(lp.Finished), result, lp.Summary.Written, lp.Summary.Failed, lp.Summary.NotWritable)
	fmt.Fprintf(tw, "  last good pass\t%s\n", stamp(s.LastGood))
	fmt.Fprintf(tw, "  last full pass\t%s\n", stamp(s.LastFull))
	fmt.Fprintf(tw, "  no usable certificate\t%d\n", len(s.NoUsable))
	fmt.Fprintf(tw, "  expiring within %d days\t%d\n", r.WithinDays, len(s.Expiring))
	fmt.Fprintf(tw, "  dropped values\t%d%s\n", len(s.Dropped), reasonCounts(s.DroppedByReason))
	fmt.Fprintf(tw, "  not published\t%d\n", len(s.NotPublished))
	if len(s.Departed) > 0 {
		fmt.Fprintf(tw, "  left the directory\t%d\n", len(s.Departed))
	}
	tw.Flush()
	switch {
	case s.Damaged > 0:
		fmt.Fprintf(w, "  note: %s of the report did not read and %s skipped; the lists miss those entries until a pass writes them again\n",
			plural(s.Damaged, "record"), map[bool]string{true: "was", false: "were"}[s.Damaged == 1])
	case !s.Complete:
		fmt.Fprintln(w, "  note: no full pass recorded yet; the lists cover only the entries read so far")
	}
	// list writes one list: its title, its header and a row per item,
	// every cell escaped.
	list := func(title, header string, n int, row func(i int) []string) {
		if n == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s (%d)\n", title, n)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  "+header)
		for i := range n {
			fmt.Fprintln(tw, "  "+strings.Join(termsafe.All(row(i)), "\t"))
		}
		tw.Flush()
	}
	list("No usable certificate", "USER\tWHY", len(s.NoUsable), func(i int) []string {
		u := s.NoUsable[i]
		return []string{u.User, u.Why}
	})
	list(fmt.Sprintf("Expiring within %d days", r.WithinDays), "USER\tEXPIRES\tLEFT\tATTRIBUTE\tSHA256", len(s.Expiring), func(i int) []string {
		x := s.Expiring[i]
		left := fmt.Sprintf("%d days", x.Days)
		switch {
		case x.Days == 1:
			left = "1 day"
		case x.NotAfter.Before(r.At):
			left = "EXPIRED"
		}
		return []string{x.User, stamp(x.NotAfter), left, x.Attribute, short(x.SHA256)}
	})
	list("Dropped values", "USER\tATTRIBUTE\tSHA256\tWHY", len(s.Dropped), func(i int) []string {
		d := s.Dropped[i]
		return []string{d.User, d.Attribute, short(d.SHA256), joinReasons(d.Reasons)}
	})
	list("Not published", "USER\tSTATUS\tWHY", len(s.NotPublished), func(i int) []string {
		n := s.NotPublished[i]
		return []string{n.User, n.Status, dash(n.Why)}
	})
	list("Left the directory with certificates published", "USER\tRECIPIENT\tSTATUS\tWHY", len(s.Departed), func(i int) []string {
		d := s.Departed[i]
		return []string{d.User, dash(d.Recipient), d.Status, dash(d.Why)}
	})
}

// WriteCSV writes the summary for a spreadsheet, as `smimesync report
// --csv` prints it: a header, then one row per finding (sink, section,
// the user's references, attribute, fingerprint, expiry, reasons,
// detail), sink by sink and section by section in the summary's order.
func (r *Summary) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"sink", "section", "user", "id", "dn", "source", "recipient",
		"attribute", "sha256", "not_after", "days_left", "reasons", "detail"})
	row := func(sink, section string, u UserRef, attr, sha, notAfter, days, reasons, detail string) {
		cw.Write(termsafe.All([]string{sink, section, u.User, u.ID, u.DN, u.Source, u.Recipient, attr, sha, notAfter, days, reasons, detail}))
	}
	for _, s := range r.Sinks {
		for _, u := range s.NoUsable {
			row(s.Sink, "no-usable-certificate", u.UserRef, "", "", "", "", "", u.Why)
		}
		for _, x := range s.Expiring {
			row(s.Sink, "expiring", x.UserRef, x.Attribute, x.SHA256.String(), x.NotAfter.Format(time.RFC3339),
				strconv.Itoa(x.Days), "", "")
		}
		for _, d := range s.Dropped {
			row(s.Sink, "dropped", d.UserRef, d.Attribute, d.SHA256.String(), "", "", joinReasons(d.Reasons),
				strings.Join(d.Notes, "; "))
		}
		for _, n := range s.NotPublished {
			row(s.Sink, "not-published", n.UserRef, "", "", "", "", n.Status, n.Why)
		}
		for _, d := range s.Departed {
			row(s.Sink, "departed", d.UserRef, "", "", "", "", d.Status, d.Why)
		}
	}
	cw.Flush()
	return cw.Error()
}

func joinReasons(rs []smimesync.Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, " ")
}

// reasonCounts is " (expired 2, over-limit 5)", or "" for none.
func reasonCounts(m map[smimesync.Reason]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", r, m[r]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// stamp formats a time for people, in UTC to the minute; "never" for zero.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// short is a fingerprint's first 16 hex digits: enough to find it.
func short(f smimesync.Fingerprint) string { return f.String()[:16] }

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
