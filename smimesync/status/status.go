// Package status is the operator's view of a sync service: one HTML page
// per service, served on GET / of the service's listener
// ([service.Service.Status]) and written as one self-contained file by
// [WriteFile] (`smimesync report --html`).
//
// Per sink it shows the last passes (kind, result, duration, writes), the
// users with and without a usable certificate, the values dropped by
// reason, the errors of the last pass as short codes and counts, the
// users whose certificates expire within 30 days, and a chart of how many
// users lose their last usable certificate in each of the next 52 weeks.
// A search (/?q=bob) shows, for each matching user, what the directory
// holds (every value with its subject, issuer, expiry and fingerprint),
// what the policy kept or dropped and why, whether it was published, and
// what smimesync last wrote to the user's recipient: the "why can't I
// encrypt to Bob?" page.
//
// It reads the report store (package smimesync/report), the service's
// health and the passes it is told of ([Status.Record]), and, for the
// search, what each sink's State says was published. It never calls the
// directory or the cloud: the page is read-only and answers at once.
//
// The page is rendered by html/template (the directory's data is the
// attacker's to choose: every name, DN and subject is escaped), has no
// script, and loads nothing: its style sheet and its chart are inline, so
// that it works on a server with no internet, and it is sent with a
// Content-Security-Policy that forbids anything else. The chart is SVG
// written here (see chart.go for why no chart library).
//
// Like /healthz, the page shows an error of a pass as its short code
// ([service.Code]) and counts, never its text: that names hosts, accounts
// and addresses. It does name people, their addresses and certificates: a
// listener that is not on loopback should sit behind an authenticating
// proxy.
package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// Defaults of a [Status].
const (
	// DefaultRecent is how many recent passes per sink the page lists.
	DefaultRecent = 10
	// DefaultRefresh is how often the page reloads itself.
	DefaultRefresh = 60 * time.Second
	// ExpiryDays is how far ahead the page lists expiring certificates.
	ExpiryDays = 30
	// MaxResults bounds the users a search shows.
	MaxResults = 50
	// MaxRows bounds each list of a sink (expiring, without a usable
	// certificate); the page says how many more there are.
	MaxRows = 100
	// MaxQuery bounds a search's length, in bytes.
	MaxQuery = 256
)

// PublishedFunc returns what smimesync last wrote to sink's recipients,
// keyed by [smimesync.PublishedKey] (a State's [smimesync.Snapshot]
// Published). See [StatePublished].
type PublishedFunc func(ctx context.Context, sink string) (map[string]smimesync.Published, error)

// StatePublished reads each Syncer's State (a Syncer without one has
// nothing the page can read).
func StatePublished(syncers []service.Named) PublishedFunc {
	return func(ctx context.Context, sink string) (map[string]smimesync.Published, error) {
		for _, n := range syncers {
			if n.Name != sink || n.Syncer == nil || n.State == nil {
				continue
			}
			snap, err := n.State.Load(ctx)
			if err != nil {
				return nil, err
			}
			return snap.Published, nil
		}
		return nil, nil
	}
}

// Status is the status page of a service. Its zero value serves a page
// with no sinks; give it the Service, the report Store, or both. Record
// every pass through it (from the Service's OnPass hook): it keeps the
// recent passes, and it records the pass in the report Store under the
// lock the page reads it with, so that a page shows a pass's report whole
// or not at all. Its Handler may be served while passes run. [Status.Attach] does
// all of that for a Service in one call.
type Status struct {
	// Service, when not nil, gives the page its health (Service.Health)
	// and the order of its sinks.
	Service *service.Service
	// Report, when not nil, is the report store the page reads and
	// Record writes. Other processes may read the store meanwhile
	// (`smimesync report`): it is opened only for each read and write.
	Report *report.Store
	// Published, when not nil, says what each sink's recipients carry, as
	// far as smimesync wrote it (see StatePublished), for the search.
	Published PublishedFunc
	// Recent is how many passes per sink the page lists (0:
	// DefaultRecent).
	Recent int
	// Refresh is how often the page reloads itself (0: DefaultRefresh).
	Refresh time.Duration
	// Command names the program in the report ("run" when empty).
	Command string
	// Logger receives the errors of reading the state for a search; nil
	// discards them.
	Logger *slog.Logger
	// Now is the page's clock; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	passes map[string][]Pass
	order  []string
}

