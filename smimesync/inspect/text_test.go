package inspect

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smimesync/go-smimesync/internal/termsafe"
	"github.com/smimesync/go-smimesync/internal/testpki"
	"github.com/smimesync/go-smimesync/smimesync"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// goldenFiles are inspected for testdata/text.golden.txt: a PEM
// certificate, a signed CMS blob and an enveloped one (not a certificate
// blob: an error), an LDIF directory with a certificate and a blob, an
// expired one and none (RFC 9216, pkilint), and a file that does not
// exist.
var goldenFiles = []string{
	"../testdata/rfc9216/certs/lamps-alice.crt",
	"../testdata/rfc9216/cms-der/signedByAliceRSA.p7m",
	"../testdata/rfc9216/cms-der/encryptedForBobRSAOaep.p7m",
	"../report/testdata/users.ldif",
	"testdata/missing.der",
}

// TestWriteTextGolden: the text `smimesync inspect` prints, with the
// clock in 2030 (Alice's certificate valid, Hanako's expired).
func TestWriteTextGolden(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	doc, err := ReadFiles(context.Background(), &smimesync.Policy{Now: func() time.Time { return now }}, goldenFiles)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "testdata/missing.der") {
		t.Errorf("ReadFiles: %v, want an error naming testdata/missing.der, wrapping fs.ErrNotExist", err)
	}
	if len(doc.Files) != len(goldenFiles) || doc.Failed() != 2 {
		t.Fatalf("%d files, %d failed; want %d, 2: %v", len(doc.Files), doc.Failed(), len(goldenFiles), err)
	}
	var b strings.Builder
	if err := doc.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "text.golden.txt")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("%s differs (-want +got); run with -update if intended:\n%s", path, diff)
	}
}

// TestWriteTextEscapes: a certificate whose subject, issuer and e-mail
// address carry escape sequences, in a file whose name does, is shown
// with them escaped.
func TestWriteTextEscapes(t *testing.T) {
	now := time.Now()
	der := testpki.MustSelfSigned(t, testpki.SerialNumber(7),
		testpki.Subject(pkix.Name{CommonName: strings.ToValidUTF8(termsafe.Hostile, ""), Organization: []string{"\x1b[31mRed Corp"}}),
		testpki.Validity(now.Add(-time.Hour), now.Add(24*time.Hour)), testpki.KeyUsage(x509.KeyUsageDigitalSignature),
		testpki.Email("mallory\x1b[2J@example.com")).DER
	f, err := Bytes(context.Background(), &smimesync.Policy{Now: func() time.Time { return now }}, "evil\x1b[2J.der", der)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := (Document{Files: []File{f, {Path: "x", Error: termsafe.Hostile}}}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `mallory\x1b[2J`) || !strings.Contains(b.String(), `evil\x1b[2J.der`) {
		t.Fatalf("the output does not show the escaped subject and file name:\n%s", b.String())
	}
	if bad := termsafe.Unsafe(b.String()); bad != "" {
		t.Errorf("WriteText prints %q raw:\n%q", bad, b.String())
	}
}
