package main

import (
	"flag"

	"github.com/smimesync/go-smimesync/cloud/httplog"
)

// traceFlag adds --trace to fs.
func traceFlag(fs *flag.FlagSet) *string {
	return fs.String("trace", "", "record the HTTP exchanges with login, Exchange and Graph in this file (JSON lines, secrets redacted)")
}

// startTrace opens the trace file path names (nothing when it is empty)
// for the sinks c builds from now on (c.HTTPClient); the caller defers
// c.trace.Close().
func (c *Config) startTrace(path string) error {
	if path == "" {
		return nil
	}
	t, err := httplog.Create(path)
	if err != nil {
		return usagef("--trace: %v", err)
	}
	c.trace = t
	c.HTTPClient = c.httpClient()
	return nil
}
