package graph

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestManaged(t *testing.T) {
	const (
		pn      = "X509:<PN>alice@contoso.com"
		is      = "X509:<I>DC=com,DC=contoso,CN=CA<S>CN=Alice"
		sr      = "X509:<I>DC=com,DC=contoso,CN=CA<SR>0a1b"
		srOther = "X509:<I>C=EE,CN=ESTEID2018<SR>77"
		srBad   = "X509:<I>CN=CA<SR>not-hex"
		ski     = "X509:<SKI>ABCD"
		skiMine = "X509:<SKI>0123"
		sha     = "X509:<SHA1-PUKEY>ABCD"
		rfc     = "X509:<RFC822>alice@contoso.com"
		lower   = "x509:<SKI>ABCD"
	)
	all := []string{pn, is, sr, srOther, srBad, ski, skiMine, sha, rfc, lower}
	contoso := writing{issuers: map[string]bool{"DC=com,DC=contoso,CN=CA": true}}
	for _, tc := range []struct {
		name string
		cfg  CertificateUserIDs
		w    writing
		want []string
	}{
		// The default: only the issuers of the certificates being written.
		{"default, writing contoso", CertificateUserIDs{}, contoso, []string{sr}},
		{"default, writing nothing", CertificateUserIDs{}, writing{}, nil},
		{"default, writing another CA", CertificateUserIDs{}, writing{issuers: map[string]bool{"CN=Other": true}}, nil},
		{"all of format", CertificateUserIDs{ManageAllOfFormat: true}, writing{}, []string{sr, srOther}},
		{"managed issuers", CertificateUserIDs{Format: FormatIssuerSerial, ManagedIssuers: []string{"DC=com,DC=contoso,CN=CA"}}, writing{}, []string{sr}},
		{"managed issuers win over the written ones", CertificateUserIDs{ManagedIssuers: []string{"C=EE,CN=ESTEID2018"}}, contoso, []string{srOther}},
		// Formats without an issuer: only the values being written.
		{"ski default", CertificateUserIDs{Format: FormatSKI}, writing{derived: []string{skiMine}}, []string{skiMine}},
		{"ski default, writing nothing", CertificateUserIDs{Format: FormatSKI}, writing{}, nil},
		{"ski all", CertificateUserIDs{Format: FormatSKI, ManageAllOfFormat: true}, writing{}, []string{ski, skiMine}},
		{"sha1 default", CertificateUserIDs{Format: FormatSHA1PublicKey}, writing{}, nil},
		{"sha1 all", CertificateUserIDs{Format: FormatSHA1PublicKey, ManageAllOfFormat: true}, writing{}, []string{sha}},
		{"rfc822 managed issuers ignored", CertificateUserIDs{Format: FormatRFC822, ManagedIssuers: []string{"ignored"}}, writing{}, nil},
		{"rfc822 all", CertificateUserIDs{Format: FormatRFC822, ManagedIssuers: []string{"ignored"}, ManageAllOfFormat: true}, writing{}, []string{rfc}},
	} {
		m := newManagedSet(tc.cfg)
		var got []string
		for _, v := range all {
			if m.managed(v, tc.w) {
				got = append(got, v)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %+v: managed %q, want %q", tc.name, tc.cfg, got, tc.want)
		}
	}
}

func TestMerge(t *testing.T) {
	m := newManagedSet(CertificateUserIDs{Format: FormatSKI, ManageAllOfFormat: true})
	vals := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s%02d", prefix, i))
		}
		return out
	}
	for _, tc := range []struct {
		name             string
		current, derived []string
		want, dropped    []string
	}{
		{"empty", nil, nil, nil, nil},
		{"add", []string{"X509:<PN>a"}, []string{"X509:<SKI>01"}, []string{"X509:<PN>a", "X509:<SKI>01"}, nil},
		{"replace managed, keep others", []string{"X509:<SKI>old", "X509:<PN>a", "X509:<SKI>01"}, []string{"X509:<SKI>01", "X509:<SKI>02"},
			[]string{"X509:<PN>a", "X509:<SKI>01", "X509:<SKI>02"}, nil},
		{"remove all managed", []string{"X509:<SKI>old", "X509:<PN>a"}, nil, []string{"X509:<PN>a"}, nil},
		{"value an admin added too", []string{"X509:<PN>a"}, []string{"X509:<PN>a"}, []string{"X509:<PN>a"}, nil},
		{"full: derived left out", vals("X509:<PN>", 8), vals("X509:<SKI>", 4), append(vals("X509:<PN>", 8), vals("X509:<SKI>", 2)...), vals("X509:<SKI>", 4)[2:]},
		{"unmanaged never pushed out", vals("X509:<PN>", 10), vals("X509:<SKI>", 1), vals("X509:<PN>", 10), vals("X509:<SKI>", 1)},
		{"duplicates in current", []string{"X509:<PN>a", "X509:<PN>a"}, nil, []string{"X509:<PN>a"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, dropped := m.merge(tc.current, writing{derived: tc.derived})
			if !slices.Equal(got, tc.want) || !slices.Equal(dropped, tc.dropped) {
				t.Errorf("merge = %q, dropped %q; want %q, %q", got, dropped, tc.want, tc.dropped)
			}
			if len(got) > maxValues {
				t.Errorf("%d values, more than %d", len(got), maxValues)
			}
		})
	}
	if !sameValues([]string{"a", "b"}, []string{"b", "a"}) || sameValues([]string{"a"}, []string{"a", "a"}) || sameValues([]string{"a", "c"}, []string{"a", "b"}) {
		t.Error("sameValues is wrong")
	}
}

// TestBackoff: the policy's backoff stays within its bounds (Retry-After
// parsing is tested in internal/retry).
func TestBackoff(t *testing.T) {
	p := RetryPolicy{Base: 100, Cap: 1000}.withDefaults()
	for n := 1; n < 70; n++ {
		d := p.backoff(n)
		limit := min(p.Cap, p.Base<<min(n-1, 30))
		if d < limit/2 || d > limit {
			t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, limit/2, limit)
		}
	}
}

// TestRememberKeepsNewerRecords: a listing that started before a PATCH (or
// a fresh read) does not replace the record the PATCH left.
func TestRememberKeepsNewerRecords(t *testing.T) {
	s := &Sink{known: map[string]*record{}}
	t0 := time.Now()
	patched := &record{id: "U1", certIDs: []string{"X509:<SKI>02"}, certIDsKnown: true, at: t0.Add(time.Second)}
	s.remember(patched)
	listed := &record{id: "u1", upn: "a@contoso.com", certIDs: []string{"X509:<SKI>01"}, certIDsKnown: true, at: t0}
	s.remember(listed)
	if got := s.known["u1"]; got != patched {
		t.Fatalf("an older listing replaced the record: %+v", got)
	}
	newer := &record{id: "u1", at: t0.Add(2 * time.Second)}
	s.remember(newer)
	if got := s.known["u1"]; got != newer {
		t.Fatalf("a newer record was not kept: %+v", got)
	}
}
