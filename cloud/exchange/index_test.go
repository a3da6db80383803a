package exchange

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud"
)

// indexHashes are the hashes the index is tested with: its own, one under
// which every address collides, and one under which addresses of the same
// length do.
var indexHashes = []struct {
	name string
	hash func([]byte) uint64
}{
	{"maphash", nil},
	{"all collide", func([]byte) uint64 { return 7 }},
	{"same length collides", func(b []byte) uint64 { return uint64(len(b)) }},
}

func buildIndex(t *testing.T, hash func([]byte) uint64, rs ...recipient) *index {
	t.Helper()
	x := newIndex(hash)
	for i := range rs {
		if err := x.add(&rs[i]); err != nil {
			t.Fatal(err)
		}
	}
	x.finish()
	return x
}

// TestIndexFind: what the index finds by each kind of address, under each
// hash: the hash only narrows the search.
func TestIndexFind(t *testing.T) {
	rs := []recipient{
		{Guid: "0a000000-0000-4000-8000-000000000001", PrimarySmtpAddress: "Alice.Liddell@Contoso.com", RecipientType: "UserMailbox", RecipientTypeDetails: "UserMailbox",
			EmailAddresses: []string{"SMTP:Alice.Liddell@Contoso.com", "smtp:a.liddell@contoso.com", "X500:/o=Contoso/cn=alice", "sip:alice@contoso.com", "SMTP:  Wonder@Contoso.COM "}},
		{Guid: "0A000000-0000-4000-8000-000000000002", PrimarySmtpAddress: "bob@contoso.com", RecipientType: "MailUser", RecipientTypeDetails: "GuestMailUser",
			EmailAddresses: []string{"smtp:a.liddell@contoso.com", "smtp:bob@fabrikam.com"}},
		{Guid: "not-a-guid", Name: "carol", RecipientType: "MailContact", IsDirSynced: true,
			EmailAddresses: []string{"smtp:carol@partner.example", "smtp:noat"}},
		{Guid: "0a000000-0000-4000-8000-000000000004", Name: "nobody", RecipientType: "UserMailbox"}, // no address: not kept
		{Guid: "0a000000-0000-4000-8000-000000000005", PrimarySmtpAddress: "dave@contoso.com", RecipientType: "UserMailbox", RecipientTypeDetails: "UserMailbox", IsDirSynced: true},
		{Guid: "0a000000-0000-4000-8000-000000000006", PrimarySmtpAddress: "Erin@ÉCOLE.example", RecipientType: "UserMailbox", RecipientTypeDetails: "UserMailbox"},
	}
	alice := cloud.Recipient{ID: "0a000000-0000-4000-8000-000000000001", Name: "Alice.Liddell@Contoso.com", Kind: "UserMailbox"}
	bob := cloud.Recipient{ID: "0A000000-0000-4000-8000-000000000002", Name: "bob@contoso.com", Kind: "GuestMailUser"}
	carol := cloud.Recipient{ID: "not-a-guid", Name: "carol", Kind: "MailContact", ReadOnly: syncedReason}
	dave := cloud.Recipient{ID: "0a000000-0000-4000-8000-000000000005", Name: "dave@contoso.com", Kind: "UserMailbox", ReadOnly: syncedReason}
	erin := cloud.Recipient{ID: "0a000000-0000-4000-8000-000000000006", Name: "Erin@ÉCOLE.example", Kind: "UserMailbox"}
	tests := []struct {
		name, addr string
		want       *cloud.Recipient
	}{
		{"primary, found lower case", "alice.liddell@contoso.com", &alice},
		{"smtp: proxy", "a.liddell@contoso.com", &alice},
		{"SMTP: proxy, trimmed", "wonder@contoso.com", &alice},
		{"second recipient's own proxy", "bob@fabrikam.com", &bob},
		{"upper-case GUID kept as it is", "bob@contoso.com", &bob},
		{"Kind from RecipientType, Name from Name, synced", "carol@partner.example", &carol},
		{"address without @", "noat", &carol},
		{"synced mailbox", "dave@contoso.com", &dave},
		{"non-ASCII letters", "erin@école.example", &erin},
		{"X500 is not an address", "/o=contoso/cn=alice", nil},
		{"sip: is not an address", "alice@contoso.com", nil},
		{"keys are lower case", "Alice.Liddell@Contoso.com", nil},
		{"unknown", "nobody@contoso.com", nil},
		{"domain alone", "contoso.com", nil},
		{"empty", "", nil},
	}
	for _, h := range indexHashes {
		t.Run(h.name, func(t *testing.T) {
			x := buildIndex(t, h.hash, rs...)
			for _, tt := range tests {
				got := x.find(tt.addr)
				switch {
				case tt.want == nil && got != nil:
					t.Errorf("%s: find(%q) = %+v, want nothing", tt.name, tt.addr, *got)
				case tt.want != nil && got == nil:
					t.Errorf("%s: find(%q) = nothing, want %+v", tt.name, tt.addr, *tt.want)
				case tt.want != nil && *got != *tt.want:
					t.Errorf("%s: find(%q) = %+v, want %+v", tt.name, tt.addr, *got, *tt.want)
				}
			}
			// alice: 3 addresses; bob: 2 of his own; carol 2; dave 1; erin 1.
			if x.addresses != 9 {
				t.Errorf("%d addresses, want 9", x.addresses)
			}
		})
	}
}

