package inspect

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testpki"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestReadFileKinds: a PEM certificate and a DER certificate are shown with
// the policy's verdict; a missing file and a PEM file without a usable
// block come back as errors a caller can test, with the message in Error.
func TestReadFileKinds(t *testing.T) {
	now := time.Now()
	pol := &smimesync.Policy{Now: func() time.Time { return now }}
	c := testpki.MustSelfSigned(t, testpki.CommonName("Alice"), testpki.Email("alice@example.com"),
		testpki.Validity(now.AddDate(0, -1, 0), now.AddDate(1, 0, 0)))
	ctx := context.Background()

	for _, in := range [][]byte{c.PEM(), c.DER} {
		f, err := Bytes(ctx, pol, "alice", in)
		if err != nil || f.Error != "" {
			t.Fatalf("Bytes: %v (%q)", err, f.Error)
		}
		if f.Kind != KindCertificate || len(f.Certificates) != 1 {
			t.Fatalf("file %+v: want one certificate", f)
		}
		if got := f.Certificates[0]; len(got.Emails) != 1 || got.Emails[0] != "alice@example.com" || got.Verdict == "" {
			t.Errorf("certificate %+v", got)
		}
	}

	missing := filepath.Join(t.TempDir(), "missing.crt")
	f, err := ReadFile(ctx, pol, missing)
	if !errors.Is(err, fs.ErrNotExist) || f.Error == "" || f.Path != missing {
		t.Errorf("missing file: %v, %+v: want fs.ErrNotExist named in Error", err, f)
	}

	f, err = Bytes(ctx, pol, "key.pem", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	if !errors.Is(err, ErrNoPEMBlock) || f.Error != ErrNoPEMBlock.Error() {
		t.Errorf("PEM without a certificate: %v, %q: want ErrNoPEMBlock", err, f.Error)
	}
}
