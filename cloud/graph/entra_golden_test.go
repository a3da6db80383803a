package graph_test

import (
	"bufio"
	"crypto/sha1"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/graph"
)

// entraGolden reads testdata/entra-powershell/expected.txt: the values
// Microsoft's Entra PowerShell module computes for contoso-user.der, by
// the module's mapping name (see SOURCE.txt there).
func entraGolden(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "entra-powershell", "expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mapping, value, ok := strings.Cut(line, " ")
		if !ok || value == "" {
			t.Fatalf("expected.txt: malformed line %q", line)
		}
		want[mapping] = value
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return want
}

// TestCertificateUserIDEntraGolden checks the package's values, byte for
// byte, against those Microsoft's own module computes for the certificate
// of its test (microsoftgraph/entra-powershell,
// Get-EntraUserCertificateUserIdsFromCertificate.Tests.ps1): the issuer
// root-first without spaces, the serial big-endian in lower-case hex, SKI
// and SHA1-PUKEY in upper-case hex. Every mapping of the file is either
// checked or named here as one the package does not write, so a line
// added to the file cannot go unchecked.
func TestCertificateUserIDEntraGolden(t *testing.T) {
	want := entraGolden(t)
	cert := readCert(t, filepath.Join("entra-powershell", "contoso-user.der"))
	dn := func(der []byte) string {
		s, err := graph.IssuerString(der)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		mapping string
		format  graph.Format // the format that writes it, if any
		// got builds the value from the package's DN writer, for the
		// mappings the package has no format for but whose parts it writes.
		got func() string
	}{
		{mapping: "IssuerAndSerialNumber", format: graph.FormatIssuerSerial},
		{mapping: "SKI", format: graph.FormatSKI},
		{mapping: "SHA1PublicKey", format: graph.FormatSHA1PublicKey},
		// Not formats of this package, but IssuerString writes their DNs
		// (it fills managed_issuers from a CA's subject).
		{mapping: "Subject", got: func() string { return "X509:<S>" + dn(cert.RawSubject) }},
		{mapping: "IssuerAndSubject", got: func() string { return "X509:<I>" + dn(cert.RawIssuer) + "<S>" + dn(cert.RawSubject) }},
		// Not written by this package at all: X509:<PN> binds a UPN, which
		// Entra can match without certificateUserIds.
		{mapping: "PrincipalName"},
	} {
		t.Run(tc.mapping, func(t *testing.T) {
			w, ok := want[tc.mapping]
			if !ok {
				t.Fatalf("expected.txt has no %s value", tc.mapping)
			}
			delete(want, tc.mapping)
			var got string
			switch {
			case tc.format != "":
				var err error
				if got, err = graph.CertificateUserID(cert, tc.format); err != nil {
					t.Fatal(err)
				}
			case tc.got != nil:
				got = tc.got()
			default:
				t.Logf("%s (%s) is not a format of this package", tc.mapping, w)
				return
			}
			if got != w {
				t.Errorf("got  %s\nwant %s (Microsoft's module)", got, w)
			}
		})
	}
	for mapping := range want {
		t.Errorf("expected.txt's %s value is not checked", mapping)
	}

	// RFC822: the module's test expects nothing, and the certificate holds
	// no e-mail address (its SAN holds a UPN only): no value.
	if v, err := graph.CertificateUserID(cert, graph.FormatRFC822); !errors.Is(err, graph.ErrNoValue) {
		t.Errorf("rfc822: got %q, %v; want an error wrapping ErrNoValue", v, err)
	}
}

// TestSHA1PublicKeyIsTheThumbprint: the golden SHA1-PUKEY value tells the
// two readings apart. Microsoft's module hashes the whole certificate;
// MS-PKCA's reading (the public key, as the SubjectPublicKeyInfo or as the
// key's bits) gives other values, which the package must not write.
func TestSHA1PublicKeyIsTheThumbprint(t *testing.T) {
	cert := readCert(t, filepath.Join("entra-powershell", "contoso-user.der"))
	want := entraGolden(t)["SHA1PublicKey"]
	hexOf := func(b []byte) string {
		sum := sha1.Sum(b)
		return "X509:<SHA1-PUKEY>" + strings.ToUpper(hex.EncodeToString(sum[:]))
	}
	if got := hexOf(cert.Raw); got != want {
		t.Fatalf("Microsoft's value %s is not the SHA-1 of the whole certificate (%s)", want, got)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"SubjectPublicKeyInfo":    cert.RawSubjectPublicKeyInfo,
		"subjectPublicKey's bits": spki.PublicKey.Bytes,
	} {
		if hexOf(b) == want {
			t.Fatalf("the golden value equals the SHA-1 of the %s: it cannot tell the readings apart", name)
		}
	}
	if got, err := graph.CertificateUserID(cert, graph.FormatSHA1PublicKey); err != nil || got != want {
		t.Fatalf("CertificateUserID = %q, %v; want %s", got, err, want)
	}
}
