package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smimesync/go-smimesync/internal/atomicfile"
	"github.com/smimesync/go-smimesync/smimesync"
)

// ReportConfig is the report key: where sync and run keep the report that
// `smimesync report` reads.
type ReportConfig struct {
	// Path of the report file (JSON). Default: next to the state file,
	// its name ending in .report.json (state.json gives
	// state.report.json). With neither set, no report is kept.
	Path string `yaml:"path"`
}

// reportVersion is the layout of the report file. Version 2 has
// snake_case keys and keeps a sink's own words for a read-only recipient in
// an entry's detail; decodeReport upgrades a version 1 file as it reads it
// (see upgradeReportV1).
const reportVersion = 2

// reportFormat is the type marker of a report file, its "format" member:
// the report writer replaces a file only when it is one of its reports
// (see decodeReport).
const reportFormat = "smimesync-report"

// defaultExpiryDays is how far ahead `smimesync report` looks for
// certificates that are about to expire.
const defaultExpiryDays = 30

// reportPath is where the report is kept; "" when nowhere.
func (c *Config) reportPath() string {
	if c.Report.Path != "" {
		return c.path(c.Report.Path)
	}
	if c.State.Path == "" {
		return ""
	}
	p := c.path(c.State.Path)
	return strings.TrimSuffix(p, filepath.Ext(p)) + ".report.json"
}

// savedReport is the report file: per sink, the last pass and the latest
// word on every directory entry the passes have seen. A delta pass reads
// only what changed, so each pass is merged into the file rather than
// replacing it; a full pass replaces a sink's entries whole.
type savedReport struct {
	// Format is reportFormat (absent from the files of earlier releases).
	Format  string       `json:"format"`
	Version int          `json:"version"`
	Updated time.Time    `json:"updated"`
	Sinks   []*sinkState `json:"sinks"`
}

// sinkState is one sink's part of the report file.
type sinkState struct {
	Sink string `json:"sink"`
	// LastPass is the last pass, good or not.
	LastPass passInfo `json:"last_pass"`
	// LastFull is when the last full pass was applied; run uses it to
	// schedule the next.
	LastFull time.Time `json:"last_full,omitzero"`
	// LastGood is when the last pass without errors finished.
	LastGood time.Time `json:"last_good,omitzero"`
	// Complete is true once a full read of the directory was merged:
	// Entries then covers every entry in scope.
	Complete bool `json:"complete"`
	// Entries holds the latest change for each directory entry.
	Entries []*entryState `json:"entries"`
}

