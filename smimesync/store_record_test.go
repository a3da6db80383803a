package smimesync

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// publishedCases are records of every shape: lists empty, nil and long,
// strings long enough for a two-byte length, times in UTC, at an offset,
// local and zero.
func publishedCases() []Published {
	fp := func(s string) Fingerprint { return sha256.Sum256([]byte(s)) }
	var many []Fingerprint
	for i := range 200 {
		many = append(many, fp(strings.Repeat("x", i)))
	}
	long := strings.Repeat("é", 300)
	return []Published{
		{},
		{Recipient: "alice@example.com", UserCertificate: []Fingerprint{fp("a1"), fp("a2")}, UserSMIMECertificate: []Fingerprint{fp("a3")},
			At: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), User: "alice@corp.example.com", Name: "Alice Example", Kind: "UserMailbox"},
		{Recipient: "bob@example.com", At: time.Date(2025, 12, 31, 23, 0, 0, 0, time.FixedZone("", 2*3600))},
		{Recipient: "carol", UserCertificate: []Fingerprint{}, UserSMIMECertificate: many, At: time.Date(2024, 2, 29, 12, 0, 0, 1, time.Local)},
		{Recipient: long, User: long, Name: "\x00\n{", Kind: "{", At: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
	}
}

// TestPublishedRecordLayout: a record a BoltState writes is binary (its
// first byte publishedRecordVersion, never JSON's '{'), and reads back as
// the same record JSON read back, zone of At included: what this package
// read from a store before the binary layout.
func TestPublishedRecordLayout(t *testing.T) {
	for i, p := range publishedCases() {
		bin, err := encodePublished(p)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if bin[0] != publishedRecordVersion {
			t.Errorf("case %d: record starts with %#x", i, bin[0])
		}
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		fromJSON, err := decodePublishedRecord(js)
		if err != nil {
			t.Fatalf("case %d: the JSON record: %v", i, err)
		}
		got, err := decodePublishedRecord(bin)
		if err != nil {
			t.Fatalf("case %d: the binary record: %v", i, err)
		}
		if !reflect.DeepEqual(got, fromJSON) {
			t.Errorf("case %d: binary reads as\n%+v\nJSON as\n%+v", i, got, fromJSON)
		}
		if !got.At.Equal(p.At) || got.Recipient != p.Recipient || recordRecipient(bin) != p.Recipient || recordRecipient(js) != p.Recipient {
			t.Errorf("case %d: read %+v from %+v", i, got, p)
		}
	}
	if len(encodeOrFatal(t, Published{Recipient: "r", UserCertificate: make([]Fingerprint, 3)})) > 1+1+1+1+20+3+1+96+1 {
		t.Error("the binary record is not compact")
	}
}

func encodeOrFatal(t *testing.T, p Published) []byte {
	t.Helper()
	b, err := encodePublished(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublishedRecordDamaged: a binary record cut short, with bytes after
// it, of another version, or with a count beyond its length is an error,
// never a panic or a record made up.
func TestPublishedRecordDamaged(t *testing.T) {
	for i, p := range publishedCases() {
		bin := encodeOrFatal(t, p)
		for n := range len(bin) {
			if got, err := decodePublishedRecord(bin[:n]); err == nil {
				t.Errorf("case %d cut to %d of %d bytes: read as %+v", i, n, len(bin), got)
			}
			recordRecipient(bin[:n])
		}
		if _, err := decodePublishedRecord(append(bytes.Clone(bin), 0)); err == nil {
			t.Errorf("case %d with a byte after it: no error", i)
		}
		other := bytes.Clone(bin)
		other[0] = publishedRecordVersion + 1
		if _, err := decodePublishedRecord(other); err == nil || recordRecipient(other) != "" {
			t.Errorf("case %d of another version: err %v, recipient %q", i, err, recordRecipient(other))
		}
	}
	huge := []byte{publishedRecordVersion, 1, 'r', 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}
	if _, err := decodePublishedRecord(huge); err == nil {
		t.Error("a count beyond the record: no error")
	}
	badTime := []byte{publishedRecordVersion, 1, 'r', 3, 'n', 'o', 't', 0, 0, 0, 0, 0}
	if _, err := decodePublishedRecord(badTime); err == nil {
		t.Error("a time that is not one: no error")
	}
}

// TestMemoRecord: a memo reads back as it was saved, every string of it
// (its strings share one copy of the record), and a memo record cut short
// or with a byte after it is no memo.
func TestMemoRecord(t *testing.T) {
	for i, m := range []Memo{
		{},
		{Entry: sha256.Sum256([]byte("e")), Settings: sha256.Sum256([]byte("s")), Values: sha256.Sum256([]byte("v")),
			Recipient: "alice@example.com", RecipientName: "Alice Example", RecipientKind: "UserMailbox",
			Kept: 2, DroppedValues: 3, Dropped: []Reason{"expired", "wrong-address", "expired"},
			RecheckBy: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC), Verified: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Recipient: strings.Repeat("é", 200), Skip: SkipReadOnly, Detail: "directory-synced\x00{"},
	} {
		raw := encodeMemo(m)
		got, err := decodeMemo(raw)
		if err != nil {
			t.Fatalf("memo %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("memo %d read back as\n%+v\nwant\n%+v", i, got, m)
		}
		for n := range len(raw) {
			if _, err := decodeMemo(raw[:n]); err == nil {
				t.Errorf("memo %d cut to %d of %d bytes: read", i, n, len(raw))
			}
		}
		if _, err := decodeMemo(append(bytes.Clone(raw), 0)); err == nil {
			t.Errorf("memo %d with a byte after it: read", i)
		}
	}
}
