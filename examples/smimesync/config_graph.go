//go:build graph

package main

import (
	"log/slog"
	"net/http"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/graph"
)

// GraphConfig is sink.graph: the Graph sink's own settings, and optionally
// a tenant, application and sign-in of its own.
type GraphConfig struct {
	Auth azauth.Config `yaml:",inline"`
	Sink graph.Config  `yaml:",inline"`
}

// graphBuilt says whether this binary can publish to Graph.
const graphBuilt = true

// newGraphSink builds the Graph sink; its errors are mapped to the keys of
// sink.graph by the caller.
func newGraphSink(g *GraphConfig, auth azauth.Config, hc *http.Client, log *slog.Logger) (cloud.Sink, error) {
	cfg := g.Sink
	var opts []azauth.Option
	if hc != nil {
		opts = append(opts, azauth.WithHTTPClient(hc))
		cfg.HTTPClient = hc
	}
	cred, err := auth.Credential(opts...)
	if err != nil {
		return nil, err
	}
	ep, err := auth.ResolvedEndpoints()
	if err != nil {
		return nil, err
	}
	cfg.Credential, cfg.Endpoints, cfg.Logger = cred, ep, log
	sink, err := graph.New(cfg)
	if err != nil {
		return nil, err
	}
	return sink, nil
}
