package main

import (
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

// RevocationConfig is policy.revocation.
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
}

func (c *Config) extraPolicy(p *smimesync.Policy, log *slog.Logger) error {
	r := c.Policy.Revocation
	if r == nil {
		return nil
	}
	chk := &revocation.Checker{
		Now:        clock,
		HardFail:   r.HardFail,
		Timeout:    r.Timeout,
		MaxCRLSize: r.MaxCRLSize,
		Logger:     log,
	}
	for _, m := range r.Methods {
		switch revocation.Method(m) {
		case revocation.OCSP, revocation.CRL:
			chk.Methods = append(chk.Methods, revocation.Method(m))
		default:
			return usagef("policy.revocation.methods: %q is not ocsp or crl", m)
		}
	}
	if r.Timeout < 0 || r.MaxCRLSize < 0 {
		return usagef("policy.revocation: timeout and max_crl_size must not be negative")
	}
	p.Revocation = chk
	return nil
}
