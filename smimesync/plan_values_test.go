package smimesync_test

import (
	"context"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// A plan's kept and dropped values say which certificate they are:
// subject, issuer, serial and not after, for a blob too.
func TestPlanValuesNameTheCertificate(t *testing.T) {
	ca := newTestCA(t, "Values CA")
	good := mustParse(t, ca.issue(t, leaf{email: "alice@example.com"}))
	expired := mustParse(t, ca.issue(t, leaf{email: "alice@example.com", notAfter: testNow.Add(-time.Hour)}))
	e := user(1, "alice", good.Raw)
	e.UserSMIMECertificate = [][]byte{certsOnly(t, expired.Raw, ca.cert.Raw)}
	s := newSyncer(writeLDIF(t, e), cloudtest.NewMemorySink(), nil)
	plan, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := testrows.Of(t, plan)[0]
	if len(c.Keep) != 1 || len(c.Drop) != 1 {
		t.Fatalf("keep %d drop %d, want 1 and 1", len(c.Keep), len(c.Drop))
	}
	check := func(what string, v smimesync.Value, want *smimesync.Certificate) {
		t.Helper()
		if v.Subject != want.Subject() || v.Issuer != "CN=Values CA" || v.Serial != want.Serial.String() || !v.NotAfter.Equal(want.NotAfter) {
			t.Errorf("%s: %q %q %q %v, want %q %q %q %v", what, v.Subject, v.Issuer, v.Serial, v.NotAfter, want.Subject(), "CN=Values CA", want.Serial, want.NotAfter)
		}
	}
	check("kept", c.Keep[0], good)
	check("dropped blob", c.Drop[0], expired)
}
