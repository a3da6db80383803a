// Package report keeps the report of a sync program: per sink, the last
// pass and the latest word on every directory entry the passes have seen
// (a delta pass reads only what changed, so passes are merged, and a full
// pass replaces a sink's entries whole), in an embedded transactional
// store ([Store]: a bbolt file, one record per entry per sink, a small
// header per sink and an index of the entries by the expiry of their last
// kept certificate). [Store.Record] merges a pass at the cost of what it
// changed, in bounded transactions; [Store.Summarize] turns the report
// into what people read (who has no usable certificate, whose
// certificates expire soon, what was dropped and why, who was not
// published), reading it through a cursor; [Store.RecipientsExpiring]
// counts from the index. The store is opened for each merge and each
// read, never held between them, so that `smimesync report` reads while
// `smimesync run` runs.
//
// Earlier releases kept the report as one JSON file ([File], [Version] 2,
// snake_case keys; version 1 is upgraded as it is read): [OpenOptions]
// imports one once and keeps it as a backup. A file at the path that is
// not a report is never replaced ([ErrNotReport]). [Load] and [Summarize]
// read a whole report into memory: a convenience for small reports and
// tests.
//
// It also writes what a sync program shows people, as `smimesync` prints
// it, with text from the directory or the cloud escaped for a terminal: a
// plan ([WritePlan]), what a sync did ([WriteSync]), the summary as text
// or CSV ([Summary.WriteText], [Summary.WriteCSV]), and a status line
// while Syncers run ([Progress]).
package report

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// Version is the layout of the JSON report file of earlier releases,
// which OpenOptions imports and Load reads. Version 2 has
// snake_case keys and keeps a sink's own words for a read-only recipient in
// an entry's detail; decode upgrades a version 1 file as it reads it
// (see upgradeV1).
const Version = 2

// Format is the type marker of a JSON report file, its "format" member:
// OpenOptions converts or imports a file only when it is one of our
// reports (see decode).
const Format = "smimesync-report"

// File is a whole report in memory (Load, Store.Load), and the layout of
// the JSON report file of earlier releases: per sink, the last pass and
// the latest word on every directory entry the passes have seen.
type File struct {
	// Format is the Format marker (absent from the files of earlier releases).
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Updated time.Time `json:"updated"`
	Sinks   []*Sink   `json:"sinks"`
}

// Sink is one sink's part of a [File].
type Sink struct {
	Sink string `json:"sink"`
	// LastPass is the last pass, good or not.
	LastPass Pass `json:"last_pass"`
	// LastFull is when the last full pass was applied whole (for people:
	// a service schedules from smimesync.Snapshot.LastFull).
	LastFull time.Time `json:"last_full,omitzero"`
	// LastGood is when the last pass without errors finished.
	LastGood time.Time `json:"last_good,omitzero"`
	// Complete is true once a full read of the directory was merged:
	// Entries then covers every entry in scope.
	Complete bool `json:"complete"`
	// Entries holds the latest change for each directory entry.
	Entries []*Entry `json:"entries"`
}

// Pass describes one pass.
type Pass struct {
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

// Entry is what the report keeps of a Change.
type Entry struct {
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
	// Unjudged is true when the last pass took the entry on trust from
	// its memo (smimesync.Change.Memoized) and no earlier pass's word on
	// its values was at hand: Keep and Drop then say nothing (the entry is
	// not counted as having no usable certificate). When an earlier word
	// was at hand, Keep and Drop are that word's.
	Unjudged bool `json:"unjudged,omitempty"`
	// Seen is when the pass that last read the entry finished. (A store
	// does not rewrite the entries a full pass found unchanged: its
	// header notes when that pass finished, and Seen reads as the later
	// of the record's own and that.)
	Seen time.Time `json:"seen"`
}

// ErrBadReport is wrapped by Load, OpenOptions and a Store's reads when
// the report exists but cannot be read.
var ErrBadReport = errors.New("report file cannot be read")

// ErrNotReport is wrapped (with ErrBadReport) when the file is not a
// smimesync report at all: not a report store (a bbolt file with the
// StoreFormat marker), nor a JSON report (the Format marker, or the
// layout of an earlier release's report). Such a file is never renamed or
// replaced.
var ErrNotReport = errors.New("not a smimesync report (neither a report store nor a JSON report with the \"format\": \"" + Format + "\" marker); it is left as it is")

// Load reads a whole report into memory: a report store, or a JSON
// report of an earlier release. A missing file is an empty report. It is a
// convenience for small reports and tests: a program that reads a large
// report goes through a Store (Summarize, Search), which holds only what
// it lists.
func Load(path string) (*File, error) {
	bolted, err := isBolt(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &File{Format: Format, Version: Version}, nil
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrBadReport, err)
	case bolted:
		return (&Store{path: path, log: slog.New(slog.DiscardHandler)}).Load()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReport, err)
	}
	r, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadReport, path, err)
	}
	return r, nil
}

