package smimesync

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzStoreRecords: the store's binary records (a Published record, in
// either layout, and a memo) never panic on any bytes, and what decodes
// encodes back to a record that decodes the same.
func FuzzStoreRecords(f *testing.F) {
	at := time.Date(2031, 2, 3, 4, 5, 6, 7, time.FixedZone("X", 3600))
	p := Published{Recipient: "guid-1", UserCertificate: []Fingerprint{{1}, {2}}, UserSMIMECertificate: []Fingerprint{{3}},
		At: at, User: "alice@example.com", Name: "Alice", Kind: "UserMailbox"}
	rec, err := encodePublished(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rec)
	f.Add([]byte(`{"recipient":"guid-2","userCertificate":["` + Fingerprint{9}.String() + `"],"at":"2030-01-01T00:00:00Z"}`))
	f.Add(encodeMemo(Memo{Entry: [32]byte{1}, Settings: [32]byte{2}, Values: [32]byte{3}, Recipient: "guid-1", RecipientName: "Alice",
		RecipientKind: "UserMailbox", Skip: SkipNoRecipient, Detail: "d", Kept: 2, DroppedValues: 1, Dropped: []Reason{ReasonExpired},
		RecheckBy: at, Verified: at}))
	f.Add([]byte{publishedRecordVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := decodePublishedRecord(b); err == nil {
			again, err := encodePublished(p)
			if err != nil {
				t.Fatalf("a decoded record does not encode: %+v: %v", p, err)
			}
			q, err := decodePublishedRecord(again)
			if err != nil {
				t.Fatalf("an encoded record does not decode: %v", err)
			}
			// An empty list and none are the same record (JSON kept
			// "[]"; the binary layout counts 0).
			if d := cmp.Diff(p, q, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("record changed through encode and decode (-first +second):\n%s", d)
			}
			_ = recordRecipient(b)
		}
		if m, err := decodeMemo(b); err == nil {
			n, err := decodeMemo(encodeMemo(m))
			if err != nil {
				t.Fatalf("an encoded memo does not decode: %v", err)
			}
			if d := cmp.Diff(m, n); d != "" {
				t.Errorf("memo changed through encode and decode (-first +second):\n%s", d)
			}
		}
	})
}
