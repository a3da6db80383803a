package config

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/revocation"
)

func revocationPolicy(t *testing.T, yamlRevocation string) (*smimesync.Policy, string, error) {
	t.Helper()
	cfg, err := parseConfig([]byte("source: {ldif: {path: users.ldif}}\nsink: {file: {path: out.json}}\npolicy:\n  revocation: " + yamlRevocation + "\n"))
	if err != nil {
		return nil, "", err
	}
	var logs bytes.Buffer
	p, err := cfg.BuildPolicy(slog.New(slog.NewTextHandler(&logs, nil)))
	return p, logs.String(), err
}

func TestRevocationConfig(t *testing.T) {
	p, logs, err := revocationPolicy(t, "{allow_hosts: [ocsp.corp.example, 10.1.2.3, 10.20.0.0/16], entry_budget: 5s, pass_budget: 2m, max_cache_bytes: 1048576, timeout: 2s}")
	if err != nil {
		t.Fatal(err)
	}
	chk, ok := p.Revocation.(*revocation.Checker)
	if !ok {
		t.Fatalf("Revocation is %T", p.Revocation)
	}
	if len(chk.AllowHosts) != 3 || chk.EntryBudget != 5*time.Second || chk.PassBudget != 2*time.Minute || chk.MaxCacheBytes != 1<<20 || chk.Timeout != 2*time.Second {
		t.Errorf("checker %+v", chk)
	}
	if !strings.Contains(logs, "neither policy.managed_cas nor policy.roots") {
		t.Errorf("no warning that nothing will be checked; logs: %q", logs)
	}
}

func TestRevocationConfigRefused(t *testing.T) {
	for yaml, want := range map[string]string{
		"{entry_budget: -1s}":                         "policy.revocation.entry_budget: must not be negative",
		"{pass_budget: -5m}":                          "policy.revocation.pass_budget: must not be negative",
		"{max_cache_bytes: -1}":                       "policy.revocation.max_cache_bytes: must not be negative",
		"{timeout: -1s}":                              "policy.revocation.timeout: must not be negative",
		"{max_crl_size: -1}":                          "policy.revocation.max_crl_size: must not be negative",
		"{allow_hosts: ['http://ocsp.corp.example']}": `"http://ocsp.corp.example" is not a host name, an IP address or a CIDR prefix`,
		"{allow_hosts: [10.0.0.0/33]}":                `"10.0.0.0/33"`,
		"{allow_host: [10.1.2.3]}":                    "policy.revocation.allow_host: unknown key",
	} {
		_, _, err := revocationPolicy(t, yaml)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to say %q", yaml, err, want)
		} else if ce := (*Error)(nil); !errors.As(err, &ce) {
			t.Errorf("%s: error %v is a %T, want an *Error", yaml, err, err)
		}
	}
}

// parseConfig decodes and checks a configuration as Load does, from
// memory, with paths relative to the current folder.
func parseConfig(b []byte) (*File, error) {
	return Parse(b, "test.yaml")
}
