package main

import (
	"log/slog"

	"github.com/smimesync/go-smimesync/directory"
)

type sourceExtra struct{}

func (s *SourceConfig) extraKinds() int { return 0 }

func (c *Config) extraSource(s SourceConfig, log *slog.Logger) (directory.Source, error) {
	return nil, usagef("source: unknown kind")
}
