package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/revocation"
)

// policyExtra holds the policy keys that need more than the core library.
type policyExtra struct {
	// Revocation turns on OCSP and CRL checking.
	Revocation *RevocationConfig `yaml:"revocation"`
}

// RevocationConfig is policy.revocation. Only certificates whose issuer is
// in policy.managed_cas (and signed them) or on a chain verified to
// policy.roots are checked; with neither set, nothing is.
type RevocationConfig struct {
	// Methods is the order to try: ocsp, crl (default both, OCSP first).
	Methods []string `yaml:"methods"`
	// HardFail drops a certificate whose revocation sources all fail
	// (default: keep it and report the failure).
	HardFail bool `yaml:"hard_fail"`
	// Timeout per request (Go duration, default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxCRLSize in bytes (default 32 MiB).
	MaxCRLSize int64 `yaml:"max_crl_size"`
	// AllowHosts are the loopback, private or link-local destinations
	// the checker may contact: host names (exact), IP addresses, or CIDR
	// prefixes (default none: such destinations are refused).
	AllowHosts []string `yaml:"allow_hosts"`
	// EntryBudget bounds the time all fetches for one directory entry
	// take together (default 30s).
	EntryBudget time.Duration `yaml:"entry_budget"`
	// PassBudget bounds the time all fetches of one plan take together
	// (default 10m).
	PassBudget time.Duration `yaml:"pass_budget"`
	// MaxCacheBytes bounds the memory of cached answers and CRLs
	// (default 128 MiB).
	MaxCacheBytes int64 `yaml:"max_cache_bytes"`
}

func (c *Config) extraPolicy(p *smimesync.Policy, log *slog.Logger) error {
	r := c.Policy.Revocation
	if r == nil {
		return nil
	}
	for _, f := range []struct {
		key string
		neg bool
	}{
		{"timeout", r.Timeout < 0}, {"max_crl_size", r.MaxCRLSize < 0}, {"entry_budget", r.EntryBudget < 0},
		{"pass_budget", r.PassBudget < 0}, {"max_cache_bytes", r.MaxCacheBytes < 0},
	} {
		if f.neg {
			return usagef("policy.revocation.%s must not be negative", f.key)
		}
	}
	chk := &revocation.Checker{
		Now:           clock,
		HardFail:      r.HardFail,
		Timeout:       r.Timeout,
		MaxCRLSize:    r.MaxCRLSize,
		AllowHosts:    r.AllowHosts,
		EntryBudget:   r.EntryBudget,
		PassBudget:    r.PassBudget,
		MaxCacheBytes: r.MaxCacheBytes,
		Logger:        log,
	}
	for i, m := range r.Methods {
		switch revocation.Method(m) {
		case revocation.OCSP, revocation.CRL:
			chk.Methods = append(chk.Methods, revocation.Method(m))
		default:
			return c.errorf(fmt.Sprintf("policy.revocation.methods[%d]", i), "%q is not ocsp or crl", m)
		}
	}
	if err := chk.Validate(); err != nil {
		return usagef("policy.revocation.allow_hosts: %v", err)
	}
	if len(p.ManagedCAs) == 0 && p.Roots == nil {
		log.Warn("policy.revocation is on, but neither policy.managed_cas nor policy.roots is set: no certificate's issuer can be vouched for, so none is checked")
	}
	p.Revocation = chk
	return nil
}
