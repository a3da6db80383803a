//go:build graph

package main

import (
	"errors"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
)

// graphTenant is the Microsoft Graph emulator with its token server. Its
// users are the directory's users that have a mailbox or mail user in
// the Exchange tenant (a contact is not an Entra user).
type graphTenant struct {
	tokens *azauthtest.Server
	g      *graphtest.Server
	cloud  cloudSpec
}

func newGraphTenant(g *Generator, cfg tenantConfig) (tenant, error) {
	tokens, cs, err := emulatorCredentials()
	if err != nil {
		return nil, err
	}
	users := make([]graphtest.User, 0, g.Users)
	for i := range g.Users {
		k := g.Recipient(i)
		if k == RecipientNone || k == RecipientMailContact {
			continue
		}
		users = append(users, graphtest.User{
			ID:                    g.RecipientGUID(i),
			UserPrincipalName:     g.Mail(i),
			Mail:                  g.Mail(i),
			OnPremisesSyncEnabled: k == RecipientSynced,
		})
	}
	gc := graphtest.Config{Users: users, Tokens: tokens, TimeScale: cfg.TimeScale}
	cs.WriteBudget, cs.WriteWindow = graphtest.DefaultWriteBudget, time.Duration(float64(graphtest.DefaultWriteWindow)/cfg.TimeScale)
	if !cfg.Budget {
		gc.WriteBudget, gc.TenantWriteBudget = -1, -1
		cs.WriteBudget = -1
	}
	srv := graphtest.NewServer(gc)
	cs.Endpoint = srv.URL
	return &graphTenant{tokens: tokens, g: srv, cloud: cs}, nil
}

func (t *graphTenant) spec() sinkSpec {
	c := t.cloud
	return sinkSpec{Kind: "graph", Cloud: &c}
}
func (t *graphTenant) inProcess() cloud.Sink { return nil }
func (t *graphTenant) resetCounters()        { t.g.ResetStats() }
func (t *graphTenant) counters() (int, int, bool) {
	st := t.g.Stats()
	return st.Requests, st.Throttled, true
}

func (t *graphTenant) Close() {
	t.g.Close()
	t.tokens.Close()
}

// buildGraphSink makes the Graph sink of a pass, pacing its writes at the
// service's budget with the window scaled like the emulator's clock.
func buildGraphSink(c *cloudSpec) (cloud.Sink, sinkCounters, error) {
	if c == nil {
		return nil, nil, errors.New("bench: the graph sink needs its emulator's address")
	}
	client, err := emulatorClient(c.CA)
	if err != nil {
		return nil, nil, err
	}
	ac := credentialConfig(c, false)
	cred, err := ac.Credential(azauth.WithHTTPClient(client), azauth.WithGetenv(getenvSecret(c)))
	if err != nil {
		return nil, nil, err
	}
	ep, err := ac.ResolvedEndpoints()
	if err != nil {
		return nil, nil, err
	}
	cfg := graph.Config{
		Credential:  cred,
		Endpoints:   ep,
		HTTPClient:  client,
		WriteBudget: graph.WriteBudget{Writes: c.WriteBudget, Window: c.WriteWindow},
	}
	if c.WriteBudget < 0 {
		cfg.Retry.MaxThrottled = 1 << 20
	}
	s, err := graph.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return s, func() (int64, int64, int64) {
		st := s.Stats()
		return st.Batches + st.Pages, 0, 0
	}, nil
}

// graphTag says that this build carries the Graph sink (-tags graph).
const graphTag = true
