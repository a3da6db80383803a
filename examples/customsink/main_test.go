package main

import (
	"bytes"
	"crypto/x509"
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// The certificates are made on the test clock; the policy judges on it.
func init() { clock = testclock.Now }

func cert(t *testing.T, addr string, usage x509.KeyUsage, notAfter time.Time) []byte {
	t.Helper()
	return testpki.MustSelfSigned(t, testpki.SerialNumber(7), testpki.Email(addr), testpki.KeyUsage(usage),
		testpki.NotBefore(testclock.Now().Add(-time.Hour)), testpki.NotAfter(notAfter)).DER
}

func TestCustomSinkCSV(t *testing.T) {
	year := testclock.Now().Add(365 * 24 * time.Hour)
	path := filepath.Join(t.TempDir(), "users.ldif")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	err = directory.WriteLDIF(f,
		&directory.Entry{DN: "CN=Alice", Mail: "alice@example.com", UserCertificate: [][]byte{
			cert(t, "alice@example.com", x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement, year),
			cert(t, "alice@example.com", x509.KeyUsageDigitalSignature, year), // signing only: not in the CSV
		}},
		&directory.Entry{DN: "CN=NoMail", UserCertificate: [][]byte{cert(t, "x@example.com", x509.KeyUsageKeyAgreement, year)}},
	)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	var out, errb bytes.Buffer
	if code := run([]string{path}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1][0] != "alice@example.com" || rows[1][1] != "userCertificate" || len(rows[1][2]) != 64 || rows[1][3] != year.UTC().Format(time.DateOnly) {
		t.Errorf("CSV = %q, want a header and alice's encryption certificate", rows)
	}
	if code := run(nil, &out, &errb); code != 2 {
		t.Errorf("no argument: exit %d, want 2", code)
	}
}
