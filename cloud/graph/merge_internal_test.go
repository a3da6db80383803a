package graph

import (
	"fmt"
	"slices"
	"testing"
)

func TestManaged(t *testing.T) {
	const (
		pn      = "X509:<PN>alice@contoso.com"
		is      = "X509:<I>DC=com,DC=contoso,CN=CA<S>CN=Alice"
		sr      = "X509:<I>DC=com,DC=contoso,CN=CA<SR>0a1b"
		srOther = "X509:<I>C=EE,CN=ESTEID2018<SR>77"
		srBad   = "X509:<I>CN=CA<SR>not-hex"
		ski     = "X509:<SKI>ABCD"
		sha     = "X509:<SHA1-PUKEY>ABCD"
		rfc     = "X509:<RFC822>alice@contoso.com"
		lower   = "x509:<SKI>ABCD"
	)
	all := []string{pn, is, sr, srOther, srBad, ski, sha, rfc, lower}
	for _, tc := range []struct {
		cfg  CertificateUserIDs
		want []string
	}{
		{CertificateUserIDs{}, []string{sr, srOther}},
		{CertificateUserIDs{Format: FormatIssuerSerial, ManagedIssuers: []string{"DC=com,DC=contoso,CN=CA"}}, []string{sr}},
		{CertificateUserIDs{Format: FormatSKI}, []string{ski}},
		{CertificateUserIDs{Format: FormatSHA1PublicKey}, []string{sha}},
		{CertificateUserIDs{Format: FormatRFC822, ManagedIssuers: []string{"ignored"}}, []string{rfc}},
	} {
		m := newManagedSet(tc.cfg)
		var got []string
		for _, v := range all {
			if m.managed(v) {
				got = append(got, v)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: managed %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

func TestMerge(t *testing.T) {
	m := newManagedSet(CertificateUserIDs{Format: FormatSKI})
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
			got, dropped := m.merge(tc.current, tc.derived)
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

func TestRetryAfterAndBackoff(t *testing.T) {
	for in, want := range map[string]float64{"3": 3, "0.25": 0.25, " 1.5 ": 1.5} {
		d, ok := retryAfter(in)
		if !ok || d.Seconds() != want {
			t.Errorf("retryAfter(%q) = %v, %v", in, d, ok)
		}
	}
	for _, in := range []string{"", "soon", "-1"} {
		if _, ok := retryAfter(in); ok {
			t.Errorf("retryAfter(%q) parsed", in)
		}
	}
	p := RetryPolicy{Base: 100, Cap: 1000}.withDefaults()
	for n := 1; n < 70; n++ {
		d := p.backoff(n)
		limit := min(p.Cap, p.Base<<min(n-1, 30))
		if d < limit/2 || d > limit {
			t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, limit/2, limit)
		}
	}
}
