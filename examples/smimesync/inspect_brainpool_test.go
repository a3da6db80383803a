package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// TestInspectBrainpool: inspect shows a certificate crypto/x509 refuses
// only for its brainpoolP256r1 key with its key named and the policy's
// note, and judges it (at a time inside its validity, taken from the
// certificate) like any other.
func TestInspectBrainpool(t *testing.T) {
	const path = "testdata/dora-brainpool.der"
	der, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smimesync.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	old := clock
	clock = func() time.Time { return c.NotBefore.Add(time.Hour) }
	t.Cleanup(func() { clock = old })

	code, stdout, stderr := runCLI(t, "inspect", path)
	if code != exitOK {
		t.Fatalf("inspect: exit %d: %s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"key         ECDSA brainpoolP256r1\n",
		"emails      dora@example.org\n",
		"verdict     keep\n",
		"note        " + smimesync.NoteKeyUnsupported + ": ECDSA brainpoolP256r1 ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, stdout)
		}
	}
}
