// Package azauth holds what the Microsoft 365 sinks share to reach a tenant:
// the endpoints of each national cloud ([Cloud], [Endpoints]) and the
// credential configuration ([Config]) that builds an azidentity credential
// for client secret, client certificate, managed identity or workload
// identity sign-in.
//
// Tests point the real azidentity client at the token emulator in the
// azauthtest sub-package by giving [Config.Endpoints] the emulator's URL and
// [WithHTTPClient] a client that trusts the emulator's test CA.
package azauth

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Cloud names a set of Microsoft 365 endpoints: one of the presets
// [Worldwide], [USGovHigh], [USGovDoD] or [China]. The empty Cloud means
// Worldwide.
type Cloud string

// The national clouds smimesync knows. Their endpoints are in [Cloud.Endpoints].
const (
	// Worldwide is Microsoft's commercial cloud (and GCC moderate).
	Worldwide Cloud = "worldwide"
	// USGovHigh is Office 365 US Government GCC High.
	USGovHigh Cloud = "usgov-high"
	// USGovDoD is Office 365 US Government DoD.
	USGovDoD Cloud = "usgov-dod"
	// China is Office 365 operated by 21Vianet.
	China Cloud = "china"
)

// Endpoints are the base URLs smimesync talks to, without a trailing slash.
// Each must be https; plain http is accepted only for a loopback host (see
// [CheckEndpoint]). A sink sends its token to its endpoint's scheme, host
// and port only (see [TokenHosts]).
type Endpoints struct {
	// Login is the Microsoft Entra authority host
	// ("https://login.microsoftonline.com").
	Login string `yaml:"login"`
	// Exchange is the Exchange Online host that serves
	// /adminapi/beta/{tenant}/InvokeCommand ("https://outlook.office365.com").
	// Tokens for it are asked with the scope [Endpoints.ExchangeScope].
	Exchange string `yaml:"exchange"`
	// Graph is the Microsoft Graph host ("https://graph.microsoft.com").
	Graph string `yaml:"graph"`
}

// ExchangeScope returns the OAuth scope for the Exchange endpoint:
// Exchange + "/.default".
//
// Unconfirmed: the resource of the DoD and China Exchange endpoints is
// assumed to be the endpoint itself, as it is for the worldwide cloud
// ("https://outlook.office365.com/.default", FACTS.md). Change it here.
func (e Endpoints) ExchangeScope() string { return strings.TrimSuffix(e.Exchange, "/") + "/.default" }

// GraphScope returns the OAuth scope for the Graph endpoint: Graph + "/.default".
func (e Endpoints) GraphScope() string { return strings.TrimSuffix(e.Graph, "/") + "/.default" }

// presets are the endpoints of each named cloud.
//
// Unconfirmed: the worldwide values are the documented ones; the US
// Government and China values are those the ExchangeOnlineManagement module
// and the Graph national-cloud documentation are known to use, not checked
// against a live tenant. They live only here.
var presets = map[Cloud]Endpoints{
	Worldwide: {
		Login:    "https://login.microsoftonline.com",
		Exchange: "https://outlook.office365.com",
		Graph:    "https://graph.microsoft.com",
	},
	USGovHigh: {
		Login:    "https://login.microsoftonline.us",
		Exchange: "https://outlook.office365.us",
		Graph:    "https://graph.microsoft.us",
	},
	USGovDoD: {
		Login:    "https://login.microsoftonline.us",
		Exchange: "https://webmail.apps.mil",
		Graph:    "https://dod-graph.microsoft.us",
	},
	China: {
		Login:    "https://login.chinacloudapi.cn",
		Exchange: "https://partner.outlook.cn",
		Graph:    "https://microsoftgraph.chinacloudapi.cn",
	},
}

// exchangeHosts are, per cloud, the other host names Microsoft lists for
// its Exchange Online endpoint: a redirect from the preset endpoint to one
// of them is followed with the token (see [Cloud.ExchangeHosts]).
//
// Unconfirmed (FACTS.md): Microsoft's endpoint list names both
// outlook-dod.office365.us and webmail.apps.mil for DoD; which one answers
// app-only calls, and whether either redirects to the other, is not known.
// The other clouds' hosts share their preset's registrable domain and need
// no entry. They live only here.
var exchangeHosts = map[Cloud][]string{
	USGovDoD: {"outlook-dod.office365.us", "webmail.apps.mil"},
}

// ExchangeHosts returns the host names, besides those under the preset
// Exchange endpoint's registrable domain, that the cloud's Exchange Online
// may redirect a client to. An unknown cloud has none.
func (c Cloud) ExchangeHosts() []string {
	name := c
	if name == "" {
		name = Worldwide
	}
	return slices.Clone(exchangeHosts[Cloud(strings.ToLower(string(name)))])
}

// knownLoginHosts are the Microsoft Entra authority hosts for which MSAL's
// instance discovery is left on. Any other login host (an emulator, a
// private cloud) gets DisableInstanceDiscovery.
var knownLoginHosts = map[string]bool{
	"login.microsoftonline.com":        true,
	"login.microsoft.com":              true,
	"login.windows.net":                true,
	"sts.windows.net":                  true,
	"login.microsoftonline.us":         true,
	"login.chinacloudapi.cn":           true,
	"login.partner.microsoftonline.cn": true,
}

// ErrConfig is wrapped by every error about a configuration that cannot work.
var ErrConfig = errors.New("azauth: invalid configuration")

// ConfigError names the configuration field at fault. It wraps [ErrConfig].
type ConfigError struct {
	// Field is the YAML name of the field ("auth.secret_env", "cloud").
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("azauth: %s: %s", e.Field, e.Reason) }

// Unwrap returns [ErrConfig].
func (e *ConfigError) Unwrap() error { return ErrConfig }

// Endpoints returns the preset endpoints of c. The empty Cloud is
// [Worldwide]. An unknown name gives a [*ConfigError].
func (c Cloud) Endpoints() (Endpoints, error) {
	name := c
	if name == "" {
		name = Worldwide
	}
	e, ok := presets[Cloud(strings.ToLower(string(name)))]
	if !ok {
		return Endpoints{}, &ConfigError{Field: "cloud", Reason: fmt.Sprintf("unknown cloud %q (want worldwide, usgov-high, usgov-dod or china)", string(c))}
	}
	return e, nil
}

// Resolve returns the endpoints of cloud with each non-empty field of
// override put in its place, each checked by [CheckEndpoint]: https (plain
// http only to a loopback host), without a path, query or trailing slash.
func Resolve(cloud Cloud, override Endpoints) (Endpoints, error) {
	e, err := cloud.Endpoints()
	if err != nil {
		return Endpoints{}, err
	}
	for _, f := range []struct {
		name string
		dst  *string
		src  string
	}{
		{"endpoints.login", &e.Login, override.Login},
		{"endpoints.exchange", &e.Exchange, override.Exchange},
		{"endpoints.graph", &e.Graph, override.Graph},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
		v, err := CheckEndpoint(f.name, *f.dst)
		if err != nil {
			return Endpoints{}, err
		}
		*f.dst = v
	}
	return e, nil
}

// knownLoginHost reports whether login is one of Microsoft's own authority
// hosts, for which instance discovery stays on.
func knownLoginHost(login string) bool {
	u, err := url.Parse(login)
	if err != nil {
		return false
	}
	return u.Scheme == "https" && knownLoginHosts[strings.ToLower(u.Host)]
}