// passInfo describes one pass.
type passInfo struct {
	// Command is sync or run.
	Command        string            `json:"command"`
	Full           bool              `json:"full"`
	Started        time.Time         `json:"started,omitzero"`
	Finished       time.Time         `json:"finished"`
	Summary        smimesync.Summary `json:"summary"`
	CookieAdvanced bool              `json:"cookie_advanced"`
	// Error is the pass's error, if any; Errors lists the report's.
	Error  string   `json:"error,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// entryState is what the report keeps of a Change.
type entryState struct {
	ID        string               `json:"id"`
	User      string               `json:"user"`
	DN        string               `json:"dn,omitempty"`
	Source    string               `json:"source,omitempty"`
	Recipient string               `json:"recipient,omitempty"`
	Action    smimesync.Action     `json:"action"`
	Reason    smimesync.SkipReason `json:"reason,omitempty"`
	Detail    string               `json:"detail,omitempty"`
	Outcome   smimesync.Outcome    `json:"outcome,omitempty"`
	Error     string               `json:"error,omitempty"`
	Keep      []smimesync.Value    `json:"keep"`
	Drop      []smimesync.Value    `json:"drop"`
	// Seen is when the pass that last read the entry finished.
	Seen time.Time `json:"seen"`
}

func (e *entryState) key() string { return e.Source + "\x00" + e.ID }

// errBadReport is wrapped by loadReport when the file exists but cannot be
// read.
var errBadReport = errors.New("report file cannot be read")

// errNotReport is wrapped (with errBadReport) by loadReport when the file
// is not a smimesync report at all: neither the marker nor the layout of
// an earlier release's report. Such a file is never renamed or replaced.
var errNotReport = errors.New("not a smimesync report file (no \"format\": \"" + reportFormat + "\" marker); it is left as it is")

// loadReport reads a report file. A missing file is an empty report.
func loadReport(path string) (*savedReport, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &savedReport{Format: reportFormat, Version: reportVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadReport, err)
	}
	r, err := decodeReport(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errBadReport, path, err)
	}
	return r, nil
}

// legacyReportMembers are the members of a report file written before
// the marker: all three, and nothing else, make one.
var legacyReportMembers = []string{"version", "updated", "sinks"}

// decodeReport reads a report file's bytes. A file that is not a JSON
// object with the reportFormat marker, nor exactly the layout of an
// earlier release's report, is errNotReport. A report of ours that cannot
// be read (another version, a damaged member) is another error.
func decodeReport(b []byte) (*savedReport, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil || members == nil {
		return nil, errNotReport
	}
	if f, ok := members["format"]; ok {
		var format string
		if json.Unmarshal(f, &format) != nil || format != reportFormat {
			return nil, errNotReport
		}
	} else {
		if len(members) != len(legacyReportMembers) {
			return nil, errNotReport
		}
		for _, k := range legacyReportMembers {
			if _, ok := members[k]; !ok {
				return nil, errNotReport
			}
		}
	}
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	if v.Version == 1 {
		var err error
		if b, err = upgradeReportV1(b); err != nil {
			return nil, fmt.Errorf("version 1: %w", err)
		}
	}
	r := new(savedReport)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, err
	}
	if r.Version != reportVersion {
		return nil, fmt.Errorf("version %d, this program reads version %d", r.Version, reportVersion)
	}
	r.Format = reportFormat
	return r, nil
}

// upgradeReportV1 rewrites a version 1 report file as version 2: every
// camelCase key becomes snake_case (lastPass is last_pass, keptValues is
// kept_values), and a skipped entry whose reason is not a skip code (a
// sink's words about a read-only recipient, which version 1 kept there)
// gets smimesync.SkipReadOnly as its reason and those words as its detail.
func upgradeReportV1(b []byte) ([]byte, error) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	doc = snakeKeys(doc)
	root, _ := doc.(map[string]any)
	root["version"] = 2
	sinks, _ := root["sinks"].([]any)
	for _, s := range sinks {
		sm, _ := s.(map[string]any)
		entries, _ := sm["entries"].([]any)
		for _, e := range entries {
			em, _ := e.(map[string]any)
			reason, _ := em["reason"].(string)
			if em["action"] == string(smimesync.ActionSkip) && reason != "" && !slices.Contains(v1SkipReasons, smimesync.SkipReason(reason)) {
				em["reason"], em["detail"] = string(smimesync.SkipReadOnly), reason
			}
		}
	}
	return json.Marshal(doc)
}

// v1SkipReasons are the skip codes a version 1 report can hold.
var v1SkipReasons = []smimesync.SkipReason{smimesync.SkipNoRecipient, smimesync.SkipDeleted,
	smimesync.SkipConflict, smimesync.SkipCurrentUnknown, smimesync.SkipError}

// snakeKeys returns v with the keys of every JSON object in it in
// snake_case. The values of a version 1 report's maps (reason codes) are
// lower-case already and stay as they are.
func snakeKeys(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[snakeCase(k)] = snakeKeys(x)
		}
		return out
	case []any:
		for i, x := range v {
			v[i] = snakeKeys(x)
		}
	}
	return v
}

// snakeCase is "lastPass" as "last_pass".
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if 'A' <= r && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sink returns the part of the report for sink, adding it if needed.
func (r *savedReport) sink(name string) *sinkState {
	for _, s := range r.Sinks {
		if s.Sink == name {
			return s
		}
	}
	s := &sinkState{Sink: name, Entries: []*entryState{}}
	r.Sinks = append(r.Sinks, s)
	return s
}

// fullPassDone reports whether a pass read the whole directory and applied
// what it found: only such a pass resets the full-pass schedule. A plan
// the guard stopped, or an apply cancelled, does not count; write failures
// do (the next delta retries them).
func fullPassDone(rep *smimesync.Report, err error) bool {
	return rep != nil && rep.Full && !rep.DryRun &&
		!errors.Is(err, smimesync.ErrGuardTripped) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// merge records one pass of a sink. rep is nil when planning failed.
func (s *sinkState) merge(command string, rep *smimesync.Report, passErr error, now time.Time) {
	s.LastPass = passInfo{Command: command, Finished: now}
	if passErr != nil {
		s.LastPass.Error = passErr.Error()
	}
	if rep == nil {
		return
	}
	s.LastPass.Full = rep.Full
	s.LastPass.Started = rep.Started
	s.LastPass.Finished = cmp.Or(rep.Finished, now)
	s.LastPass.Summary = rep.Summary
	s.LastPass.CookieAdvanced = rep.CookieAdvanced
	s.LastPass.Errors = rep.Errors
	if passErr == nil {
		s.LastGood = s.LastPass.Finished
	}
	if fullPassDone(rep, passErr) {
		s.LastFull = s.LastPass.Finished
	}

	byKey := make(map[string]*entryState, len(s.Entries))
	if !rep.Full {
		for _, e := range s.Entries {
			byKey[e.key()] = e
		}
	} else {
		// A full read names every entry in scope: what it does not name
		// is gone.
		s.Complete = true
	}
	for _, c := range rep.Changes {
		e := &entryState{
			ID: c.ID, User: c.User, DN: c.DN, Source: c.Source,
			Action: c.Action, Reason: c.Reason, Detail: c.Detail, Outcome: c.Outcome, Error: c.Error,
			Keep: c.Keep, Drop: c.Drop, Seen: s.LastPass.Finished,
		}
		if c.Recipient != nil {
			e.Recipient = cmp.Or(c.Recipient.Name, c.Recipient.ID)
		}
		if c.Action == smimesync.ActionSkip && c.Reason == smimesync.SkipDeleted {
			delete(byKey, e.key())
			continue
		}
		byKey[e.key()] = e
	}
	s.Entries = slices.SortedFunc(maps.Values(byKey), func(a, b *entryState) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
	})
}

// saveReport merges one pass of one sink into the report file, if the
// configuration keeps one. sync calls it after each Apply, run after each
// pass; rep is nil when planning failed, and a dry run's report is not
// saved (it wrote nothing). A report file that cannot be read is set
// aside as <path>.bad and started afresh: it only summarises what the
// passes saw, and the next full pass rebuilds it.
func (c *Config) saveReport(sink, command string, rep *smimesync.Report, passErr error, log *slog.Logger) error {
	path := c.reportPath()
	if path == "" || (rep != nil && rep.DryRun) {
		return nil
	}
	return updateReport(path, sink, command, rep, passErr, clock(), log)
}

func updateReport(path, sink, command string, rep *smimesync.Report, passErr error, now time.Time, log *slog.Logger) error {
	r, err := openReport(path, log)
	if err != nil {
		return err
	}
	r.Updated = now.UTC()
	r.sink(sink).merge(command, rep, passErr, now.UTC())
	return r.save(path)
}

// openReport loads the report file to update it. A report of ours that
// cannot be read (another version, a damaged member) is renamed to
// <path>.bad (and logged) and an empty report returned. Anything else at
// the path, a file that is not one of our reports (a state file, a
// configuration named by mistake), is an error wrapping errNotReport and
// is left untouched, as is an existing <path>.bad.
func openReport(path string, log *slog.Logger) (*savedReport, error) {
	r, err := loadReport(path)
	if err == nil {
		return r, nil
	}
	if errors.Is(err, errNotReport) {
		return nil, fmt.Errorf("report: %w", err)
	}
	if _, statErr := os.Stat(path); statErr != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	bad := path + ".bad"
	if _, lerr := os.Lstat(bad); !errors.Is(lerr, fs.ErrNotExist) {
		return nil, fmt.Errorf("report: %w; and it cannot be set aside: %s exists already (move it away)", err, bad)
	}
	if rerr := os.Rename(path, bad); rerr != nil {
		return nil, fmt.Errorf("report: %w; and setting it aside: %v", err, rerr)
	}
	if log != nil {
		log.Warn("report file set aside, starting a new one", "path", path, "as", bad, "err", err)
	}
	return &savedReport{Format: reportFormat, Version: reportVersion}, nil
}

// save writes the report file atomically.
func (r *savedReport) save(path string) error {
	r.Format = reportFormat
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("report: encoding: %w", err)
	}
	// The file may have changed since it was read (the service keeps the
	// report between passes): replace only a report.
	if err := checkReplaceable(path); err != nil {
		return err
	}
	// 0600: the report names people and their addresses.
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// reportHead is how every report file this program writes begins (save
// puts Format first).
var reportHead = []byte("{\n \"format\": \"" + reportFormat + "\",")

// checkReplaceable returns nil when path does not exist or holds one of
// our reports (cheaply, by its first bytes, for a file this program
// wrote; whole, for an earlier release's); else an error wrapping
// errNotReport.
func checkReplaceable(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	head := make([]byte, len(reportHead))
	if _, err := io.ReadFull(f, head); err == nil && bytes.Equal(head, reportHead) {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if _, err := decodeReport(b); errors.Is(err, errNotReport) {
		return fmt.Errorf("report: %w: %s: %w", errBadReport, path, err)
	}
	return nil
}

// cmdReport prints what the saved report says: who has no usable
// certificate, whose certificates expire soon, what was dropped and why,
// and who was not published.
func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("report", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	config := fl.String("config", "", "configuration file (YAML): read the report it names")
	file := fl.String("file", "", "report file to read, instead of --config")
	jsonOut := fl.Bool("json", false, "print JSON")
	csvOut := fl.Bool("csv", false, "print CSV, one row per finding")
	days := fl.Int("days", defaultExpiryDays, "list certificates that expire within this many days")
	if err := fl.Parse(args); err != nil {
		return usagef("report: %v", err)
	}
	switch {
	case fl.NArg() > 0:
		return usagef("report: unexpected arguments %v", fl.Args())
	case (*config == "") == (*file == ""):
		return usagef("report: give --config or --file (one of them)")
	case *jsonOut && *csvOut:
		return usagef("report: --json and --csv exclude each other")
	case *days < 0:
		return usagef("report: --days must not be negative")
	}
	path := *file
	if *config != "" {
		cfg, err := loadConfig(*config)
		if err != nil {
			return err
		}
		if path = cfg.reportPath(); path == "" {
			return usagef("report: %s sets neither report.path nor state.path: no report is kept", *config)
		}
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("report: %s does not exist yet: run `smimesync sync` or `smimesync run` first", path)
	}
	saved, err := loadReport(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	sum := summarizeReport(saved, path, clock(), *days)
	switch {
	case *jsonOut:
		return writeJSON(stdout, sum)
	case *csvOut:
		return writeReportCSV(stdout, sum)
	}
	printReportSummary(stdout, sum)
	return nil
}

// reportSummary is what `smimesync report` prints, and its JSON.
type reportSummary struct {
	File       string        `json:"file"`
	At         time.Time     `json:"at"`
	WithinDays int           `json:"within_days"`
	Sinks      []sinkSummary `json:"sinks"`
}

type sinkSummary struct {
	Sink     string    `json:"sink"`
	LastPass passInfo  `json:"last_pass"`
	LastFull time.Time `json:"last_full,omitzero"`
	LastGood time.Time `json:"last_good,omitzero"`
	// Complete is false until a full pass was recorded: until then the
	// lists cover only the entries the passes have seen.
	Complete        bool                     `json:"complete"`
	Users           int                      `json:"users"`
	NoUsable        []noUsable               `json:"no_usable"`
	Expiring        []expiring               `json:"expiring"`
	Dropped         []dropped                `json:"dropped"`
	DroppedByReason map[smimesync.Reason]int `json:"dropped_by_reason"`
	NotPublished    []notPublished           `json:"not_published"`
}

// userRef names a directory entry in the report's lists.
type userRef struct {
	User      string `json:"user"`
	ID        string `json:"id"`
	DN        string `json:"dn,omitempty"`
	Source    string `json:"source,omitempty"`
	Recipient string `json:"recipient,omitempty"`
}

type noUsable struct {
	userRef
	// Why is "no certificate in the directory" or "all dropped: …".
	Why string `json:"why"`
}

type expiring struct {
	userRef
	Attribute string                `json:"attribute"`
	SHA256    smimesync.Fingerprint `json:"sha256"`
	NotAfter  time.Time             `json:"not_after"`
	// Days left, rounded down; negative once expired (after the pass that
	// kept it).
	Days int `json:"days"`
}

type dropped struct {
	userRef
	Attribute string                `json:"attribute"`
	SHA256    smimesync.Fingerprint `json:"sha256"`
	Reasons   []smimesync.Reason    `json:"reasons"`
	Notes     []string              `json:"notes,omitempty"`
}

type notPublished struct {
	userRef
	// Status is the skip reason, or the write's outcome ("failed",
	// "not-writable", "not-written" when the pass stopped before it).
	// Why is the sink's words for a read-only recipient, else the error.
	Status string `json:"status"`
	Why    string `json:"why,omitempty"`
}

// summarizeReport turns the saved report into the lists people read.
func summarizeReport(r *savedReport, path string, now time.Time, withinDays int) *reportSummary {
	out := &reportSummary{File: path, At: now.UTC(), WithinDays: withinDays, Sinks: []sinkSummary{}}
	horizon := now.AddDate(0, 0, withinDays)
	for _, s := range r.Sinks {
		ss := sinkSummary{
			Sink: s.Sink, LastPass: s.LastPass, LastFull: s.LastFull, LastGood: s.LastGood,
			Complete: s.Complete, Users: len(s.Entries),
			NoUsable: []noUsable{}, Expiring: []expiring{}, Dropped: []dropped{},
			DroppedByReason: map[smimesync.Reason]int{}, NotPublished: []notPublished{},
		}
		for _, e := range s.Entries {
			ref := userRef{User: e.User, ID: e.ID, DN: e.DN, Source: e.Source, Recipient: e.Recipient}
			if len(e.Keep) == 0 {
				why := "no certificate in the directory"
				if len(e.Drop) > 0 {
					why = "all dropped: " + dropSummary(e.Drop)
				}
				ss.NoUsable = append(ss.NoUsable, noUsable{userRef: ref, Why: why})
			}
			for _, v := range e.Keep {
				if !v.NotAfter.IsZero() && v.NotAfter.Before(horizon) {
					ss.Expiring = append(ss.Expiring, expiring{userRef: ref, Attribute: v.Attribute, SHA256: v.SHA256,
						NotAfter: v.NotAfter.UTC(), Days: daysLeft(now, v.NotAfter)})
				}
			}
			for _, v := range e.Drop {
				ss.Dropped = append(ss.Dropped, dropped{userRef: ref, Attribute: v.Attribute, SHA256: v.SHA256,
					Reasons: v.Reasons, Notes: v.Notes})
				for _, why := range v.Reasons {
					ss.DroppedByReason[why]++
				}
			}
			if np, ok := unpublished(e); ok {
				np.userRef = ref
				ss.NotPublished = append(ss.NotPublished, np)
			}
		}
		slices.SortStableFunc(ss.Expiring, func(a, b expiring) int { return a.NotAfter.Compare(b.NotAfter) })
		out.Sinks = append(out.Sinks, ss)
	}
	return out
}

// unpublished says why an entry that had something to publish, or a
// write to make, did not get it there.
func unpublished(e *entryState) (notPublished, bool) {
	writes := e.Action == smimesync.ActionAdd || e.Action == smimesync.ActionReplace || e.Action == smimesync.ActionRemove
	switch {
	case writes && e.Outcome == smimesync.OutcomeWritten:
		return notPublished{}, false
	case writes && e.Outcome == "":
		return notPublished{Status: "not-written", Why: "the pass stopped before writing it (see the last pass's error)"}, true
	case writes:
		return notPublished{Status: string(e.Outcome), Why: e.Error}, true
	case e.Action == smimesync.ActionSkip && len(e.Keep) > 0:
		return notPublished{Status: string(e.Reason), Why: cmp.Or(e.Detail, e.Error)}, true
	case e.Action == smimesync.ActionSkip && e.Reason == smimesync.SkipError:
		return notPublished{Status: string(e.Reason), Why: e.Error}, true
	}
	return notPublished{}, false
}

// daysLeft is the whole days from now to t, rounded down.
func daysLeft(now, t time.Time) int {
	return int(math.Floor(t.Sub(now).Hours() / 24))
}

// printReportSummary prints the summary a person reads at a glance, then
// the lists.
func printReportSummary(w io.Writer, r *reportSummary) {
	fmt.Fprintf(w, "smimesync report from %s, as of %s\n", termSafe(r.File), stamp(r.At))
	for _, s := range r.Sinks {
		fmt.Fprintf(w, "\nSink %q: %s\n", termSafe(s.Sink), plural(s.Users, "user"))
		lp := s.LastPass
		kind := "delta"
		if lp.Full {
			kind = "full"
		}
		result := "ok"
		if lp.Error != "" {
			result = "FAILED: " + termSafe(lp.Error)
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
		tw.Flush()
		if !s.Complete {
			fmt.Fprintln(w, "  note: no full pass recorded yet; the lists cover only the entries read so far")
		}

		if len(s.NoUsable) > 0 {
			fmt.Fprintf(w, "\nNo usable certificate (%d)\n", len(s.NoUsable))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  USER\tWHY")
			for _, u := range s.NoUsable {
				fmt.Fprintf(tw, "  %s\t%s\n", termSafe(u.User), termSafe(u.Why))
			}
			tw.Flush()
		}
		if len(s.Expiring) > 0 {
			fmt.Fprintf(w, "\nExpiring within %d days (%d)\n", r.WithinDays, len(s.Expiring))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  USER\tEXPIRES\tLEFT\tATTRIBUTE\tSHA256")
			for _, x := range s.Expiring {
				left := fmt.Sprintf("%d days", x.Days)
				switch {
				case x.Days == 1:
					left = "1 day"
				case x.NotAfter.Before(r.At):
					left = "EXPIRED"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", termSafe(x.User), stamp(x.NotAfter), left, termSafe(x.Attribute), short(x.SHA256))
			}
			tw.Flush()
		}
		if len(s.Dropped) > 0 {
			fmt.Fprintf(w, "\nDropped values (%d)\n", len(s.Dropped))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  USER\tATTRIBUTE\tSHA256\tWHY")
			for _, d := range s.Dropped {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", termSafe(d.User), termSafe(d.Attribute), short(d.SHA256), termSafe(joinReasons(d.Reasons)))
			}
			tw.Flush()
		}
		if len(s.NotPublished) > 0 {
			fmt.Fprintf(w, "\nNot published (%d)\n", len(s.NotPublished))
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  USER\tSTATUS\tWHY")
			for _, n := range s.NotPublished {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", termSafe(n.User), termSafe(n.Status), termSafe(dash(n.Why)))
			}
			tw.Flush()
		}
	}
}

// writeReportCSV prints one row per finding, for a spreadsheet. Its
// cells go through termSafe too: CSV is often read on a terminal, and
// encoding/csv quotes a control character but does not escape it.
func writeReportCSV(w io.Writer, r *reportSummary) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"sink", "section", "user", "id", "dn", "source", "recipient",
		"attribute", "sha256", "not_after", "days_left", "reasons", "detail"})
	row := func(sink, section string, u userRef, attr, sha, notAfter, days, reasons, detail string) {
		cw.Write(termSafeAll([]string{sink, section, u.User, u.ID, u.DN, u.Source, u.Recipient, attr, sha, notAfter, days, reasons, detail}))
	}
	for _, s := range r.Sinks {
		for _, u := range s.NoUsable {
			row(s.Sink, "no-usable-certificate", u.userRef, "", "", "", "", "", u.Why)
		}
		for _, x := range s.Expiring {
			row(s.Sink, "expiring", x.userRef, x.Attribute, x.SHA256.String(), x.NotAfter.Format(time.RFC3339),
				strconv.Itoa(x.Days), "", "")
		}
		for _, d := range s.Dropped {
			row(s.Sink, "dropped", d.userRef, d.Attribute, d.SHA256.String(), "", "", joinReasons(d.Reasons),
				strings.Join(d.Notes, "; "))
		}
		for _, n := range s.NotPublished {
			row(s.Sink, "not-published", n.userRef, "", "", "", "", n.Status, n.Why)
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
