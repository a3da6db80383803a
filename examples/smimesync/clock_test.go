package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testclock"
)

// The commands run in-process in the tests judge certificates on the test
// clock, the one the test helpers (ldaptest.UserCerts, the demo's
// directory) make them on; SMIMESYNC_TEST_CLOCK_SHIFT shifts both.
func init() { clock = testclock.Now }

// useCorpusClock sets the binary's clock, for the length of t, to a
// moment taken from the checked-in corpus under testdata: a year after
// testdata/pkilint-mailbox-strict.pem's notAfter (it expired in 2023),
// while the RFC 9216 sample testdata/alice.crt is valid (2019–2052).
// The golden outputs judge that corpus, whose validity is fixed, so they
// must not depend on today's date or on the test clock's shift. Tests that
// call it must not run in parallel.
func useCorpusClock(t *testing.T) {
	t.Helper()
	at := pemCertificate(t, "testdata/pkilint-mailbox-strict.pem").NotAfter.AddDate(1, 0, 0)
	old := clock
	clock = func() time.Time { return at }
	t.Cleanup(func() { clock = old })
}

// pemCertificate reads the first certificate of a PEM file.
func pemCertificate(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
