package smimesync

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// fullRow is a Change with every field the row codec keeps set, strings
// that are not UTF-8 among them.
func fullRow() *Change {
	at := time.Date(2031, 2, 3, 4, 5, 6, 7, time.FixedZone("X", 3600))
	return &Change{
		ID: "CN=Ren\xe9e,DC=example", User: "renee@example.com", DN: "CN=Ren\xe9e,DC=example", Source: "ad",
		Recipient: &cloud.Recipient{ID: "guid-1", Name: "Ren\xe9e", Kind: "UserMailbox", ReadOnly: "synced"},
		Action:    ActionSkip, Reason: SkipReadOnly, Detail: "synced from on-premises",
		Keep: []Value{{SHA256: Fingerprint{1}, Attribute: cloud.AttrUserCertificate, Notes: []string{"n1", "n2"},
			Subject: "CN=Renee", Issuer: "CN=CA", Serial: "12345", NotAfter: at}},
		Drop: []Value{{SHA256: Fingerprint{2}, Attribute: cloud.AttrUserSMIMECertificate, Reasons: []Reason{ReasonExpired, ReasonNotForSMIME}},
			{SHA256: Fingerprint{3}, Attribute: cloud.AttrUserCertificate}},
		Removes: []Fingerprint{{4}, {5}}, Published: []Fingerprint{{6}},
		CurrentFrom: CurrentFromState, Outcome: OutcomeFailed, Error: "boom",
		Retried: true, Memoized: true,
		MemoValues: &MemoValues{Kept: 3, Dropped: 2, Reasons: []Reason{ReasonExpired}},
		desiredFP:  [2][]Fingerprint{{{7}, {8}}, {{9}}},
		spilled:    123456789,
		prune:      map[string][][]byte{cloud.AttrUserCertificate: {{1, 2}, {}}, cloud.AttrUserSMIMECertificate: {{3}}},
		entry: &directory.Entry{ID: "id-\xff", DN: "CN=x", UserPrincipalName: "x@example.com", Mail: "x@example.com",
			ProxyAddresses: []string{"SMTP:x@example.com", "smtp:y@example.com"}, UserCertificate: [][]byte{{0x30, 1}, {0x30, 2}},
			UserSMIMECertificate: [][]byte{{0x30, 3}}, Deleted: true, Source: "ad"},
		forget: true,
		memo: &Memo{Entry: [32]byte{1}, Settings: [32]byte{2}, Values: [32]byte{3}, Recipient: "guid-1", RecipientName: "R",
			RecipientKind: "UserMailbox", Skip: SkipReadOnly, Detail: "d", Kept: 2, DroppedValues: 1, Dropped: []Reason{ReasonExpired},
			RecheckBy: at, Verified: at.Add(-time.Hour)},
		hadMemo:   true,
		recheckBy: at.Add(time.Minute),
	}
}

// rowOpts compares rows as the codec keeps them: the unexported fields
// it keeps, not those that do not outlive a plan (desired, runWide,
// settled); times by instant and offset; an empty list as none.
var rowOpts = cmp.Options{
	cmp.AllowUnexported(Change{}),
	cmpopts.IgnoreFields(Change{}, "desired", "runWide", "settled"),
	cmp.Comparer(func(a, b time.Time) bool {
		_, ao := a.Zone()
		_, bo := b.Zone()
		return a.Equal(b) && ao == bo
	}),
	cmpopts.EquateEmpty(),
}

// TestRowCodecRoundTrip: a row comes back from its record as it went in,
// bytes that are not UTF-8 included; so does a bare one.
func TestRowCodecRoundTrip(t *testing.T) {
	for _, c := range []*Change{fullRow(), {ID: "x", Keep: []Value{}, Drop: []Value{}}} {
		body, err := encodeRow(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRow(body)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(c, got, rowOpts); d != "" {
			t.Errorf("row changed through its record (-in +out):\n%s", d)
		}
		if got.Keep == nil || got.Drop == nil {
			t.Errorf("Keep %#v, Drop %#v read back: want empty lists, not nil", got.Keep, got.Drop)
		}
	}
}

// TestRowCodecDamaged: a record with any byte changed, or cut short, is
// an error, never another row.
func TestRowCodecDamaged(t *testing.T) {
	body, err := encodeRow(fullRow())
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		bad := slices.Clone(body)
		bad[i] ^= 0x20
		if _, err := decodeRow(bad); err == nil {
			t.Errorf("byte %d of %d changed: the record still decodes", i, len(body))
		}
	}
	for n := range len(body) {
		if _, err := decodeRow(body[:n]); err == nil {
			t.Errorf("the record cut to %d of %d bytes still decodes", n, len(body))
		}
	}
	if _, err := decodeRow([]byte(`{"id":"x"}`)); !errors.Is(err, errRowRecord) {
		t.Errorf("a JSON body: %v, want errRowRecord", err)
	}
}

// TestRowCodecEntryOwnsItsBytes: the entry a row carries (which Apply
// keeps in the state's Pending) shares no memory with the record.
func TestRowCodecEntryOwnsItsBytes(t *testing.T) {
	body, err := encodeRow(fullRow())
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeRow(body)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(c.entry.UserCertificate[0])
	clear(body)
	if !slices.Equal(c.entry.UserCertificate[0], want) {
		t.Errorf("the entry's certificate changed with the record's bytes")
	}
}

