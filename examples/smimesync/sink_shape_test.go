package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud"
)

// exchangeConfig is a configuration with the Exchange sink (which sends
// nothing until a pass) and the extra YAML given.
const exchangeConfig = "source: {ldif: {path: users.ldif}}\nstate: {path: state.json}\n" +
	"sink: {exchange: {tenant_id: t, client_id: c, organization: o, auth: {method: client_secret, secret_env: SHAPE_SECRET}%s}}\n%s"

// TestSyncerConcurrencyFromTheSink: without a top-level concurrency the
// binary leaves the Syncer's Concurrency at 0, so that the Syncer asks the
// sink (sink.exchange.concurrency for exchange; graph's 40 is its sink's
// own, tested in cloud/graph); a top-level concurrency is the Syncer's.
func TestSyncerConcurrencyFromTheSink(t *testing.T) {
	t.Setenv("SHAPE_SECRET", "s")
	for _, tc := range []struct {
		name, sinkKeys, top string
		own, preferred      int
	}{
		{"defaults", "", "", 0, 8},
		{"sink.exchange.concurrency", ", concurrency: 16", "", 0, 16},
		{"top-level concurrency", ", concurrency: 16", "concurrency: 3\n", 3, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, fmt.Sprintf(exchangeConfig, tc.sinkKeys, tc.top)))
			if err != nil {
				t.Fatal(err)
			}
			syncers, err := cfg.Syncers(cfg.Logger(&strings.Builder{}))
			if err != nil {
				t.Fatal(err)
			}
			if len(syncers) != 1 {
				t.Fatalf("%d syncers", len(syncers))
			}
			s := syncers[0]
			if s.Concurrency != tc.own {
				t.Errorf("Syncer.Concurrency = %d, want %d", s.Concurrency, tc.own)
			}
			h, ok := s.Sink.(cloud.ConcurrencyHinter)
			if !ok || h.PreferredConcurrency() != tc.preferred {
				t.Errorf("the sink prefers %v (a hinter: %v), want %d", h, ok, tc.preferred)
			}
		})
	}
}

// TestExchangeConfigErrorsNameTheKey: a value the Exchange sink refuses is
// a configuration error (exit 2) naming its YAML path and line, whether
// the sink found it (lookup, read_back, organization) or azauth did
// (cloud).
func TestExchangeConfigErrorsNameTheKey(t *testing.T) {
	t.Setenv("SHAPE_SECRET", "s")
	for _, tc := range []struct{ keys, key, needle string }{
		{", lookup: guess", "sink.exchange.lookup", "lookup:"},
		{", read_back: sometimes", "sink.exchange.read_back", "read_back:"},
		{", cloud: mars", "sink.exchange.cloud", "cloud:"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			conf := fmt.Sprintf(exchangeConfig, tc.keys, "")
			code, _, stderr := runCLI(t, "plan", "--config", writeConfig(t, conf))
			wantConfigError(t, code, stderr, tc.key, lineOf(t, conf, tc.needle))
		})
	}
	conf := strings.Replace(fmt.Sprintf(exchangeConfig, "", ""), "organization: o", "organization: \"o/../x\"", 1)
	code, _, stderr := runCLI(t, "plan", "--config", writeConfig(t, conf))
	wantConfigError(t, code, stderr, "sink.exchange.organization", lineOf(t, conf, "organization:"))
}
