package main

import (
	"github.com/smimesync/go-smimesync/cloud/httplog"
	"github.com/smimesync/go-smimesync/smimesync/config"
	"github.com/smimesync/go-smimesync/smimesync/metrics"
)

// Config is the configuration file (package smimesync/config: the schema,
// its checks, and what it builds) and what this program adds to it for
// one command.
type Config struct {
	*config.File
	// file is the configuration file as named on the command line.
	file string
	// metrics, when set (by run), counts the sinks' HTTP traffic, and
	// trace, when set (--trace), records it: see Config.httpClient.
	metrics *metrics.Metrics
	trace   *httplog.Log
}

// loadConfig reads and checks a configuration file (config.Load) and
// gives it the binary's clock and Graph sink (graphSink: none without the
// graph build tag). Every error it returns is a *config.Error: exit 2.
func loadConfig(path string) (*Config, error) {
	f, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	f.Now, f.GraphSink = clock, graphSink
	return &Config{File: f, file: path}, nil
}
