package graph

import (
	"slices"
	"testing"
)

// TestSameBinding: the hex and the address compare without regard to
// case; the "X509:" prefix, the tag and the issuer DN do not.
func TestSameBinding(t *testing.T) {
	for _, tc := range []struct {
		f    Format
		a, b string
		want bool
	}{
		{FormatSKI, "X509:<SKI>C6F4E96CAAD8", "X509:<SKI>c6f4e96caad8", true},
		{FormatSKI, "X509:<SKI>C6F4E96CAAD8", "X509:<SKI>C6F4E96CAAD9", false},
		{FormatSKI, "X509:<SKI>C6F4E96CAAD8", "x509:<SKI>C6F4E96CAAD8", false}, // the prefix is case-sensitive
		{FormatSKI, "X509:<SKI>C6F4E96CAAD8", "X509:<ski>c6f4e96caad8", false}, // and so is the tag
		{FormatSHA1PublicKey, "X509:<SHA1-PUKEY>34BE02DC", "X509:<SHA1-PUKEY>34be02dc", true},
		{FormatSHA1PublicKey, "X509:<SHA1-PUKEY>34BE02DC", "X509:<SKI>34BE02DC", false},
		{FormatIssuerSerial, "X509:<I>CN=Contoso<SR>1e8c97", "X509:<I>CN=Contoso<SR>1E8C97", true},
		{FormatIssuerSerial, "X509:<I>CN=Contoso<SR>1e8c97", "X509:<I>CN=CONTOSO<SR>1e8c97", false}, // the DN exactly
		{FormatIssuerSerial, "X509:<I>CN=Contoso<SR>1e8c97", "X509:<I>CN=Contoso<S>CN=User", false},
		{"", "X509:<I>CN=Contoso<SR>1e8c97", "X509:<I>CN=Contoso<SR>1E8C97", true},
		{FormatRFC822, "X509:<RFC822>alice@contoso.com", "X509:<RFC822>Alice@Contoso.com", true},
		{FormatRFC822, "X509:<RFC822>alice@contoso.com", "X509:<PN>alice@contoso.com", false},
	} {
		if got := sameBinding(tc.f, tc.a, tc.b); got != tc.want {
			t.Errorf("sameBinding(%q, %q, %q) = %v, want %v", tc.f, tc.a, tc.b, got, tc.want)
		}
		if got := sameBinding(tc.f, tc.b, tc.a); got != tc.want {
			t.Errorf("sameBinding(%q, %q, %q) = %v, want %v (not symmetric)", tc.f, tc.b, tc.a, got, tc.want)
		}
	}
}

// TestMergeOtherCase: an existing value that is a derived one in another
// case is replaced by the derived spelling, never kept beside it (a
// duplicate Entra refuses); a value of another certificate, or with a
// mis-spelt prefix, is left alone.
func TestMergeOtherCase(t *testing.T) {
	const (
		pn        = "X509:<PN>alice@contoso.com"
		skiUpper  = "X509:<SKI>C6F4E96CAAD84640361F9FB5F74F6308247CB8B4"
		skiLower  = "X509:<SKI>c6f4e96caad84640361f9fb5f74f6308247cb8b4"
		skiOther  = "X509:<SKI>00112233445566778899aabbccddeeff00112233"
		shaUpper  = "X509:<SHA1-PUKEY>34BE02DCEE9ECDF8BC5C16595A73F1B201875FEA"
		shaLower  = "X509:<SHA1-PUKEY>34be02dcee9ecdf8bc5c16595a73f1b201875fea"
		srLower   = "X509:<I>CN=Contoso<SR>1e8c974144bf86964423fa6464082d8a"
		srUpper   = "X509:<I>CN=Contoso<SR>1E8C974144BF86964423FA6464082D8A"
		rfcCert   = "X509:<RFC822>Alice@Contoso.com"
		rfcLower  = "X509:<RFC822>alice@contoso.com"
		badPrefix = "x509:<SKI>c6f4e96caad84640361f9fb5f74f6308247cb8b4"
	)
	for _, tc := range []struct {
		name    string
		cfg     CertificateUserIDs
		current []string
		derived string
		want    []string
	}{
		{"ski", CertificateUserIDs{Format: FormatSKI}, []string{pn, skiLower, skiOther}, skiUpper, []string{pn, skiOther, skiUpper}},
		{"ski, already upper", CertificateUserIDs{Format: FormatSKI}, []string{skiUpper, pn}, skiUpper, []string{pn, skiUpper}},
		{"ski, prefix mis-spelt: not ours", CertificateUserIDs{Format: FormatSKI}, []string{badPrefix}, skiUpper, []string{badPrefix, skiUpper}},
		{"sha1_pukey", CertificateUserIDs{Format: FormatSHA1PublicKey}, []string{shaLower}, shaUpper, []string{shaUpper}},
		// managed_issuers names another CA: the value is still the one
		// being written.
		{"issuer_serial, other managed issuer", CertificateUserIDs{ManagedIssuers: []string{"CN=Other"}}, []string{srUpper}, srLower, []string{srLower}},
		{"rfc822", CertificateUserIDs{Format: FormatRFC822}, []string{rfcLower}, rfcCert, []string{rfcCert}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManagedSet(tc.cfg)
			next, dropped := m.merge(tc.current, writing{derived: []string{tc.derived}})
			if !slices.Equal(next, tc.want) || dropped != nil {
				t.Fatalf("merge(%q) = %q, dropped %q; want %q", tc.current, next, dropped, tc.want)
			}
			// The next pass finds the derived spelling: nothing to write.
			again, _ := m.merge(next, writing{derived: []string{tc.derived}})
			if !sameValues(next, again) {
				t.Fatalf("second pass: %q, want %q unchanged", again, next)
			}
		})
	}
}
