//go:build !graph

package main

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// GraphConfig is sink.graph. This binary was built without the graph
// build tag: the keys are read so the configuration stays valid (and a
// typo is refused as in the graph build), and using them is an error that
// says how to build a binary that has Graph.
type GraphConfig struct {
	Auth azauth.Config `yaml:",inline"`
	Sink graphKeys     `yaml:",inline"`
}

// graphKeys mirrors the yaml keys of graph.Config, which this build cannot
// import (cloud/graph imports msgraph-sdk-go). TestGraphKeysMirror checks
// the two against each other.
type graphKeys struct {
	CertificateUserIDs struct {
		Format            string   `yaml:"format"`
		ManagedIssuers    []string `yaml:"managed_issuers"`
		ManageAllOfFormat bool     `yaml:"manage_all_of_format"`
	} `yaml:"certificate_user_ids"`
	Lookup         string        `yaml:"lookup"`
	PageSize       int           `yaml:"page_size"`
	BatchSize      int           `yaml:"batch_size"`
	BatchWait      time.Duration `yaml:"batch_wait"`
	Concurrency    int           `yaml:"batches_in_flight"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
	IndexTTL       time.Duration `yaml:"cache_ttl"`
	Retry          struct {
		Base         time.Duration `yaml:"base"`
		Cap          time.Duration `yaml:"cap"`
		MaxTries     int           `yaml:"max_tries"`
		MaxThrottled int           `yaml:"max_throttled"`
	} `yaml:"retry"`
	WriteBudget struct {
		Writes int           `yaml:"writes"`
		Window time.Duration `yaml:"window"`
	} `yaml:"write_budget"`
}

// graphBuilt says whether this binary can publish to Graph.
const graphBuilt = false

// errNoGraph explains why the default build has no Graph sink:
// msgraph-sdk-go's users and models packages take minutes and about 5 GB
// of memory to compile, which every user of the demo would pay.
const errNoGraph = "this smimesync was built without Microsoft Graph support; " +
	"build it with: go build -tags graph ./examples/smimesync (compiling msgraph-sdk-go takes several minutes and about 5 GB of memory)"

func newGraphSink(g *GraphConfig, auth azauth.Config, hc *http.Client, log *slog.Logger) (cloud.Sink, error) {
	return nil, errors.New(errNoGraph)
}
