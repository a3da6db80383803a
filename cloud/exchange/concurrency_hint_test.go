package exchange_test

import (
	"testing"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
)

// TestPreferredConcurrency: the sink asks the Syncer for as many calls at
// once as it sends requests at once (Config.Concurrency, default
// DefaultConcurrency).
func TestPreferredConcurrency(t *testing.T) {
	for _, tc := range []struct{ conc, want int }{{0, exchange.DefaultConcurrency}, {16, 16}, {1, 1}} {
		s, err := exchange.New(exchange.Config{
			Config:      azauth.Config{TenantID: tenant, ClientID: clientID},
			Credential:  staticCred{},
			Concurrency: tc.conc,
		})
		if err != nil {
			t.Fatal(err)
		}
		var sink cloud.Sink = s
		h, ok := sink.(cloud.ConcurrencyHinter)
		if !ok {
			t.Fatal("the exchange sink is not a cloud.ConcurrencyHinter")
		}
		if got := h.PreferredConcurrency(); got != tc.want {
			t.Errorf("concurrency %d: PreferredConcurrency = %d, want %d", tc.conc, got, tc.want)
		}
	}
}