// Pass is what the page keeps of a pass: a PassResult without its report
// (a full pass's report holds every entry) and without the error's text.
type Pass struct {
	Sink     string         `json:"sink"`
	Kind     service.Kind   `json:"kind"`
	Result   service.Result `json:"result"`
	Code     service.Code   `json:"code,omitempty"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	// Summary is the pass's report's counts (zero when planning failed).
	Summary smimesync.Summary `json:"summary"`
	// Problems counts the changes that did not go through, by outcome
	// ("failed", "not-writable") or skip reason ("skip:no-recipient").
	Problems []Count `json:"problems,omitempty"`
	// FromReport is true for a pass the page knows only from the report
	// file (before the service's first pass, and in WriteFile): it has
	// no code, only whether it failed.
	FromReport bool `json:"from_report,omitempty"`
	// Failed is true when the pass ended with an error.
	Failed bool `json:"failed,omitempty"`
}

// Duration is how long the pass took.
func (p Pass) Duration() time.Duration { return p.Finished.Sub(p.Started) }

// Count is one row of a breakdown: a code, a reason or an outcome.
type Count struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

func (s *Status) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Status) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Status) recent() int {
	if s.Recent > 0 {
		return s.Recent
	}
	return DefaultRecent
}

// Record keeps the pass for the page and, when Report is set and the pass
// was not abandoned, merges it into the report store
// (report.Store.Record); it returns the store's error. Call it from the
// Service's OnPass hook.
func (s *Status) Record(r service.PassResult) error {
	p := passOf(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.passes == nil {
		s.passes = map[string][]Pass{}
	}
	if _, ok := s.passes[r.Sink]; !ok {
		s.order = append(s.order, r.Sink)
	}
	if !r.Abandoned {
		ring := append(s.passes[r.Sink], p)
		if n := s.recent(); len(ring) > n {
			ring = slices.Clone(ring[len(ring)-n:])
		}
		s.passes[r.Sink] = ring
	}
	if s.Report == nil || r.Abandoned {
		return nil
	}
	return s.Report.Record(r.Sink, cmp.Or(s.Command, "run"), r.Report, r.Err, r.Finished)
}

// Flush writes what the passes left in the report store
// (report.Store.Flush), under the page's lock.
func (s *Status) Flush() error {
	if s.Report == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Report.Flush()
}

// RecipientsExpiring is report.Store.RecipientsExpiring under the page's
// lock (0 without a Report), for metrics.Metrics.SetExpiring.
func (s *Status) RecipientsExpiring(sink string, horizon time.Time) int {
	if s.Report == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Report.RecipientsExpiring(sink, horizon)
}

// Passes returns the recent passes of sink, the newest first.
func (s *Status) Passes(sink string) []Pass {
	s.mu.Lock()
	defer s.mu.Unlock()
	return reversed(s.passes[sink])
}

func reversed(ps []Pass) []Pass {
	out := slices.Clone(ps)
	slices.Reverse(out)
	return out
}

// passOf is what the page keeps of r.
func passOf(r service.PassResult) Pass {
	p := Pass{Sink: r.Sink, Kind: r.Kind, Result: r.Result, Code: r.Code, Started: r.Started, Finished: r.Finished,
		Failed: r.Err != nil}
	if r.Report != nil {
		p.Summary = r.Report.Summary
		n := map[string]int{}
		for c, err := range r.Report.Rows() {
			if err != nil {
				n["unreadable report"]++
				break
			}
			switch {
			case c.Outcome == smimesync.OutcomeFailed || c.Outcome == smimesync.OutcomeNotWritable:
				n[string(c.Outcome)]++
			case c.Action == smimesync.ActionSkip && c.Reason != smimesync.SkipDeleted:
				n["skip:"+string(c.Reason)]++
			}
		}
		p.Problems = counts(n)
	}
	return p
}

// counts is m as rows, the largest first.
func counts(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{k, v})
	}
	slices.SortFunc(out, func(a, b Count) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Key, b.Key)) })
	return out
}

// passFromReport is the report's last pass of a sink, for a page
// that saw no pass of it.
func passFromReport(sink string, lp report.Pass) Pass {
	kind := service.KindDelta
	if lp.Full {
		kind = service.KindFull
	}
	result := service.ResultOK
	if lp.Error != "" {
		result = service.ResultError
	}
	started := lp.Started
	if started.IsZero() {
		started = lp.Finished
	}
	return Pass{Sink: sink, Kind: kind, Result: result, Started: started, Finished: lp.Finished,
		Summary: lp.Summary, FromReport: true, Failed: lp.Error != ""}
}

// Handler serves the page on GET and HEAD (any other method is 405). The
// query's q searches the users (see Page.Query).
func (s *Status) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the status page is read-only", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query().Get("q")
		if len(q) > MaxQuery {
			http.Error(w, fmt.Sprintf("the search is longer than %d bytes", MaxQuery), http.StatusRequestURITooLong)
			return
		}
		page := s.Page(r.Context(), q)
		setHeaders(w.Header())
		w.Header().Set("Cache-Control", "no-store")
		if err := render(w, page); err != nil {
			s.log().Error("status page", "err", err)
			http.Error(w, "the status page cannot be rendered (see the log)", http.StatusInternalServerError)
		}
	})
}

// contentSecurityPolicy allows the page's inline style and nothing else:
// no script, no image, no font, no frame, no other origin.
const contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func setHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// Page is what the page shows; Handler and WriteFile render it. It is
// exported for callers that render it their own way (a JSON API, a test).
type Page struct {
	// Title heads the page.
	Title string
	// At is when the page was made.
	At time.Time
	// Live is true for the served page, false for WriteFile's.
	Live bool
	// Refresh is the reload interval in seconds (0: none).
	Refresh int
	// ReportFile names the report store WriteFile read ("" when served).
	ReportFile string
	// ReportNote says why the page shows no report, when the report
	// store could not be read (the error, which names its path, is
	// logged).
	ReportNote string
	// Health is the service's health (nil for WriteFile's page).
	Health *service.Health
	// ExpiryDays: the Expiring lists cover this many days.
	ExpiryDays int
	// Query is the search (trimmed), Results its matches (at most
	// MaxResults; More says how many more matched). TenantNote says why
	// the search cannot show what the recipients carry, when it cannot.
	Query      string
	Results    []UserResult
	More       int
	TenantNote string
	// Sinks are the sinks, in the service's order.
	Sinks []SinkView
}

// SinkView is one sink's part of a [Page].
type SinkView struct {
	Name   string
	Health *service.SinkHealth
	// Passes are the recent passes, the newest first.
	Passes   []Pass
	LastFull time.Time
	LastGood time.Time
	// Complete is false until a full pass was recorded: the numbers
	// then cover only the entries the passes have seen.
	Complete bool
	// HasReport is false when the report store knows nothing of the sink.
	HasReport bool
	Users     int
	// WithUsable and WithoutUsable count the users with and without a
	// certificate the policy keeps.
	WithUsable, WithoutUsable int
	DroppedValues             int
	DroppedByReason           []Count
	NotPublished              int
	// LastErrors are the errors of the last pass: its code, and its
	// changes that did not go through.
	LastErrors []Count
	// LastFailed is true when the last pass ended with an error.
	LastFailed   bool
	Expiring     []report.Expiring
	ExpiringMore int
	NoUsable     []report.NoUsable
	NoUsableMore int
	Chart        Chart
}

// Page builds the page now, with the search q (an empty q searches
// nothing).
func (s *Status) Page(ctx context.Context, q string) *Page {
	now := s.now()
	p := &Page{Title: "smimesync status", At: now.UTC(), Live: true, ExpiryDays: ExpiryDays,
		Refresh: int(cmp.Or(s.Refresh, DefaultRefresh) / time.Second)}
	var names []string
	healthOf := map[string]*service.SinkHealth{}
	if s.Service != nil {
		h := s.Service.Health()
		p.Health = &h
		for i := range h.Sinks {
			names = append(names, h.Sinks[i].Sink)
			healthOf[h.Sinks[i].Sink] = &h.Sinks[i]
		}
	}

	s.mu.Lock()
	for _, n := range s.order {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	var sum *report.Summary
	if s.Report != nil {
		var err error
		if sum, err = s.Report.Summarize("", now, ExpiryDays); err != nil {
			// The error names the report's path: logged, not shown.
			s.log().Error("status page: reading the report", "err", err)
			p.ReportNote = "The report cannot be read (see the log)."
		}
	}
	if sum != nil {
		for _, ss := range sum.Sinks {
			if !slices.Contains(names, ss.Sink) {
				names = append(names, ss.Sink)
			}
		}
	}
	for _, n := range names {
		v := SinkView{Name: n, Health: healthOf[n], Passes: reversed(s.passes[n])}
		fillSink(&v, s.Report, sum, now, func(err error) {
			s.log().Error("status page: reading the report's expiries", "sink", n, "err", err)
		})
		p.Sinks = append(p.Sinks, v)
	}
	var matches []match
	p.Query, matches, p.More = search(s.Report, q, s.log())
	s.mu.Unlock()

	// The state is read outside the lock: a pass may record meanwhile.
	p.Results, p.TenantNote = s.results(ctx, matches)
	return p
}

// fillSink fills v from the report (the store and its summary sum, either
// may be nil); failed is told why the chart cannot be read.
func fillSink(v *SinkView, store *report.Store, sum *report.Summary, now time.Time, failed func(error)) {
	if sum != nil {
		for _, ss := range sum.Sinks {
			if ss.Sink != v.Name {
				continue
			}
			v.HasReport = true
			v.LastFull, v.LastGood, v.Complete, v.Users = ss.LastFull, ss.LastGood, ss.Complete, ss.Users
			v.WithoutUsable = len(ss.NoUsable)
			v.WithUsable = ss.Users - v.WithoutUsable
			v.DroppedValues = len(ss.Dropped)
			m := map[string]int{}
			for r, n := range ss.DroppedByReason {
				m[string(r)] = n
			}
			v.DroppedByReason = counts(m)
			v.NotPublished = len(ss.NotPublished)
			v.Expiring, v.ExpiringMore = firstN(ss.Expiring, MaxRows)
			v.NoUsable, v.NoUsableMore = firstN(ss.NoUsable, MaxRows)
			v.Chart = expiryChart(func(yield func(time.Time)) {
				if err := store.Expiries(v.Name, yield); err != nil {
					failed(err)
				}
			}, now)
			if len(v.Passes) == 0 && !ss.LastPass.Finished.IsZero() {
				v.Passes = []Pass{passFromReport(v.Name, ss.LastPass)}
			}
		}
	}
	if !v.HasReport {
		v.Chart = expiryChart(nil, now)
	}
	if len(v.Passes) > 0 {
		last := v.Passes[0]
		v.LastFailed = last.Failed
		switch {
		case last.Code != "":
			v.LastErrors = append(v.LastErrors, Count{"pass:" + string(last.Code), 1})
		case last.Failed:
			v.LastErrors = append(v.LastErrors, Count{"pass:error", 1})
		}
		if last.FromReport {
			// The report keeps counts, not the changes themselves.
			if last.Summary.Failed > 0 {
				v.LastErrors = append(v.LastErrors, Count{string(smimesync.OutcomeFailed), last.Summary.Failed})
			}
			if last.Summary.NotWritable > 0 {
				v.LastErrors = append(v.LastErrors, Count{string(smimesync.OutcomeNotWritable), last.Summary.NotWritable})
			}
		} else {
			v.LastErrors = append(v.LastErrors, last.Problems...)
		}
	}
}

func firstN[T any](s []T, n int) ([]T, int) {
	if len(s) <= n {
		return s, 0
	}
	return s[:n], len(s) - n
}

// FileOptions are WriteFile's settings; the zero value works.
type FileOptions struct {
	// ReportFile names the report store on the page.
	ReportFile string
	// Now is when the page is made (zero: time.Now()).
	Now time.Time
	// ExpiryDays: the page lists the certificates that expire within
	// this many days (0: ExpiryDays).
	ExpiryDays int
	// Query, when not empty, adds the search for it to the page.
	Query string
	// Published, when not nil, says what the recipients carry, for the
	// search.
	Published PublishedFunc
}

// ErrQueryTooLong is returned by WriteFile for a Query longer than
// MaxQuery bytes.
var ErrQueryTooLong = errors.New("status: the search is too long")

// WriteFile writes the page for the report store as one self-contained
// HTML document (inline style and chart, no script, nothing to load, no
// refresh), to be mailed or archived: what `smimesync report --html`
// writes. It shows what the report holds; the live page's health and
// recent passes are the service's alone (the page shows the last pass).
// It reads the store through cursors (report.Store.Summarize, Search,
// Expiries), and returns their error.
func WriteFile(ctx context.Context, w io.Writer, store *report.Store, o FileOptions) error {
	if len(o.Query) > MaxQuery {
		return fmt.Errorf("%w (%d bytes, at most %d)", ErrQueryTooLong, len(o.Query), MaxQuery)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	st := &Status{Published: o.Published, Now: func() time.Time { return now }}
	days := cmp.Or(o.ExpiryDays, ExpiryDays)
	sum, err := store.Summarize(o.ReportFile, now, days)
	if err != nil {
		return err
	}
	p := &Page{Title: "smimesync report", At: now.UTC(), ReportFile: o.ReportFile, ExpiryDays: days}
	var chartErr error
	for _, ss := range sum.Sinks {
		v := SinkView{Name: ss.Sink}
		fillSink(&v, store, sum, now, func(err error) { chartErr = cmp.Or(chartErr, err) })
		p.Sinks = append(p.Sinks, v)
	}
	if chartErr != nil {
		return chartErr
	}
	q := strings.TrimSpace(o.Query)
	var matches []match
	if q != "" {
		found, more, err := store.Search(matcher(q), MaxResults)
		if err != nil {
			return err
		}
		p.Query, p.More = q, more
		for _, f := range found {
			matches = append(matches, match{f.Sink, f.Entry})
		}
	}
	p.Results, p.TenantNote = st.results(ctx, matches)
	return render(w, p)
}

// shortFP is a fingerprint's first 16 hex digits: enough to find it.
func shortFP(f smimesync.Fingerprint) string {
	s := f.String()
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// stamp formats a time for people, in UTC to the minute; "never" for zero.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// day formats a date.
func day(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02")
}

// duration is d for people: 1.2s, 3m4s.
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// lower is strings.ToLower, for the search.
var lower = strings.ToLower
