package config

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// Graph is sink.graph: the Graph sink's own settings, and optionally a
// tenant, application and sign-in of its own (otherwise sink.exchange's).
type Graph struct {
	// Auth is the sink's tenant, application and sign-in (yaml:
	// tenant_id, client_id, auth, cloud, endpoints).
	Auth azauth.Config `yaml:",inline"`
	// Sink is the rest of the section: graph.Config's keys.
	Sink GraphKeys `yaml:",inline"`
}

// GraphKeys mirrors the YAML keys of graph.Config (package cloud/graph),
// which this package does not import: cloud/graph imports the Microsoft
// Graph SDK. The keys are read and checked here as in any other section;
// File.GraphSink turns them into a graph.Config with GraphKeys.Decode.
// (This package's tests check the two against each other.)
//
// Each field is the graph.Config field of the same name (Concurrency and
// IndexTTL are graph.Config's, under the keys batches_in_flight and
// cache_ttl), where its meaning and default are documented.
type GraphKeys struct {
	// CertificateUserIDs is certificate_user_ids: what the sink writes.
	CertificateUserIDs struct {
		Format            string   `yaml:"format,omitempty"`
		ManagedIssuers    []string `yaml:"managed_issuers,omitempty"`
		ManageAllOfFormat bool     `yaml:"manage_all_of_format,omitempty"`
	} `yaml:"certificate_user_ids,omitempty"`
	// Lookup, PageSize, BatchSize, BatchWait, Concurrency, RequestTimeout
	// and IndexTTL are graph.Config's.
	Lookup         string        `yaml:"lookup,omitempty"`
	PageSize       int           `yaml:"page_size,omitempty"`
	BatchSize      int           `yaml:"batch_size,omitempty"`
	BatchWait      time.Duration `yaml:"batch_wait,omitempty"`
	Concurrency    int           `yaml:"batches_in_flight,omitempty"`
	RequestTimeout time.Duration `yaml:"request_timeout,omitempty"`
	IndexTTL       time.Duration `yaml:"cache_ttl,omitempty"`
	// Retry is graph.Config.Retry (graph.RetryPolicy).
	Retry struct {
		Base         time.Duration `yaml:"base,omitempty"`
		Cap          time.Duration `yaml:"cap,omitempty"`
		MaxTries     int           `yaml:"max_tries,omitempty"`
		MaxThrottled int           `yaml:"max_throttled,omitempty"`
	} `yaml:"retry,omitempty"`
	// WriteBudget is graph.Config.WriteBudget (graph.WriteBudget).
	WriteBudget struct {
		Writes int           `yaml:"writes,omitempty"`
		Window time.Duration `yaml:"window,omitempty"`
	} `yaml:"write_budget,omitempty"`
}

// Decode copies the keys into v, a pointer to a struct with the same YAML
// keys (a *graph.Config), through YAML: the keys the file sets are set in
// v, the others left as they are, and a key v does not have is an error.
func (k GraphKeys) Decode(v any) error {
	b, err := yaml.Marshal(k)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// GraphSinkFunc builds the Graph sink (graph.New) of sink.graph, for
// File.GraphSink: keys are the section's own settings (GraphKeys.Decode
// makes them a graph.Config), auth its sign-in (sink.exchange's where it
// names none; file names resolved), hc the HTTP client the sink and its
// credential should use (File.HTTPClient; nil: their defaults), and log
// the sink's logger. Its errors are reported as *Errors under sink.graph
// (those of an *azauth.ConfigError under the key it names).
type GraphSinkFunc func(keys GraphKeys, auth azauth.Config, hc *http.Client, log *slog.Logger) (cloud.Sink, error)

// ErrNoGraphSink is the cause of the *Error a file naming sink.graph gets
// when File.GraphSink is nil.
var ErrNoGraphSink = errors.New("this program has no Graph sink (it sets no config.File.GraphSink)")

func noGraphSink(GraphKeys, azauth.Config, *http.Client, *slog.Logger) (cloud.Sink, error) {
	return nil, ErrNoGraphSink
}
