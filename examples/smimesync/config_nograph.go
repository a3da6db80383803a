//go:build !graph

package main

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/smimesync/config"
)

// graphBuilt says whether this binary can publish to Graph.
const graphBuilt = false

// errNoGraph explains why the default build has no Graph sink:
// msgraph-sdk-go's users and models packages take minutes and about 5 GB
// of memory to compile, which every user of the demo would pay.
const errNoGraph = "this smimesync was built without Microsoft Graph support; " +
	"build it with: go build -tags graph ./examples/smimesync (compiling msgraph-sdk-go takes several minutes and about 5 GB of memory)"

// graphSink refuses sink.graph, saying how to build a binary that has it.
// The keys are still read and checked (package config), so that a typo
// is refused as in the graph build.
func graphSink(config.GraphKeys, azauth.Config, *http.Client, *slog.Logger) (cloud.Sink, error) {
	return nil, errors.New(errNoGraph)
}