// legacyMembers are the members of a report file written before
// the marker: all three, and nothing else, make one.
var legacyMembers = []string{"version", "updated", "sinks"}

// decode reads a report file's bytes. A file that is not a JSON
// object with the Format marker, nor exactly the layout of an
// earlier release's report, is ErrNotReport. A report of ours that cannot
// be read (another version, a damaged member) is another error.
func decode(b []byte) (*File, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil || members == nil {
		return nil, ErrNotReport
	}
	if f, ok := members["format"]; ok {
		var format string
		if json.Unmarshal(f, &format) != nil || format != Format {
			return nil, ErrNotReport
		}
	} else {
		if len(members) != len(legacyMembers) {
			return nil, ErrNotReport
		}
		for _, k := range legacyMembers {
			if _, ok := members[k]; !ok {
				return nil, ErrNotReport
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
		if b, err = upgradeV1(b); err != nil {
			return nil, fmt.Errorf("version 1: %w", err)
		}
	}
	r := new(File)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, err
	}
	if r.Version != Version {
		return nil, fmt.Errorf("version %d, this program reads version %d", r.Version, Version)
	}
	r.Format = Format
	return r, nil
}

// upgradeV1 rewrites a version 1 report file as version 2: every
// camelCase key becomes snake_case (lastPass is last_pass, keptValues is
// kept_values), and a skipped entry whose reason is not a skip code (a
// sink's words about a read-only recipient, which version 1 kept there)
// gets smimesync.SkipReadOnly as its reason and those words as its detail.
func upgradeV1(b []byte) ([]byte, error) {
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

// Summary is what people read of a report (`smimesync report` prints it,
// and its JSON): see Store.Summarize and Summarize.
type Summary struct {
	File       string        `json:"file"`
	At         time.Time     `json:"at"`
	WithinDays int           `json:"within_days"`
	Sinks      []SinkSummary `json:"sinks"`
}

// SinkSummary is one sink's part of a [Summary].
type SinkSummary struct {
	Sink     string    `json:"sink"`
	LastPass Pass      `json:"last_pass"`
	LastFull time.Time `json:"last_full,omitzero"`
	LastGood time.Time `json:"last_good,omitzero"`
	// Complete is false until a full pass was recorded: until then the
	// lists cover only the entries the passes have seen. It is false
	// too while Damaged records are skipped.
	Complete bool `json:"complete"`
	// Damaged counts the records of the report store that did not read
	// and were skipped (logged; the entry's next row replaces its record).
	Damaged         int                      `json:"damaged,omitempty"`
	Users           int                      `json:"users"`
	NoUsable        []NoUsable               `json:"no_usable"`
	Expiring        []Expiring               `json:"expiring"`
	Dropped         []Dropped                `json:"dropped"`
	DroppedByReason map[smimesync.Reason]int `json:"dropped_by_reason"`
	NotPublished    []NotPublished           `json:"not_published"`
	// Departed lists the entries that left the directory while values
	// smimesync published stayed on their recipient (not counted in
	// Users, nor in the other lists).
	Departed []Departed `json:"departed"`
}

// UserRef names a directory entry in the report's lists.
type UserRef struct {
	User      string `json:"user"`
	ID        string `json:"id"`
	DN        string `json:"dn,omitempty"`
	Source    string `json:"source,omitempty"`
	Recipient string `json:"recipient,omitempty"`
}

// NoUsable is an entry with no certificate the policy keeps.
type NoUsable struct {
	UserRef
	// Why is "no certificate in the directory" or "all dropped: …".
	Why string `json:"why"`
}

// Expiring is a kept certificate that expires within the summary's days.
type Expiring struct {
	UserRef
	Attribute string                `json:"attribute"`
	SHA256    smimesync.Fingerprint `json:"sha256"`
	NotAfter  time.Time             `json:"not_after"`
	// Days left, rounded down; negative once expired (after the pass that
	// kept it).
	Days int `json:"days"`
}

// Dropped is a value the policy dropped, and why.
type Dropped struct {
	UserRef
	Attribute string                `json:"attribute"`
	SHA256    smimesync.Fingerprint `json:"sha256"`
	Reasons   []smimesync.Reason    `json:"reasons"`
	Notes     []string              `json:"notes,omitempty"`
}

// NotPublished is an entry whose certificates did not reach its recipient.
type NotPublished struct {
	UserRef
	// Status is the skip reason, or the write's outcome ("failed",
	// "not-writable", "not-written" when the pass stopped before it).
	// Why is the sink's words for a read-only recipient, else the error.
	Status string `json:"status"`
	Why    string `json:"why,omitempty"`
}

// Departed is an entry that left the directory (deleted, or out of
// scope) with values smimesync published on its recipient: see
// smimesync.SkipDeparted.
type Departed struct {
	UserRef
	// Status is "left-published" (nothing was removed: Why says why,
	// else removal is off), "removed" (the published values were taken
	// away), or the removal's outcome when it did not go through
	// ("failed", "not-writable", "not-written" when the pass stopped
	// before it).
	Status string `json:"status"`
	Why    string `json:"why,omitempty"`
}

// departed says what became of an entry that left the directory, and
// whether e is one.
func departed(e *Entry) (Departed, bool) {
	switch {
	case e.Action == smimesync.ActionSkip && e.Reason == smimesync.SkipDeparted:
		st := "left-published"
		if e.Outcome != "" {
			st = string(e.Outcome)
		}
		return Departed{Status: st, Why: cmp.Or(e.Error, e.Detail)}, true
	case e.Action == smimesync.ActionDepart && e.Outcome == smimesync.OutcomeWritten:
		return Departed{Status: "removed"}, true
	case e.Action == smimesync.ActionDepart && e.Outcome == "":
		return Departed{Status: "not-written", Why: "the pass stopped before removing it (see the last pass's error)"}, true
	case e.Action == smimesync.ActionDepart:
		return Departed{Status: string(e.Outcome), Why: e.Error}, true
	}
	return Departed{}, false
}

// Summarize turns a report held in memory into the lists people read
// (Store.Summarize reads a store the same way, through a cursor).
func Summarize(r *File, path string, now time.Time, withinDays int) *Summary {
	out := &Summary{File: path, At: now.UTC(), WithinDays: withinDays, Sinks: []SinkSummary{}}
	for _, s := range r.Sinks {
		ss := newSinkSummary(s.Sink, header{LastPass: s.LastPass, LastFull: s.LastFull, LastGood: s.LastGood, Complete: s.Complete})
		for _, e := range s.Entries {
			ss.add(e, now, withinDays)
		}
		ss.finish()
		out.Sinks = append(out.Sinks, ss)
	}
	return out
}

// newSinkSummary is the summary of a sink with header h and no entries
// yet: add them, then finish.
func newSinkSummary(name string, h header) SinkSummary {
	return SinkSummary{
		Sink: name, LastPass: h.LastPass, LastFull: h.LastFull, LastGood: h.LastGood, Complete: h.Complete,
		NoUsable: []NoUsable{}, Expiring: []Expiring{}, Dropped: []Dropped{},
		DroppedByReason: map[smimesync.Reason]int{}, NotPublished: []NotPublished{}, Departed: []Departed{},
	}
}

// add counts e, and lists what there is to list of it.
func (ss *SinkSummary) add(e *Entry, now time.Time, withinDays int) {
	horizon := now.AddDate(0, 0, withinDays)
	ref := UserRef{User: e.User, ID: e.ID, DN: e.DN, Source: e.Source, Recipient: e.Recipient}
	if d, ok := departed(e); ok {
		d.UserRef = ref
		ss.Departed = append(ss.Departed, d)
		return
	}
	ss.Users++
	if len(e.Keep) == 0 && !e.Unjudged {
		why := "no certificate in the directory"
		if len(e.Drop) > 0 {
			why = "all dropped: " + DropSummary(e.Drop)
		}
		ss.NoUsable = append(ss.NoUsable, NoUsable{UserRef: ref, Why: why})
	}
	for _, v := range e.Keep {
		if !v.NotAfter.IsZero() && v.NotAfter.Before(horizon) {
			ss.Expiring = append(ss.Expiring, Expiring{UserRef: ref, Attribute: v.Attribute, SHA256: v.SHA256,
				NotAfter: v.NotAfter.UTC(), Days: daysLeft(now, v.NotAfter)})
		}
	}
	for _, v := range e.Drop {
		ss.Dropped = append(ss.Dropped, Dropped{UserRef: ref, Attribute: v.Attribute, SHA256: v.SHA256,
			Reasons: v.Reasons, Notes: v.Notes})
		for _, why := range v.Reasons {
			ss.DroppedByReason[why]++
		}
	}
	if np, ok := unpublished(e); ok {
		np.UserRef = ref
		ss.NotPublished = append(ss.NotPublished, np)
	}
}

// finish puts the lists in the report's order: by user, then source, then
// ID (an entry's own items as they came), and the expiring certificates
// by expiry (in that order when they expire at once). A store is read in
// the order of its keys, not of its users: sorting what is listed keeps
// the output what it was when the report was a sorted JSON file.
func (ss *SinkSummary) finish() {
	sortRefs(ss.NoUsable, func(x NoUsable) UserRef { return x.UserRef })
	sortRefs(ss.Expiring, func(x Expiring) UserRef { return x.UserRef })
	sortRefs(ss.Dropped, func(x Dropped) UserRef { return x.UserRef })
	sortRefs(ss.NotPublished, func(x NotPublished) UserRef { return x.UserRef })
	sortRefs(ss.Departed, func(x Departed) UserRef { return x.UserRef })
	slices.SortStableFunc(ss.Expiring, func(a, b Expiring) int { return a.NotAfter.Compare(b.NotAfter) })
}

// compareRefs orders entries as the report lists them: by user, then
// source, then ID.
func compareRefs(a, b UserRef) int {
	return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
}

func sortRefs[T any](s []T, ref func(T) UserRef) {
	slices.SortStableFunc(s, func(a, b T) int { return compareRefs(ref(a), ref(b)) })
}

// unpublished says why an entry that had something to publish, or a
// write to make, did not get it there.
func unpublished(e *Entry) (NotPublished, bool) {
	writes := e.Action == smimesync.ActionAdd || e.Action == smimesync.ActionReplace || e.Action == smimesync.ActionRemove
	switch {
	case writes && e.Outcome == smimesync.OutcomeWritten:
		return NotPublished{}, false
	case writes && e.Outcome == "":
		return NotPublished{Status: "not-written", Why: "the pass stopped before writing it (see the last pass's error)"}, true
	case writes:
		return NotPublished{Status: string(e.Outcome), Why: e.Error}, true
	case e.Action == smimesync.ActionSkip && len(e.Keep) > 0:
		return NotPublished{Status: string(e.Reason), Why: cmp.Or(e.Detail, e.Error)}, true
	case e.Action == smimesync.ActionSkip && e.Reason == smimesync.SkipError:
		return NotPublished{Status: string(e.Reason), Why: e.Error}, true
	}
	return NotPublished{}, false
}

// daysLeft is the whole days from now to t, rounded down.
func daysLeft(now, t time.Time) int {
	return int(math.Floor(t.Sub(now).Hours() / 24))
}

// DropSummary counts values' drop reasons for people: "expired ×2,
// over-limit ×5", one reason plain, sorted by reason.
func DropSummary(vs []smimesync.Value) string {
	n := map[smimesync.Reason]int{}
	for _, v := range vs {
		for _, r := range v.Reasons {
			n[r]++
		}
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(n)) {
		if n[r] == 1 {
			parts = append(parts, string(r))
		} else {
			parts = append(parts, fmt.Sprintf("%s ×%d", r, n[r]))
		}
	}
	return strings.Join(parts, ", ")
}
