package status

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

// UserResult is one user a search found: what the report holds for the
// entry in one sink, and what smimesync last wrote to its recipient.
type UserResult struct {
	Sink  string
	Entry *report.Entry
	// Values are the entry's values: the kept ones first.
	Values []ValueView
	// Usable is true when the policy kept at least one value.
	Usable bool
	// Status says whether the kept values reached the recipient:
	// "published", "removed" (none is usable, and the recipient's were
	// taken away), "unchanged" (it carried them already), "not-written",
	// the write's outcome or the skip reason; Why is the sink's words
	// for a read-only recipient (never an error's text).
	Status, Why string
	// Tenant is what smimesync last wrote to the recipient (its State),
	// TenantKnown false when the State was not read or has no record.
	Tenant      []TenantValue
	TenantAt    time.Time
	TenantKnown bool
}

// ValueView is one value of an entry, kept or dropped.
type ValueView struct {
	smimesync.Value
	Kept bool
	// Published is true when smimesync last wrote this value to the
	// recipient.
	Published bool
}

// TenantValue is one certificate smimesync last wrote to a recipient.
type TenantValue struct {
	Attribute string
	SHA256    smimesync.Fingerprint
	// InDirectory is false for a certificate the directory no longer
	// holds for the user (the next write takes it away).
	InDirectory bool
}

// match is a report entry that a search found.
type match struct {
	sink  string
	entry *report.Entry
}

// search finds the report's entries whose user, DN, ID, recipient or
// value subjects contain q (case-insensitive), at most MaxResults of them
// (report.Store.Search: it scans the store, holding those); more is how
// many others matched. It returns q trimmed. A store that cannot be read
// finds nothing (logged to log).
func search(store *report.Store, q string, log *slog.Logger) (query string, found []match, more int) {
	q = strings.TrimSpace(q)
	if q == "" || store == nil {
		return q, nil, 0
	}
	got, more, err := store.Search(matcher(q), MaxResults)
	if err != nil {
		log.Error("status page: searching the report", "err", err)
		return q, nil, 0
	}
	for _, f := range got {
		found = append(found, match{f.Sink, f.Entry})
	}
	return q, found, more
}

// matcher is the search for q (trimmed, not empty), for
// report.Store.Search.
func matcher(q string) func(string, *report.Entry) bool {
	needle := lower(q)
	return func(_ string, e *report.Entry) bool { return entryMatches(e, needle) }
}

func entryMatches(e *report.Entry, needle string) bool {
	for _, s := range []string{e.User, e.DN, e.ID, e.Recipient} {
		if strings.Contains(lower(s), needle) {
			return true
		}
	}
	for _, v := range slices.Concat(e.Keep, e.Drop) {
		if strings.Contains(lower(v.Subject), needle) {
			return true
		}
	}
	return false
}

// results turns matches into what the page shows, reading each sink's
// published certificates once. note says why the recipients' side is
// missing, when it is.
func (s *Status) results(ctx context.Context, matches []match) (out []UserResult, note string) {
	if len(matches) == 0 {
		return nil, ""
	}
	if s.Published == nil {
		note = "What the recipients carry is not shown: this page was not given the sinks' state."
	}
	published := map[string]map[string]smimesync.Published{}
	for _, m := range matches {
		if _, ok := published[m.sink]; ok || s.Published == nil {
			continue
		}
		pub, err := s.Published(ctx, m.sink)
		if err != nil {
			// The error names the state file's path: logged, not shown.
			s.log().Warn("status page: reading the state for a search", "sink", m.sink, "err", err)
			note = "What the recipients carry could not be read from the state (see the log)."
		}
		published[m.sink] = pub
	}
	for _, m := range matches {
		out = append(out, userResult(m, published[m.sink]))
	}
	return out, note
}

// userResult is what the page shows of one match; pub is the sink's
// published certificates (nil when not known).
func userResult(m match, pub map[string]smimesync.Published) UserResult {
	e := m.entry
	r := UserResult{Sink: m.sink, Entry: e, Usable: len(e.Keep) > 0}
	p, ok := pub[smimesync.PublishedKey(e.Source, e.ID)]
	onTenant := map[smimesync.Fingerprint]bool{}
	if ok {
		r.TenantKnown, r.TenantAt = true, p.At
		for _, x := range []struct {
			attr string
			fps  []smimesync.Fingerprint
		}{{"userCertificate", p.UserCertificate}, {"userSMIMECertificate", p.UserSMIMECertificate}} {
			for _, fp := range x.fps {
				onTenant[fp] = true
				r.Tenant = append(r.Tenant, TenantValue{Attribute: x.attr, SHA256: fp,
					InDirectory: slices.ContainsFunc(e.Keep, func(v smimesync.Value) bool { return v.SHA256 == fp })})
			}
		}
	}
	for _, v := range e.Keep {
		r.Values = append(r.Values, ValueView{Value: v, Kept: true, Published: onTenant[v.SHA256]})
	}
	for _, v := range e.Drop {
		r.Values = append(r.Values, ValueView{Value: v, Published: onTenant[v.SHA256]})
	}
	r.Status, r.Why = publishStatus(e)
	return r
}

// publishStatus says whether an entry's kept values reached its
// recipient. It gives codes, and a read-only recipient's reason in the
// sink's words; an error's text (hosts, accounts) stays in the report store
// and the log.
func publishStatus(e *report.Entry) (status, why string) {
	switch {
	case e.Action == smimesync.ActionSkip && e.Reason == smimesync.SkipReadOnly:
		return string(e.Reason), e.Detail
	case e.Action == smimesync.ActionSkip:
		return string(e.Reason), ""
	case e.Action == smimesync.ActionUnchanged:
		return "unchanged", ""
	case e.Outcome == smimesync.OutcomeWritten && e.Action == smimesync.ActionRemove:
		return "removed", "the recipient's certificates were taken away: none is usable"
	case e.Outcome == smimesync.OutcomeWritten:
		return "published", ""
	case e.Outcome == "":
		return "not-written", "the pass stopped before writing it"
	}
	return string(e.Outcome), ""
}
