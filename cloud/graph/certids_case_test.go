package graph_test

import (
	"context"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
)

// otherCase spells v's last part (the hex, the serial, the address: what
// follows the last '>') in the other case.
func otherCase(v string) string {
	i := strings.LastIndexByte(v, '>') + 1
	tail := v[i:]
	if s := strings.ToUpper(tail); s != tail {
		return v[:i] + s
	}
	return v[:i] + strings.ToLower(tail)
}

// TestWriteExistingValueInOtherCase: a user already holds the binding of
// the certificate being written, spelt in the other case (lower-case SKI
// or SHA-1 hex, as certutil prints them; an upper-case serial). The sink
// replaces it once by Microsoft's spelling, in one PATCH that Entra
// accepts (no duplicate beside it), and the next pass writes nothing.
func TestWriteExistingValueInOtherCase(t *testing.T) {
	const admin = "X509:<PN>alice@contoso.com"
	for _, tc := range []struct {
		name string
		cfg  graph.CertificateUserIDs
	}{
		{"ski", graph.CertificateUserIDs{Format: graph.FormatSKI}},
		{"sha1_pukey", graph.CertificateUserIDs{Format: graph.FormatSHA1PublicKey}},
		{"rfc822", graph.CertificateUserIDs{Format: graph.FormatRFC822}},
		// managed_issuers names another CA, so only the value's being the
		// one written ties it to the sink.
		{"issuer_serial", graph.CertificateUserIDs{ManagedIssuers: []string{"CN=Some Other CA"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.cfg.Format
			if f == "" {
				f = graph.FormatIssuerSerial
			}
			want := mustValue(t, "alice.der", f)
			old := otherCase(want)
			if old == want {
				t.Fatalf("otherCase(%q) changed nothing", want)
			}
			e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com", CertificateUserIDs: []string{admin, old}}}, nil,
				func(c *graph.Config) { c.CertificateUserIDs = tc.cfg })
			r := &cloud.Recipient{ID: "u1", Name: "alice@contoso.com"}
			ctx := context.Background()
			if err := e.sink.Write(ctx, r, certs(t, "alice.der")); err != nil {
				t.Fatalf("Write with %q already there: %v", old, err)
			}
			if u, _ := e.graph.User("u1"); !sameSet(u.CertificateUserIDs, []string{admin, want}) {
				t.Fatalf("user holds %q, want %q", u.CertificateUserIDs, []string{admin, want})
			}
			if st := e.graph.Stats(); st.Writes != 1 || st.Refused != 0 {
				t.Fatalf("stats %+v, want one accepted PATCH", st)
			}
			// The next pass, in this process or a new one: nothing to write.
			if err := e.sink.Write(ctx, r, certs(t, "alice.der")); err != nil {
				t.Fatal(err)
			}
			if err := e.newSink(t, func(c *graph.Config) { c.CertificateUserIDs = tc.cfg }).Write(ctx, r, certs(t, "alice.der")); err != nil {
				t.Fatal(err)
			}
			if n := e.graph.Stats().Writes; n != 1 {
				t.Fatalf("%d writes, want 1: the value was rewritten again", n)
			}
		})
	}
}

// TestWriteLeavesOtherCertificatesLowerCase: a lower-case SKI value of a
// certificate the sink does not write (an administrator's binding of a
// partner's card) is not the sink's to rewrite: it stays as it is.
func TestWriteLeavesOtherCertificatesLowerCase(t *testing.T) {
	const partner = "X509:<SKI>00112233445566778899aabbccddeeff00112233"
	e := newEnv(t, []graphtest.User{{ID: "u1", UserPrincipalName: "alice@contoso.com", CertificateUserIDs: []string{partner}}}, nil,
		func(c *graph.Config) { c.CertificateUserIDs.Format = graph.FormatSKI })
	if err := e.sink.Write(context.Background(), &cloud.Recipient{ID: "u1", Name: "alice@contoso.com"}, certs(t, "alice.der")); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.graph.User("u1"); !sameSet(u.CertificateUserIDs, []string{partner, mustValue(t, "alice.der", graph.FormatSKI)}) {
		t.Fatalf("user holds %q", u.CertificateUserIDs)
	}
}
