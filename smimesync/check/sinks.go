package check

import (
	"context"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
)

// Sink is one configured sink for [Checker.Sinks].
type Sink struct {
	// Name is the sink's name: its results are grouped under it.
	Name string
	Sink cloud.Sink
}

// SinkOptions say how [Checker.Sinks] checks the sinks. The zero value
// checks with the default endpoints, asks for no Graph roles, and writes
// nothing.
type SinkOptions struct {
	// ExchangeEndpoint is the Exchange endpoint the configuration names
	// ("" when the default), to tell a regional redirect from it.
	ExchangeEndpoint string
	// GraphRoles are the roles a cloud sink other than Exchange must hold.
	GraphRoles []azauth.Role
	// Probe, when set, is the recipient whose certificates
	// [Checker.Probe] writes back unchanged and reads back, through an
	// Exchange sink that passed its checks.
	Probe string
}

// Sinks checks each sink in its own part (its Name), in order: an
// [exchange.Sink] with [Checker.Exchange] (then, with o.Probe, the probe
// in PartProbe), another [CloudProber] with [Checker.Cloud], and any
// other sink as having nothing to check beyond its state. With o.Probe
// set and no Exchange sink that passed, the probe fails, saying why.
func (c *Checker) Sinks(ctx context.Context, sinks []Sink, o SinkOptions) {
	probed := false
	for _, s := range sinks {
		c.Part = s.Name
		switch sk := s.Sink.(type) {
		case *exchange.Sink:
			if c.Exchange(ctx, sk, o.ExchangeEndpoint) && o.Probe != "" {
				c.Part = PartProbe
				c.Probe(ctx, sk, o.Probe)
				probed = true
			}
		case CloudProber:
			c.Cloud(ctx, s.Name, sk, o.GraphRoles)
		default:
			c.OK("sink", s.Name+": nothing to check beyond the state")
		}
	}
	if o.Probe != "" && !probed {
		c.Part = PartProbe
		c.Fail("probe "+o.Probe, "not run: the probe needs a working exchange sink (the graph sink cannot read certificates back)",
			"configure sink.exchange and fix what is marked ✗ above, then run check --probe again")
	}
}
