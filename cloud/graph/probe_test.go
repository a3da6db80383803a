package graph_test

import (
	"context"
	"errors"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
)

// TestProbeRoles: an app granted nothing carries no roles claim, lacks
// both permissions the sink needs, and its harmless read is refused by a
// Graph that checks roles; granted User.ReadWrite.All, it lacks nothing
// and the read answers.
func TestProbeRoles(t *testing.T) {
	e := newEnv(t, tenantUsers(), func(c *graphtest.Config) { c.RequireRoles = true }, nil)
	c, err := e.sink.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	missing := azauth.MissingRoles(c.Roles, graph.RequiredRoles)
	if c.HasRoles || len(missing) != 2 || missing[0].Name != "User.Read.All" || missing[1].Name != "User.ReadWrite.All" {
		t.Errorf("claims %+v, missing %v: want no roles, both missing", c, missing)
	}
	var se *graph.ServiceError
	if err := e.sink.Ping(context.Background()); !errors.As(err, &se) || se.Status != 403 {
		t.Errorf("Ping without permissions: %v, want a 403 ServiceError", err)
	}

	e.tokens.GrantRoles(tenantID, clientID, e.graph.URL, "User.ReadWrite.All")
	good := e.newSink(t, nil)
	c, err = good.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m := azauth.MissingRoles(c.Roles, graph.RequiredRoles); !c.HasRoles || len(m) != 0 {
		t.Errorf("claims %+v: missing %v", c, m)
	}
	if err := good.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
