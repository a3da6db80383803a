package smimesync

import (
	"bytes"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/directory"
)

// TestEntryHashStable: an entry's hash (Memo.Entry) is what this package
// computed when the memos of memoVersion were first saved, field for
// field: a release that hashed otherwise would find every saved memo
// stale, and judge the whole directory again. The hashes below were
// computed by the first entryHash of memoVersion "smimesync-memo-2".
func TestEntryHashStable(t *testing.T) {
	big := bytes.Repeat([]byte{0x30, 0x82}, 40000) // beyond any buffer kept
	for _, tt := range []struct {
		name string
		e    directory.Entry
		want string
	}{
		{"empty", directory.Entry{}, "98ce42deef51d40269d542f5314bef2c7468d401ad5d85168bfab4c0108f75f7"},
		{"whole", directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "CN=Alice,DC=example,DC=com", UserPrincipalName: "alice@corp.example.com",
			Mail: "alice@example.com", Source: "ad", ProxyAddresses: []string{"SMTP:alice@example.com", "smtp:a@example.com"},
			UserCertificate: [][]byte{{1, 2, 3}, {}}, UserSMIMECertificate: [][]byte{{4}}}, "3b3c06ef8a9afb0ffe9b3280d724a74ceca9acf98f89c9ed1b263472a5ba9aca"},
		{"deleted", directory.Entry{ID: "x", DN: "y", Deleted: true}, "30a9790cfb163a95ba06225586cdc930ab2f2c774329dde66c349e59468ee294"},
		{"large", directory.Entry{ID: strings.Repeat("i", 300), UserCertificate: [][]byte{big, big[:7]}}, "a98067f810c173bbd3f795f186364f7fcad67e5d6d4bb620152a98ef466b9d86"},
	} {
		sum := entryHash(&tt.e)
		if got := hex.EncodeToString(sum[:]); got != tt.want {
			t.Errorf("%s: entryHash = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// BenchmarkEntryHash hashes an entry the size of a typical user's (a
// DN, addresses, three certificates):
//
//	go test -run '^$' -bench EntryHash ./smimesync
func BenchmarkEntryHash(b *testing.B) {
	e := &directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "CN=Alice Example,OU=Staff,DC=corp,DC=example,DC=com",
		UserPrincipalName: "alice@corp.example.com", Mail: "alice@example.com", ProxyAddresses: []string{"SMTP:alice@example.com", "smtp:a@example.com"},
		UserCertificate: [][]byte{bytes.Repeat([]byte{1}, 700), bytes.Repeat([]byte{2}, 700)}, UserSMIMECertificate: [][]byte{bytes.Repeat([]byte{3}, 400)}}
	b.ReportAllocs()
	for b.Loop() {
		entryHash(e)
	}
}

// TestValuesHashStable: a record's values hash (Memo.Values) is what this
// package computed when the memos of memoVersion "smimesync-memo-2" were
// first saved, whatever the order of the fingerprints: a release that
// hashed otherwise would find every saved memo stale.
func TestValuesHashStable(t *testing.T) {
	fp := func(b byte) Fingerprint { return Fingerprint(bytes.Repeat([]byte{b}, 32)) }
	many := make([]Fingerprint, 300) // more than 255: the count's two bytes
	for i := range many {
		many[i][0], many[i][1] = byte(i>>8), byte(i)
	}
	for _, tt := range []struct {
		name      string
		uc, smime []Fingerprint
		want      string
	}{
		{"none", nil, nil, "10487d86ce3584e156874ed9b2650e8d772a8d1fdbb1c9111bf7e2fbcab18ccb"},
		{"one", []Fingerprint{fp(1)}, nil, "2b674566e51440a0846232cdc0f9fc73b4b6bfb2bba354fdb203c6c8c387f78e"},
		{"unsorted", []Fingerprint{fp(9), fp(1), fp(5)}, []Fingerprint{fp(2)}, "500b87681f48de7251c235cf96fb7b704a3a94fe18f8516ac6f499e01aa69193"},
		{"sorted", []Fingerprint{fp(1), fp(5), fp(9)}, []Fingerprint{fp(2)}, "500b87681f48de7251c235cf96fb7b704a3a94fe18f8516ac6f499e01aa69193"},
		{"other attribute", []Fingerprint{fp(2)}, []Fingerprint{fp(1), fp(5), fp(9)}, "803e07d2a8fd15334e32177dfe808f56ae16a7ba03915572a0c8c2d5d3753433"},
		{"many", many, many[:7], "230b402518fcdf946f5d0609cfeb65488f02de03685bdeb8e8d7567b17ac235d"},
	} {
		uc := slices.Clone(tt.uc)
		sum := valuesHash(tt.uc, tt.smime)
		if got := hex.EncodeToString(sum[:]); got != tt.want {
			t.Errorf("%s: valuesHash = %s, want %s", tt.name, got, tt.want)
		}
		if !slices.Equal(uc, tt.uc) {
			t.Errorf("%s: valuesHash reordered its argument", tt.name)
		}
	}
}

// BenchmarkValuesHash hashes the fingerprints of a typical record (two
// certificates in one attribute, one in the other):
//
//	go test -run '^$' -bench ValuesHash ./smimesync
func BenchmarkValuesHash(b *testing.B) {
	uc := []Fingerprint{{9}, {1}}
	smime := []Fingerprint{{5}}
	b.ReportAllocs()
	for b.Loop() {
		valuesHash(uc, smime)
	}
}

// TestCompareKeyHash: key hashes order as their bytes do (the order a
// plan file's unlisted keys are saved and checked in).
func TestCompareKeyHash(t *testing.T) {
	var keys []keyHash
	for _, b := range []byte{0, 1, 0x7f, 0x80, 0xff} {
		for _, at := range []int{0, 7, 8, 15} {
			var k keyHash
			k[at] = b
			keys = append(keys, k)
		}
	}
	for i := range 50 {
		keys = append(keys, hashKey(strconv.Itoa(i)))
	}
	for _, a := range keys {
		for _, b := range keys {
			if got, want := compareKeyHash(a, b), bytes.Compare(a[:], b[:]); got != want {
				t.Fatalf("compareKeyHash(%x, %x) = %d, want %d", a, b, got, want)
			}
		}
	}
}
