package report

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/smimesync/go-smimesync/smimesync"
)

// FuzzReportRecords: the decoder of a store's entry records never panics,
// and what it decodes encodes to a record that decodes to the same entry
// (and then encodes to the same bytes). testdata/fuzz holds what it
// found: an empty list of reasons, which a round trip drops.
func FuzzReportRecords(f *testing.F) {
	at := time.Date(2052, 9, 27, 6, 54, 0, 123, time.UTC)
	for _, e := range []*Entry{
		{ID: "1", User: "alice@example.com", Action: smimesync.ActionAdd, Outcome: smimesync.OutcomeWritten, Seen: at,
			Keep: []smimesync.Value{{Attribute: "userCertificate", NotAfter: at, Subject: "CN=Alice"}, {Attribute: "userSMIMECertificate"}},
			Drop: []smimesync.Value{{Attribute: "userCertificate", Reasons: []smimesync.Reason{smimesync.ReasonExpired}, Notes: []string{"x"}}}},
		{ID: "2", Source: "ad", User: "bob", Action: smimesync.ActionSkip, Reason: smimesync.SkipReadOnly, Detail: "directory-synced", Unjudged: true},
		{ID: "3", Keep: []smimesync.Value{{NotAfter: time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)}, {NotAfter: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}}},
	} {
		raw, err := encodeRecord(7, e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{})
	f.Add(append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 2}, make([]byte, 12)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		again, err := encodeRecord(r.seq, r.entry)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		r2, err := decodeRecord(again)
		if err != nil {
			t.Fatalf("a re-encoded record does not decode: %v", err)
		}
		if r2.seq != r.seq || !r2.last.Equal(r.last) || !bytes.Equal(recordExpiry(again), recordExpiry(b)) {
			t.Errorf("the fixed part changed: %d %v, was %d %v", r2.seq, r2.last, r.seq, r.last)
		}
		// An empty list and none are one (omitempty drops the former).
		if diff := cmp.Diff(r.entry, r2.entry, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("the entry changed (-decoded +round trip):\n%s", diff)
		}
		if third, _ := encodeRecord(r2.seq, r2.entry); !bytes.Equal(third, again) {
			t.Errorf("encoding is not stable:\n%q\n%q", again, third)
		}
	})
}
