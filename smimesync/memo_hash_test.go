package smimesync

import (
	"bytes"
	"encoding/hex"
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
