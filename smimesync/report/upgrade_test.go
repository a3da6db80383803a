package report

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smimesync/go-smimesync/smimesync"
)

// A version 1 report file (camelCase keys, a sink's words as a skip
// reason) still loads, with nothing lost, and is saved as version 2.
func TestReportV1Upgrade(t *testing.T) {
	v1 := `{
 "format": "smimesync-report",
 "version": 1,
 "updated": "2026-01-01T00:00:00Z",
 "sinks": [{"sink": "file",
  "lastPass": {"command": "run", "full": true, "finished": "2026-01-01T00:00:00Z",
   "summary": {"entries": 2, "add": 1, "replace": 0, "remove": 0, "unchanged": 0, "skip": 1, "losing": 0, "overwriting": 0, "pruning": 0, "retried": 0,
    "keptValues": 3, "droppedValues": 1, "dropped": {"no-matching-address": 1}, "written": 1, "failed": 0, "notWritable": 0},
   "cookieAdvanced": true},
  "lastFull": "2026-01-01T00:00:00Z", "lastGood": "2026-01-01T00:00:00Z", "complete": true,
  "entries": [
   {"id": "1", "user": "alice@example.com", "action": "add", "outcome": "written", "keep": [{"sha256": "61237c070284dcef14ebb5a05b0e8950d427ee46041cdb4891468330c13475a6", "attribute": "userCertificate", "notAfter": "2027-01-01T00:00:00Z"}], "drop": [], "seen": "2026-01-01T00:00:00Z"},
   {"id": "2", "user": "bob@example.com", "action": "skip", "reason": "directory-synced", "keep": [], "drop": [], "seen": "2026-01-01T00:00:00Z"},
   {"id": "3", "user": "carol@example.com", "action": "skip", "reason": "no-recipient", "keep": [], "drop": [], "seen": "2026-01-01T00:00:00Z"}
  ]}]
}`
	path := filepath.Join(t.TempDir(), "state.report.json")
	if err := os.WriteFile(path, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Load(path)
	if err != nil {
		t.Fatalf("loading a version 1 report: %v", err)
	}
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := r.Sinks[0]
	if r.Version != Version || !s.Complete || !s.LastGood.Equal(day) || !s.LastFull.Equal(day) || !s.LastPass.CookieAdvanced ||
		s.LastPass.Summary.KeptValues != 3 || s.LastPass.Summary.DroppedValues != 1 || s.LastPass.Summary.Dropped[smimesync.ReasonNoMatchingAddress] != 1 {
		t.Errorf("upgraded report lost something: version %d, %+v", r.Version, s)
	}
	if len(s.Entries) != 3 {
		t.Fatalf("%d entries, want 3", len(s.Entries))
	}
	alice, bob, carol := s.Entries[0], s.Entries[1], s.Entries[2]
	if alice.Outcome != smimesync.OutcomeWritten || len(alice.Keep) != 1 || !alice.Keep[0].NotAfter.Equal(day.AddDate(1, 0, 0)) {
		t.Errorf("alice: %+v", alice)
	}
	if bob.Reason != smimesync.SkipReadOnly || bob.Detail != "directory-synced" {
		t.Errorf("bob: reason %q detail %q, want read-only with the sink's words as detail", bob.Reason, bob.Detail)
	}
	if carol.Reason != smimesync.SkipNoRecipient || carol.Detail != "" {
		t.Errorf("carol: reason %q detail %q, want no-recipient", carol.Reason, carol.Detail)
	}

	// Converted to a store, it reads back the same.
	if _, err := Open(path, nil); err != nil {
		t.Fatal(err)
	}
	again, err := Load(path)
	if err != nil || again.Version != Version || again.Sinks[0].Entries[1].Detail != "directory-synced" {
		t.Fatalf("store round trip: %v %+v", err, again)
	}
	if diff := cmp.Diff(r.Sinks, again.Sinks); diff != "" {
		t.Errorf("the store holds another report (-JSON +store):\n%s", diff)
	}
}
