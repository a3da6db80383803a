package main

import (
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/cmssign"
	"github.com/smimesync/go-smimesync/internal/testpki"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/inspect"
)

// TestInspectSigningTimeOutsideValidity: inspect shows a blob signed after
// its certificate's notAfter as verified, with the signing time, the
// finding, and the policy's note; the blob is kept.
func TestInspectSigningTimeOutsideValidity(t *testing.T) {
	now := clock()
	late := testpki.MustSelfSigned(t, testpki.SerialNumber(42), testpki.CommonName("Late Signer"),
		testpki.Email("late@example.com"), testpki.Validity(now.AddDate(0, -1, 0), now.AddDate(0, 1, 0)),
		testpki.KeyUsage(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement))
	cert, key := late.X509(), late.Key
	signedAt := now.AddDate(0, 2, 0).UTC().Truncate(time.Second)
	blob, err := cmssign.Sign([]byte("capabilities"), cert, key, nil, signedAt)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "late.p7m")
	if err := os.WriteFile(path, blob, 0o600); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, "inspect", path)
	if code != exitOK {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"signed at  " + signedAt.Format(time.RFC3339) + " (outside the signer certificate's validity",
		"signature    verified",
		"blob verdict keep",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runCLI(t, "inspect", "--json", path)
	if code != exitOK {
		t.Fatalf("inspect --json: exit %d: %s", code, stderr)
	}
	var doc struct {
		Files []struct {
			Blob *inspect.Blob
		}
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Files) != 1 || doc.Files[0].Blob == nil {
		t.Fatalf("inspect --json: %s", stdout)
	}
	b := doc.Files[0].Blob
	if !b.SignatureVerified || len(b.Signers) != 1 || !b.Signers[0].SigningTimeOutsideValidity || b.Signers[0].SigningTime != signedAt.Format(time.RFC3339) {
		t.Errorf("blob %+v: want a verified signature, one signer, signed at %s outside its validity", b, signedAt)
	}
	noted := false
	for _, n := range b.Notes {
		noted = noted || strings.HasPrefix(n, smimesync.NoteSigningTimeOutsideValidity+": ")
	}
	if !noted || b.Verdict != "keep" {
		t.Errorf("verdict %s, notes %q: want keep with a %s note", b.Verdict, b.Notes, smimesync.NoteSigningTimeOutsideValidity)
	}
}