// TestIndexFirstListedWins: an address two recipients list finds the one
// listed first, whichever the hash; each keeps its own other addresses.
func TestIndexFirstListedWins(t *testing.T) {
	for _, h := range indexHashes {
		t.Run(h.name, func(t *testing.T) {
			for _, order := range [][2]int{{0, 1}, {1, 0}} {
				both := [2]recipient{
					{Guid: "0a000000-0000-4000-8000-00000000000a", PrimarySmtpAddress: "a@contoso.com", RecipientType: "UserMailbox", EmailAddresses: []string{"smtp:shared@contoso.com"}},
					{Guid: "0a000000-0000-4000-8000-00000000000b", PrimarySmtpAddress: "b@contoso.com", RecipientType: "UserMailbox", EmailAddresses: []string{"smtp:Shared@Contoso.com"}},
				}
				first, second := both[order[0]], both[order[1]]
				x := buildIndex(t, h.hash, first, second)
				if got := x.find("shared@contoso.com"); got == nil || got.ID != first.Guid {
					t.Errorf("listed %s first: the shared address finds %+v, want %s", first.Guid, got, first.Guid)
				}
				if got := x.find(strings.ToLower(second.PrimarySmtpAddress)); got == nil || got.ID != second.Guid {
					t.Errorf("%s's own address finds %+v", second.Guid, got)
				}
				if x.addresses != 3 {
					t.Errorf("%d addresses, want 3", x.addresses)
				}
			}
		})
	}
}

// TestIndexCollidingAddressesFindTheirOwn: under a hash that gives every
// address the same value, every address still finds its own recipient,
// and an address no one holds finds nothing.
func TestIndexCollidingAddressesFindTheirOwn(t *testing.T) {
	var rs []recipient
	for i := range 50 {
		rs = append(rs, recipient{Guid: fmt.Sprintf("0a000000-0000-4000-8000-%012d", i), PrimarySmtpAddress: fmt.Sprintf("user%d@contoso.com", i),
			RecipientType: "UserMailbox", EmailAddresses: []string{fmt.Sprintf("smtp:alias%d@contoso.com", i), fmt.Sprintf("smtp:u%d", i)}})
	}
	x := buildIndex(t, func([]byte) uint64 { return 42 }, rs...)
	for i, r := range rs {
		for _, a := range []string{fmt.Sprintf("user%d@contoso.com", i), fmt.Sprintf("alias%d@contoso.com", i), fmt.Sprintf("u%d", i)} {
			if got := x.find(a); got == nil || got.ID != r.Guid {
				t.Errorf("find(%q) = %+v, want %s", a, got, r.Guid)
			}
		}
	}
	for _, a := range []string{"user50@contoso.com", "user1@contoso.co", "ser1@contoso.com", "u", "user1"} {
		if got := x.find(a); got != nil {
			t.Errorf("find(%q) = %+v, want nothing", a, *got)
		}
	}
	if x.addresses != 150 {
		t.Errorf("%d addresses, want 150", x.addresses)
	}
}

// TestIndexFindReturnsACopy: a caller that changes what find returned
// does not change what the next find returns.
func TestIndexFindReturnsACopy(t *testing.T) {
	x := buildIndex(t, nil, recipient{Guid: "0a000000-0000-4000-8000-000000000001", PrimarySmtpAddress: "Alice@Contoso.com", RecipientType: "UserMailbox", IsDirSynced: true})
	r := x.find("alice@contoso.com")
	want := *r
	r.ID, r.Name, r.Kind, r.ReadOnly = "x", "y", "z", ""
	if got := x.find("alice@contoso.com"); got == r || *got != want {
		t.Errorf("after changing the first answer, find = %+v, want %+v", *got, want)
	}
}

