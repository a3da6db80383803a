//go:build graph

package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
)

// With -tags graph, exchange and graph run side by side from one
// configuration: graph shares exchange's tenant, application and sign-in.
func TestExchangeAndGraphEndToEnd(t *testing.T) {
	exo, tokens, cfg := exchangeTenant(t)
	g := graphtest.NewServer(graphtest.Config{Tokens: tokens, Users: []graphtest.User{
		{ID: "a11ce000-0000-4000-8000-000000000001", UserPrincipalName: "alice@smime.example", Mail: "alice@smime.example",
			OnPremisesImmutableID: "AQIDBAUGBwgJCgsMDQ4PEA==", CertificateUserIDs: []string{"X509:<PN>alice@smime.example"}},
		{ID: "b0b00000-0000-4000-8000-000000000002", UserPrincipalName: "bob@smime.example", Mail: "bob@smime.example", OnPremisesSyncEnabled: true},
	}})
	t.Cleanup(g.Close)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Add the Graph endpoint to the shared sign-in, and the graph sink.
	conf := regexp.MustCompile(`login: "[^"]*"`).ReplaceAllString(string(b), fmt.Sprintf("login: %q, graph: %q", tokens.URL, g.URL))
	conf += "  graph: {certificate_user_ids: {format: issuer_serial}}\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "sync", "--config", cfg)
	if code != exitOK {
		t.Fatalf("sync exit %d:\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, `Sync to sink "exchange"`) || !strings.Contains(stdout, `Sync to sink "graph"`) {
		t.Errorf("both sinks should report:\n%s", stdout)
	}
	alice, _ := g.User("a11ce000-0000-4000-8000-000000000001")
	if len(alice.CertificateUserIDs) != 2 || alice.CertificateUserIDs[0] != "X509:<PN>alice@smime.example" || !strings.HasPrefix(alice.CertificateUserIDs[1], "X509:<I>") {
		t.Errorf("alice's certificateUserIds = %q, want the admin's value kept and one issuer/serial binding", alice.CertificateUserIDs)
	}
	if a, _ := exo.Recipient("alice@smime.example"); len(a.UserCertificate) != 1 {
		t.Errorf("exchange: alice carries %d certificates, want 1", len(a.UserCertificate))
	}
	bob, _ := g.User("b0b00000-0000-4000-8000-000000000002")
	if len(bob.CertificateUserIDs) != 0 {
		t.Errorf("the synced user was written: %q", bob.CertificateUserIDs)
	}
	// The second sink keeps its own store beside the first (state.db).
	if _, err := os.Stat(strings.TrimSuffix(cfg, "smimesync.yaml") + "state.graph.db"); err != nil {
		t.Errorf("graph keeps no state of its own: %v", err)
	}
}
