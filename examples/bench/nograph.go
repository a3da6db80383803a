//go:build !graph

package main

import (
	"errors"

	"github.com/smimesync/go-smimesync/cloud"
)

// errNoGraph says how to get the Graph sink: msgraph-sdk-go takes minutes
// to compile, so, as in the example binary, it is behind a build tag.
var errNoGraph = errors.New("bench: this build has no Graph sink; run it with -tags graph (go run -tags graph ./examples/bench -sink graph)")

func newGraphTenant(*Generator, tenantConfig) (tenant, error) { return nil, errNoGraph }

func buildGraphSink(*cloudSpec) (cloud.Sink, sinkCounters, error) { return nil, nil, errNoGraph }

// graphTag says that this build carries the Graph sink (-tags graph).
const graphTag = false