// TestIndexAgreesWithAMap: on random tenants (shared addresses, case,
// spaces, other proxy types, odd GUIDs and names), the index finds what a
// map from each lower-case address to the first recipient listed with it
// finds, and counts as many addresses; under each hash.
func TestIndexAgreesWithAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	locals := []string{"alice", "Bob", "carol.x", "DAVE", "erin", "frank", "grace", "heidi", "ivan", "judy", "", "@", "a@b"}
	domains := []string{"contoso.com", "Contoso.onmicrosoft.com", "fabrikam.COM", "école.example", ""}
	addr := func() string {
		a := locals[rng.IntN(len(locals))] + fmt.Sprint(rng.IntN(30))
		if rng.IntN(8) > 0 {
			a += "@" + domains[rng.IntN(len(domains))]
		}
		if rng.IntN(10) == 0 {
			a = " " + a + "\t"
		}
		return a
	}
	kinds := []string{"", "UserMailbox", "SharedMailbox", "MailUser", "GuestMailUser", "MailContact"}
	for round := range 20 {
		var rs []recipient
		for i := range 200 + rng.IntN(300) {
			r := recipient{RecipientType: kinds[1+rng.IntN(len(kinds)-1)], RecipientTypeDetails: kinds[rng.IntN(len(kinds))], IsDirSynced: rng.IntN(4) == 0}
			switch rng.IntN(4) {
			case 0:
				r.Guid = fmt.Sprintf("%08X-0000-4000-8000-%012x", i, round)
			case 1:
				r.Guid = fmt.Sprintf("id-%d-%d", round, i)
			default:
				r.Guid = fmt.Sprintf("%08x-%04x-4000-8000-%012x", i, rng.IntN(1<<16), round)
			}
			if rng.IntN(6) > 0 {
				r.PrimarySmtpAddress = addr()
			}
			if rng.IntN(3) == 0 {
				r.Name = locals[rng.IntN(len(locals))]
			}
			for range rng.IntN(5) {
				switch rng.IntN(5) {
				case 0:
					r.EmailAddresses = append(r.EmailAddresses, "X500:/o="+addr())
				case 1:
					r.EmailAddresses = append(r.EmailAddresses, "SMTP:"+addr())
				case 2:
					r.EmailAddresses = append(r.EmailAddresses, "smtp:")
				default:
					r.EmailAddresses = append(r.EmailAddresses, "smtp:"+addr())
				}
			}
			rs = append(rs, r)
		}
		ref := map[string]*cloud.Recipient{}
		for i := range rs {
			c := rs[i].cloud()
			add := func(a string) {
				a = strings.ToLower(strings.TrimSpace(a))
				if a != "" && ref[a] == nil {
					ref[a] = c
				}
			}
			add(rs[i].PrimarySmtpAddress)
			for _, a := range rs[i].EmailAddresses {
				if len(a) > 5 && strings.EqualFold(a[:5], "smtp:") {
					add(a[5:])
				}
			}
		}
		for _, h := range indexHashes {
			x := buildIndex(t, h.hash, rs...)
			if x.addresses != len(ref) {
				t.Errorf("round %d, %s: %d addresses, want %d", round, h.name, x.addresses, len(ref))
			}
			keys := []string{"nobody@contoso.com", "alice", "@contoso.com"}
			for k := range ref {
				keys = append(keys, k, k+"x", strings.TrimSuffix(k, ".com"))
			}
			for _, k := range keys {
				got, want := x.find(k), ref[k]
				if (got == nil) != (want == nil) || got != nil && *got != *want {
					t.Fatalf("round %d, %s: find(%q) = %v, want %v", round, h.name, k, got, want)
				}
			}
		}
	}
}

// TestIndexHoldsFewObjects: the index of 20,000 recipients is a few
// hundred objects on the heap, not some per recipient or per address.
func TestIndexHoldsFewObjects(t *testing.T) {
	const n = 20000
	rs := make([]recipient, n)
	for i := range rs {
		rs[i] = recipient{Guid: fmt.Sprintf("%08x-5a1e-4c0d-8e11-%012x", i, i), PrimarySmtpAddress: fmt.Sprintf("User%07d@Contoso.com", i), RecipientType: "UserMailbox",
			EmailAddresses: []string{fmt.Sprintf("smtp:user%07d@contoso.onmicrosoft.com", i)}}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := buildIndex(t, nil, rs...)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if x.find("user0000007@contoso.onmicrosoft.com") == nil {
		t.Fatal("the index finds nothing")
	}
	runtime.KeepAlive(x)
	runtime.KeepAlive(rs) // counted before: it must not go meanwhile
	if held := int64(after.HeapObjects) - int64(before.HeapObjects); held > 1000 {
		t.Errorf("the index of %d recipients holds %d objects, want at most 1,000", n, held)
	}
}
