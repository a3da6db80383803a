//go:build !graph

package main

import (
	"log/slog"
	"net/http"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// GraphConfig is sink.graph. This binary was built without the graph
// build tag: the keys are read so the configuration stays valid, and using
// them is an error that says how to build a binary that has Graph.
type GraphConfig struct {
	Auth azauth.Config  `yaml:",inline"`
	Rest map[string]any `yaml:",inline"`
}

// graphBuilt says whether this binary can publish to Graph.
const graphBuilt = false

// errNoGraph explains why the default build has no Graph sink:
// msgraph-sdk-go's users and models packages take minutes and about 5 GB
// of memory to compile, which every user of the demo would pay.
const errNoGraph = "this smimesync was built without Microsoft Graph support; " +
	"build it with: go build -tags graph ./examples/smimesync (compiling msgraph-sdk-go takes several minutes and about 5 GB of memory)"

func newGraphSink(g *GraphConfig, auth azauth.Config, hc *http.Client, log *slog.Logger) (cloud.Sink, error) {
	return nil, usagef("sink.graph: %s", errNoGraph)
}
