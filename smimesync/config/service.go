package config

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/smimesync/service"
)

// Service defaults: the library's (service.DefaultInterval,
// service.DefaultFullEvery), but for where the service listens and how
// long a stop waits for the writes in flight.
const (
	// DefaultListen is where the service serves /healthz, /metrics and
	// its status page unless service.listen says otherwise.
	DefaultListen = "127.0.0.1:9464"
	// DefaultShutdownGrace is how long the writes of a pass in flight get
	// to finish once the service is told to stop (service.shutdown_grace).
	DefaultShutdownGrace = 10 * time.Second
)

// Service is the service key: how a long-running service
// (service.Service) paces its passes, where it serves /healthz and
// /metrics, and how it stops.
type Service struct {
	// Interval between the end of one pass and the start of the next
	// (Go duration, default 60s).
	Interval time.Duration `yaml:"interval"`
	// FullEvery: a full pass (the saved delta cookie ignored) runs when
	// the last one is older than this (default 24h). The first pass of a
	// service that has no record of a full pass is full.
	FullEvery time.Duration `yaml:"full_every"`
	// Listen is the address of the HTTP server for /healthz, /metrics
	// and the status page / (default DefaultListen); an empty string
	// turns it off.
	Listen *string `yaml:"listen"`
	// ShutdownGrace: on SIGTERM or SIGINT (or a Windows service stop),
	// the writes of the pass in flight get this long to finish before
	// they are abandoned (default DefaultShutdownGrace). Planning stops
	// at once. Either way the state is saved.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// LogFile, when set, receives the logs instead of standard error
	// (appended, mode 0600). A Windows service has no standard error: it
	// logs to <state file>.log unless this says otherwise (see
	// File.LogFile).
	LogFile string `yaml:"log_file"`
}

// check refuses what checkNumbers does not: a listen address that is not
// host:port.
func (s Service) check(c *File) error {
	if s.Listen != nil && *s.Listen != "" {
		if _, _, err := net.SplitHostPort(*s.Listen); err != nil {
			return c.errorf("service.listen", "%v", err)
		}
	}
	return nil
}

// Grace is service.shutdown_grace, or DefaultShutdownGrace.
func (s Service) Grace() time.Duration {
	if s.ShutdownGrace == 0 {
		return DefaultShutdownGrace
	}
	return s.ShutdownGrace
}

// BuildService builds the service that runs syncers (see File.Syncers) as
// the service key says: Interval, FullEvery and Listen with their
// defaults, the clock File.Now, and log. Each Syncer's WriteGrace is set
// to Service.Grace. The caller adds its hooks (Status, OnPass), takes the
// state locks (service.Lock) and runs it.
func (c *File) BuildService(syncers []service.Named, log *slog.Logger) *service.Service {
	for _, s := range syncers {
		s.WriteGrace = c.Service.Grace()
	}
	svc := &service.Service{
		Syncers:   syncers,
		Interval:  c.Service.Interval,
		FullEvery: c.Service.FullEvery,
		Listen:    DefaultListen,
		Logger:    log,
		Now:       c.now(),
	}
	if svc.Interval == 0 {
		svc.Interval = service.DefaultInterval
	}
	if svc.FullEvery == 0 {
		svc.FullEvery = service.DefaultFullEvery
	}
	if c.Service.Listen != nil {
		svc.Listen = *c.Service.Listen
	}
	return svc
}

// LogFile is where a service's logs go, resolved: service.log_file when
// set; otherwise, for a Windows service (which has no standard error),
// beside state.path with the extension .log (state.json gives
// state.log); otherwise "", standard error.
func (c *File) LogFile(windowsService bool) string {
	if c.Service.LogFile != "" {
		return c.path(c.Service.LogFile)
	}
	if !windowsService || c.State.Path == "" {
		return ""
	}
	p := c.path(c.State.Path)
	return strings.TrimSuffix(p, filepath.Ext(p)) + ".log"
}
