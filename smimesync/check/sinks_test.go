package check_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/smimesync/check"
)

// graphLike is a cloud sink that signs in: its token holds roles, or
// fails with err; Ping answers.
type graphLike struct {
	cloud.FileSink
	roles []string
	err   error
}

func (g *graphLike) Token(context.Context) (azauth.TokenClaims, error) {
	return azauth.TokenClaims{Audience: "https://graph.microsoft.com", TenantID: "t", AppID: "a", Roles: g.roles}, g.err
}

func (g *graphLike) Ping(context.Context) error { return nil }

// TestSinks: each sink is checked in its own part by what it is; a probe
// with no Exchange sink fails, saying why.
func TestSinks(t *testing.T) {
	role := azauth.Role{API: "Microsoft Graph", Name: "User.ReadWrite.All", For: "writing"}
	for _, tt := range []struct {
		name  string
		sinks []check.Sink
		o     check.SinkOptions
		want  []string // part, check, ✓ or ✗, for each result
	}{
		{"file", []check.Sink{{Name: "file", Sink: &cloud.FileSink{}}}, check.SinkOptions{},
			[]string{"file sink ✓"}},
		{"graph ok", []check.Sink{{Name: "graph", Sink: &graphLike{roles: []string{"User.ReadWrite.All"}}}}, check.SinkOptions{GraphRoles: []azauth.Role{role}},
			[]string{"graph token ✓", "graph permissions ✓", "graph read ✓"}},
		{"graph missing role", []check.Sink{{Name: "graph", Sink: &graphLike{}}}, check.SinkOptions{GraphRoles: []azauth.Role{role}},
			[]string{"graph token ✓", "graph permissions ✗", "graph read ✓"}},
		{"graph no token, probe", []check.Sink{{Name: "graph", Sink: &graphLike{err: errors.New("401\nmore")}}}, check.SinkOptions{Probe: "bob@example.com"},
			[]string{"graph token ✗", "probe probe bob@example.com ✗"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &check.Checker{}
			c.Sinks(context.Background(), tt.sinks, tt.o)
			var got []string
			for _, r := range c.Results {
				mark := "✓"
				if !r.OK {
					mark = "✗"
				}
				got = append(got, r.Part+" "+r.Check+" "+mark)
			}
			if strings.Join(got, "; ") != strings.Join(tt.want, "; ") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
