package azauth_test

import (
	"errors"
	"net/url"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/azauth"
)

func TestRegistrableDomain(t *testing.T) {
	for host, want := range map[string]string{
		"outlook.office365.com":       "office365.com",
		"eur03.outlook.office365.com": "office365.com",
		"outlook.office365.us":        "office365.us",
		"webmail.apps.mil":            "apps.mil",
		"partner.outlook.cn":          "outlook.cn",
		"exo.contoso.co.uk":           "contoso.co.uk",
		"co.uk":                       "",
		"localhost":                   "",
		"127.0.0.1":                   "",
		"[::1]":                       "",
		"OUTLOOK.Example.COM.":        "example.com",
	} {
		if got := azauth.RegistrableDomain(host); got != want {
			t.Errorf("RegistrableDomain(%q) = %q, want %q", host, got, want)
		}
	}
}

// TestLearnWithin: Learn adds a host of the endpoint's cloud (same scheme
// and port, same registrable domain, or a preset host) and refuses any
// other with a *TokenHostError naming it.
func TestLearnWithin(t *testing.T) {
	h, err := azauth.NewTokenHosts("https://outlook.office365.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LearnWithin("https://outlook.office365.com", "outlook-dod.office365.us"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://eur03.outlook.office365.com/adminapi/beta/x/InvokeCommand", true},
		{"https://office365.com/x", true},
		{"https://outlook-dod.office365.us/x", true},
		{"https://outlook.office365.us/x", false},
		{"https://eur03.outlook.office365.com:8443/x", false},
		{"http://eur03.outlook.office365.com/x", false},
		{"https://office365.com.evil.example/x", false},
		{"https://xoffice365.com/x", false},
		{"https://user@eur04.outlook.office365.com/x", false},
		{"https://127.0.0.1/x", false},
	} {
		u, _ := url.Parse(tc.url)
		err := h.Learn(u, "redirect")
		if tc.ok {
			if err != nil || !h.Allows(u) {
				t.Errorf("%s: %v, want learnt", tc.url, err)
			}
			continue
		}
		var he *azauth.TokenHostError
		if !errors.As(err, &he) || !errors.Is(err, azauth.ErrTokenHost) || he.Via != "redirect" || h.Allows(u) {
			t.Errorf("%s: %v, want a *TokenHostError and not learnt", tc.url, err)
		}
	}
	// Without LearnWithin nothing is learnt (the Graph sink's case).
	g, _ := azauth.NewTokenHosts("https://graph.microsoft.com")
	u, _ := url.Parse("https://eu.graph.microsoft.com/v1.0/users")
	if err := g.Learn(u, "@odata.nextLink"); err == nil {
		t.Error("a TokenHosts without LearnWithin learnt a host")
	}
}