// TestRowCodecCoversEveryField: the row codec lays out these fields, and
// only these. A field added to one of these types must be added to
// encodeRow and decodeRow (and here), or rows would lose it.
func TestRowCodecCoversEveryField(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want []string
	}{
		{Change{}, []string{"ID", "User", "DN", "Source", "Recipient", "Action", "Reason", "Detail", "Keep", "Drop", "Removes",
			"Published", "CurrentFrom", "Outcome", "Error", "Retried", "Memoized", "MemoValues",
			// Not kept: desired (the values are in the file, at spilled),
			// runWide (a plan with one fails), settled (Apply's own).
			"desired", "desiredFP", "spilled", "prune", "entry", "runWide", "settled", "forget", "memo", "hadMemo", "recheckBy"}},
		{Value{}, []string{"SHA256", "Attribute", "Reasons", "Notes", "Subject", "Issuer", "Serial", "NotAfter"}},
		{MemoValues{}, []string{"Kept", "Dropped", "Reasons"}},
		{Memo{}, []string{"Entry", "Settings", "Values", "Recipient", "RecipientName", "RecipientKind", "Skip", "Detail",
			"Kept", "DroppedValues", "Dropped", "RecheckBy", "Verified"}},
		{cloud.Recipient{}, []string{"ID", "Name", "Kind", "ReadOnly"}},
		{directory.Entry{}, []string{"ID", "DN", "UserPrincipalName", "Mail", "ProxyAddresses", "UserCertificate",
			"UserSMIMECertificate", "Deleted", "Source"}},
	} {
		typ := reflect.TypeOf(tc.v)
		var got []string
		for i := range typ.NumField() {
			got = append(got, typ.Field(i).Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s has fields %q; the row codec (rowcodec.go) knows %q: teach it the new ones", typ, got, tc.want)
		}
	}
	// fullRow sets every field the codec keeps.
	v := reflect.ValueOf(*fullRow())
	for i := range v.NumField() {
		switch name := v.Type().Field(i).Name; name {
		case "desired", "runWide", "settled":
		default:
			if v.Field(i).IsZero() {
				t.Errorf("fullRow leaves %s unset", name)
			}
		}
	}
}

// FuzzRowRecord: whatever a row record's body holds, decodeRow does not
// panic, and a row it reads encodes and reads back the same.
func FuzzRowRecord(f *testing.F) {
	for _, c := range []*Change{fullRow(), {ID: "x"}} {
		body, err := encodeRow(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Add([]byte{rowBinary, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		// The checksum would turn away nearly every input: the fuzzer
		// also tries b with its checksum made right.
		fixed := slices.Clone(b)
		if len(fixed) >= 5 {
			fixed[0] = rowBinary
			putRowChecksum(fixed)
		}
		for _, in := range [][]byte{b, fixed} {
			c, err := decodeRow(in)
			if err != nil {
				continue
			}
			again, err := encodeRow(c)
			if err != nil {
				t.Fatalf("a decoded row does not encode: %v", err)
			}
			c2, err := decodeRow(again)
			if err != nil {
				t.Fatalf("an encoded row does not decode: %v", err)
			}
			if d := cmp.Diff(c, c2, rowOpts); d != "" {
				t.Errorf("row changed through encode and decode (-first +second):\n%s", d)
			}
		}
	})
}

// TestRowSizeHint: a run's block is made large enough at once for the
// rows a plan writes (rowSizeHint is not less than the record).
func TestRowSizeHint(t *testing.T) {
	waiting := &Change{ID: "0a1b2c3d-0b0a-4908-8706-000000000001", User: "user@example.com", DN: "CN=User,OU=Staff,DC=example,DC=com",
		Action: ActionSkip, Reason: SkipNoRecipient, Memoized: true, Keep: []Value{}, Drop: []Value{},
		entry: &directory.Entry{ID: "0a1b2c3d-0b0a-4908-8706-000000000001", DN: "CN=User,OU=Staff,DC=example,DC=com",
			Mail: "user@example.com", ProxyAddresses: []string{"SMTP:user@example.com"},
			UserCertificate: [][]byte{make([]byte, 1200), make([]byte, 900)}, UserSMIMECertificate: [][]byte{make([]byte, 3000)}}}
	for _, c := range []*Change{fullRow(), waiting, {ID: "x"}} {
		body, err := encodeRow(c)
		if err != nil {
			t.Fatal(err)
		}
		if hint := rowSizeHint(c); hint < 4+len(body) {
			t.Errorf("the row of %q: hint %d bytes, record %d", c.ID, hint, 4+len(body))
		}
	}
}

// TestRowRunsBoundedInBytes: rows that carry large entries are written in
// runs of about runBytes, not of runRows, and read back whole, in order.
func TestRowRunsBoundedInBytes(t *testing.T) {
	sp := newSpill()
	defer sp.close()
	rs := newRowSet(sp)
	const n = 7
	for i := range n {
		id := string(rune('g' - i)) // added out of order
		cert := slices.Repeat([]byte{byte(i)}, runBytes/3)
		c := &Change{ID: id, User: id, Action: ActionSkip, Reason: SkipNoRecipient, Keep: []Value{}, Drop: []Value{},
			entry: &directory.Entry{ID: id, UserCertificate: [][]byte{cert}}}
		if err := rs.add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.flush(); err != nil {
		t.Fatal(err)
	}
	if len(rs.runs) < n/3 {
		t.Errorf("%d rows of %d bytes each in %d runs; want runs of about %d bytes", n, runBytes/3, len(rs.runs), runBytes)
	}
	var got []string
	for c, err := range rs.all() {
		if err != nil {
			t.Fatal(err)
		}
		i := int('g' - c.ID[0])
		if e := c.entry; e == nil || len(e.UserCertificate) != 1 || len(e.UserCertificate[0]) != runBytes/3 || e.UserCertificate[0][0] != byte(i) {
			t.Errorf("row %s read back without its entry whole", c.ID)
		}
		got = append(got, c.ID)
	}
	if want := []string{"a", "b", "c", "d", "e", "f", "g"}; !slices.Equal(got, want) {
		t.Errorf("rows read back %q, want %q", got, want)
	}
}
