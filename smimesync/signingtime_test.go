package smimesync_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/smimesync"
)

// TestSigningTimeOutsideValidity pins what verification reports when a
// blob's signing time lies outside its signer's validity: the signature is
// checked all the same (Verified says whether it is right), the signer
// reports the finding, and the policy notes it without dropping the blob.
func TestSigningTimeOutsideValidity(t *testing.T) {
	ca := newTestCA(t, "Signing Time CA")
	const me = "alice@example.com"
	// Valid testNow ± 180 days.
	der, key := ca.issueKey(t, leaf{email: me})
	tamper := func(b []byte) []byte {
		i := bytes.Index(b, []byte("capabilities"))
		if i < 0 {
			t.Fatal("content not found in the blob")
		}
		b = bytes.Clone(b)
		b[i] ^= 0x20
		return b
	}
	tests := []struct {
		name         string
		blob         []byte
		signedAt     time.Time
		wantVerified bool
		wantInvalid  bool // VerifyError wraps ErrSignatureInvalid
		wantOutside  bool
		wantReasons  []smimesync.Reason
	}{
		{name: "signed inside validity", blob: ca.signedBlobAt(t, der, key, testNow), signedAt: testNow,
			wantVerified: true},
		{name: "signed after notAfter, good signature", blob: ca.signedBlobAt(t, der, key, testNow.AddDate(1, 0, 0)), signedAt: testNow.AddDate(1, 0, 0),
			wantVerified: true, wantOutside: true},
		{name: "signed before notBefore, good signature", blob: ca.signedBlobAt(t, der, key, testNow.AddDate(-1, 0, 0)), signedAt: testNow.AddDate(-1, 0, 0),
			wantVerified: true, wantOutside: true},
		{name: "signed after notAfter and tampered", blob: tamper(ca.signedBlobAt(t, der, key, testNow.AddDate(1, 0, 0))), signedAt: testNow.AddDate(1, 0, 0),
			wantInvalid: true, wantOutside: true, wantReasons: []smimesync.Reason{smimesync.ReasonBadSignature}},
		{name: "signed inside validity and tampered", blob: tamper(ca.signedBlobAt(t, der, key, testNow)), signedAt: testNow,
			wantInvalid: true, wantReasons: []smimesync.Reason{smimesync.ReasonBadSignature}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := smimesync.ParseSMIMECertificate(tt.blob)
			if err != nil {
				t.Fatal(err)
			}
			if b.Verified != tt.wantVerified {
				t.Errorf("Verified = %v (%v), want %v", b.Verified, b.VerifyError, tt.wantVerified)
			}
			if got := errors.Is(b.VerifyError, smimesync.ErrSignatureInvalid); got != tt.wantInvalid {
				t.Errorf("VerifyError = %v: wraps ErrSignatureInvalid %v, want %v", b.VerifyError, got, tt.wantInvalid)
			}
			if errors.Is(b.VerifyError, smimesync.ErrCannotVerify) {
				t.Errorf("VerifyError = %v: a signing time must not make a signature uncheckable", b.VerifyError)
			}
			if len(b.Signers) != 1 {
				t.Fatalf("%d signers, want 1", len(b.Signers))
			}
			s := &b.Signers[0]
			if !s.SigningTime.Equal(tt.signedAt.Truncate(time.Second)) {
				t.Errorf("SigningTime = %s, want %s", s.SigningTime, tt.signedAt)
			}
			if got := s.SigningTimeOutsideValidity(); got != tt.wantOutside {
				t.Errorf("SigningTimeOutsideValidity = %v, want %v", got, tt.wantOutside)
			}

			p := smimesync.Policy{Now: func() time.Time { return testNow }, RequireValidSignature: true}
			v := p.Evaluate(context.Background(), &directory.Entry{Mail: me, UserSMIMECertificate: [][]byte{tt.blob}})
			d := v.UserSMIMECertificate[0]
			if !slices.Equal(d.Reasons, tt.wantReasons) {
				t.Errorf("Reasons = %v, want %v (notes %q)", d.Reasons, tt.wantReasons, d.Notes)
			}
			noted := slices.ContainsFunc(d.Notes, func(n string) bool {
				return strings.HasPrefix(n, smimesync.NoteSigningTimeOutsideValidity+": ")
			})
			if noted != tt.wantOutside {
				t.Errorf("notes %q: signing-time note %v, want %v", d.Notes, noted, tt.wantOutside)
			}
		})
	}
}

// TestHelpersSignAtTheTestClock checks that the package's blob helper puts
// the test clock's time, shift included, into signingTime: pkcs7's own
// builder would put the real time.Now() there, and a shifted run would then
// find every signing time outside its certificate's validity.
func TestHelpersSignAtTheTestClock(t *testing.T) {
	ca := newTestCA(t, "Helper CA")
	der, key := ca.issueKey(t, leaf{email: "bob@example.com"})
	b, err := smimesync.ParseSMIMECertificate(ca.signedBlob(t, der, key))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Signers) != 1 || !b.Verified {
		t.Fatalf("signers %d, verified %v (%v)", len(b.Signers), b.Verified, b.VerifyError)
	}
	got := b.Signers[0].SigningTime
	if !got.Equal(testNow) {
		t.Errorf("signingTime = %s, want testNow %s", got, testNow)
	}
	// testNow is the shifted clock, not the real one.
	want := testclock.Current().Apply(time.Now())
	if d := want.Sub(got); d < -time.Minute || d > 10*time.Minute {
		t.Errorf("signingTime %s is %s from the test clock %s (shift %+v)", got, d, want, testclock.Current())
	}
}
