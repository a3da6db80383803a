package graph_test

import (
	"bufio"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/smimesync/go-smimesync/cloud/graph"
)

func readCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	der, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCertificateUserIDGolden checks every format against the values
// testdata/gen.sh computed with openssl.
func TestCertificateUserIDGolden(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "values.golden"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, rest, _ := strings.Cut(line, " ")
		format, want, _ := strings.Cut(rest, " ")
		n++
		t.Run(file+"/"+format, func(t *testing.T) {
			got, err := graph.CertificateUserID(readCert(t, file), graph.Format(format))
			if want == "-" {
				var ce *graph.CertificateError
				if !errors.Is(err, graph.ErrNoValue) || !errors.As(err, &ce) || len(ce.Fingerprint) != 64 {
					t.Fatalf("got %q, %v; want a *CertificateError wrapping ErrNoValue", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
	if n != 12 {
		t.Fatalf("read %d golden lines, want 12", n)
	}
}

func TestIssuerStringOfCASubject(t *testing.T) {
	// ManagedIssuers are written from a CA's subject; it must equal what
	// the issued certificate's value carries.
	ca := readCert(t, "ca-dc.der")
	got, err := graph.IssuerString(ca.RawSubject)
	if err != nil {
		t.Fatal(err)
	}
	v, err := graph.CertificateUserID(readCert(t, "alice.der"), graph.FormatIssuerSerial)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "X509:<I>"+got+"<SR>") {
		t.Fatalf("value %q does not start with the CA subject %q", v, got)
	}
	if _, err := graph.IssuerString([]byte{0x30, 0x03, 0x01}); err == nil {
		t.Fatal("a truncated name gave no error")
	}
}

func TestValues(t *testing.T) {
	var certs [][]byte
	for _, f := range []string{"carol.der", "alice.der", "bob.der", "alice.der"} {
		certs = append(certs, readCert(t, f).Raw)
	}
	certs = append(certs, []byte("not a certificate"))
	vals, errs := graph.Values(certs, graph.FormatSKI)
	// bob has no SKI, the garbage does not parse; alice appears once.
	if len(vals) != 2 || len(errs) != 2 {
		t.Fatalf("values %q, errors %v; want 2 and 2", vals, errs)
	}
	for _, err := range errs {
		var ce *graph.CertificateError
		if !errors.As(err, &ce) {
			t.Errorf("error %v is not a *CertificateError", err)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want graph.Format
		err  bool
	}{
		{"", graph.FormatIssuerSerial, false},
		{"issuer_serial", graph.FormatIssuerSerial, false},
		{"SKI", graph.FormatSKI, false},
		{"sha1_pukey", graph.FormatSHA1PublicKey, false},
		{"rfc822", graph.FormatRFC822, false},
		{"subject", "", true},
	} {
		got, err := graph.ParseFormat(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseFormat(%q) = %q, %v", tc.in, got, err)
		}
		if tc.err && !errors.Is(err, graph.ErrConfig) {
			t.Errorf("ParseFormat(%q) error %v does not wrap ErrConfig", tc.in, err)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	var c graph.Config
	in := "certificate_user_ids: {format: ski, managed_issuers: [\"CN=CA\"], manage_all_of_format: true}\nlookup: batch\nbatch_wait: 10ms\nretry: {base: 2s, max_tries: 3}\n"
	if err := yaml.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.CertificateUserIDs.Format != graph.FormatSKI || c.Lookup != graph.LookupPerEntry || c.BatchWait.Milliseconds() != 10 ||
		c.Retry.Base.Seconds() != 2 || c.Retry.MaxTries != 3 || len(c.CertificateUserIDs.ManagedIssuers) != 1 || !c.CertificateUserIDs.ManageAllOfFormat {
		t.Fatalf("decoded %+v", c)
	}
	err := yaml.Unmarshal([]byte("certificate_user_ids: {format: upn}\n"), &c)
	if !errors.Is(err, graph.ErrConfig) {
		t.Fatalf("unknown format: %v, want an error wrapping ErrConfig", err)
	}
}
