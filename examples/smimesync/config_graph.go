//go:build graph

package main

import (
	"log/slog"
	"net/http"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/graph"
	"github.com/smimesync/go-smimesync/smimesync/config"
)

// graphBuilt says whether this binary can publish to Graph.
const graphBuilt = true

// graphSink builds the Graph sink of sink.graph (a config.GraphSinkFunc);
// the configuration maps its errors to the keys of sink.graph.
func graphSink(keys config.GraphKeys, auth azauth.Config, hc *http.Client, log *slog.Logger) (cloud.Sink, error) {
	var cfg graph.Config
	if err := keys.Decode(&cfg); err != nil {
		return nil, err
	}
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
