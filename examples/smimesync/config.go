package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/httplog"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/metrics"
)

// Config is the example binary's configuration file. Unknown keys are an
// error. Relative paths are relative to the configuration file's folder.
// Secrets never appear here: they come from the environment or a file
// named by a *_env or *_file key.
type Config struct {
	// Source is the one directory source; Sources lists several (one per
	// forest) and excludes Source.
	Source  *SourceConfig  `yaml:"source"`
	Sources []SourceConfig `yaml:"sources"`
	// Sink is where certificates are published.
	Sink SinkConfig `yaml:"sink"`
	// Policy chooses what each recipient carries.
	Policy PolicyConfig `yaml:"policy"`
	// State is where the cookie and what was published are kept.
	State StateConfig `yaml:"state"`
	// Guard is the mass-change guard.
	Guard GuardConfig `yaml:"guard"`
	// RemoveDeparted takes away what smimesync published to the
	// recipient of a user who left the directory (only those values, each
	// such recipient counted by the guard); off, the values stay and the
	// user is shown as departed (smimesync.Syncer.RemoveDeparted).
	RemoveDeparted bool `yaml:"remove_departed"`
	// Concurrency bounds sink calls in flight (default: the sink's
	// preference, see cloud.ConcurrencyHinter: sink.exchange.concurrency,
	// 8 by default, for exchange; 40 for graph, whose sink packs
	// concurrent calls into $batch requests of 20; 8 for file).
	Concurrency int `yaml:"concurrency"`
	// Log configures logging to standard error.
	Log LogConfig `yaml:"log"`
	// Prune lists the drop reasons whose values are removed from the
	// directory (write-back; only LDAP sources support it, and they keep a
	// backup and default to a dry run).
	Prune PruneConfig `yaml:"prune"`
	// Service configures `smimesync run` (see service.go).
	Service ServiceConfig `yaml:"service"`
	// Report says where sync and run keep the report that
	// `smimesync report` reads (see report.go).
	Report ReportConfig `yaml:"report"`

	dir string
	// file is the configuration file as named on the command line, and
	// root its YAML node tree: errors name a key's line.
	file string
	root *yaml.Node
	// stores holds the state stores handed out (see Config.state), one
	// per file, shared by everything in this process that uses it: the
	// store's file lock excludes a second opener, even in one process.
	stores *stateStores
	// metrics, when set (by run), counts the sinks' HTTP traffic: see
	// Config.httpClient.
	metrics *metrics.Metrics
	// trace, when set (--trace), records the sinks' HTTP traffic: see
	// Config.httpClient and package httplog.
	trace *httplog.Log
}

// SourceConfig chooses one directory source.
type SourceConfig struct {
	// Name tells sources apart in reports when there are several.
	Name string `yaml:"name"`
	// LDIF reads an RFC 2849 file.
	LDIF *LDIFConfig `yaml:"ldif"`
	// LDAP is declared in config_ldap.go.
	sourceExtra `yaml:",inline"`
}

// LDIFConfig is the LDIF source.
type LDIFConfig struct {
	Path string `yaml:"path"`
}

// SinkConfig chooses the sink.
type SinkConfig struct {
	// File keeps what each recipient carries in a JSON file.
	File *FileSinkConfig `yaml:"file"`
	// Exchange and Graph are declared in config_cloud.go.
	sinkExtra `yaml:",inline"`
}

// FileSinkConfig is the file sink.
type FileSinkConfig struct {
	Path string `yaml:"path"`
}

// PolicyConfig is the policy.
type PolicyConfig struct {
	// MaxValues per attribute (default 15).
	MaxValues int `yaml:"max_values"`
	// Roots are PEM files of trusted roots; set, they turn on chain
	// validation. Intermediates help build chains.
	Roots         []string `yaml:"roots"`
	Intermediates []string `yaml:"intermediates"`
	// ManagedCAs are PEM files of the CAs the organisation runs.
	ManagedCAs    []string `yaml:"managed_cas"`
	DropUnmanaged bool     `yaml:"drop_unmanaged"`
	// RequireEncryption drops signing-only certificates.
	RequireEncryption bool `yaml:"require_encryption"`
	// RequireValidSignature drops blobs whose signature fails.
	RequireValidSignature bool `yaml:"require_valid_signature"`
	policyExtra           `yaml:",inline"`
}

// StateConfig is the state file.
type StateConfig struct {
	Path string `yaml:"path"`
}

// GuardConfig is the mass-change guard.
type GuardConfig struct {
	// MaxRemovals: most recipients that may lose a certificate in one run
	// (absent: 500; -1 turns the guard off; 0 and other negatives are
	// refused). A pointer, so that an explicit 0 is told from an absent
	// key without a custom UnmarshalYAML (which would escape the
	// decoder's unknown-key check).
	MaxRemovals *int `yaml:"max_removals"`
}

// maxRemovals is the smimesync.Guard's MaxRemovals: 0 (its default) when
// the key is absent.
func (g GuardConfig) maxRemovals() int {
	if g.MaxRemovals == nil {
		return 0
	}
	return *g.MaxRemovals
}

// LogConfig configures logs.
type LogConfig struct {
	// Level is debug, info, warn or error (default warn).
	Level string `yaml:"level"`
	// Format is text or json (default text).
	Format string `yaml:"format"`
}

// PruneConfig is the directory write-back.
type PruneConfig struct {
	Reasons []string `yaml:"reasons"`
}

// loadConfig reads and checks a configuration file. Every error it
// returns is a usage or configuration error (exit 2); those about the
// file's content are *configErrors naming the key and its line.
func loadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("reading config: %v", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, usagef("%s: %v", path, err)
	}
	cfg, err := decodeConfig(b, path)
	if err != nil {
		return nil, err
	}
	cfg.dir = filepath.Dir(abs)
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if err := cfg.checkPaths(abs); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) check() error {
	switch {
	case c.Source == nil && len(c.Sources) == 0:
		return c.errorf("", "no source: set source or sources")
	case c.Source != nil && len(c.Sources) > 0:
		return c.errorf("sources", "set source or sources, not both")
	}
	names := map[string]bool{}
	for i, s := range c.sources() {
		key := c.sourceKey(i)
		if n := s.kinds(); n != 1 {
			return c.errorf(key, "choose exactly one kind (ldif or ldap), got %d", n)
		}
		if len(c.Sources) > 0 {
			if s.Name == "" {
				return c.errorf(key, "a name is required when there are several sources")
			}
			if names[s.Name] {
				return c.errorf(key+".name", "name %q is used twice", s.Name)
			}
			names[s.Name] = true
		}
	}
	if n := c.Sink.kinds(); n != 1 {
		return c.errorf("sink", "choose exactly one of file, exchange (optionally with graph), or graph; got %d", n)
	}
	if c.Sink.File == nil && c.State.Path == "" {
		// Without state every run is a first run: a cloud sink that cannot
		// read certificates back would overwrite every recipient blindly.
		return c.errorf("state.path", "state.path is required with a cloud sink")
	}
	if g := c.Guard.MaxRemovals; g != nil && *g == 0 {
		return c.errorf("guard.max_removals", "0 would stop every run that removes anything; use 1 or more, or -1 to turn the guard off")
	}
	if err := c.checkNumbers(); err != nil {
		return err
	}
	for i, r := range c.Prune.Reasons {
		key := fmt.Sprintf("prune.reasons[%d]", i)
		switch {
		case !knownReason(smimesync.Reason(r)):
			return c.errorf(key, "unknown reason %q", r)
		case !slices.Contains(smimesync.PrunableReasons(), smimesync.Reason(r)):
			return c.errorf(key, "%q: %v; prunable: %v", r, smimesync.ErrUnsafePrune, smimesync.PrunableReasons())
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return c.errorf("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return c.errorf("log.format", "%q is not text or json", c.Log.Format)
	}
	if err := c.Service.check(); err != nil {
		// service.check names the key first ("service.listen: …").
		key, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok || !strings.HasPrefix(key, "service.") {
			key, msg = "service", err.Error()
		}
		return c.errorf(key, "%s", msg)
	}
	return nil
}

func (c *Config) sources() []SourceConfig {
	if c.Source != nil {
		return []SourceConfig{*c.Source}
	}
	return c.Sources
}

func (s *SourceConfig) kinds() int {
	n := s.extraKinds()
	if s.LDIF != nil {
		n++
	}
	return n
}

// path resolves p against the configuration file's folder.
func (c *Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// logger builds the logger the configuration asks for, on w.
func (c *Config) logger(w io.Writer) *slog.Logger {
	lvl := slog.LevelWarn
	switch c.Log.Level {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "error":
		lvl = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// source builds the configured directory source.
func (c *Config) source(log *slog.Logger) (directory.Source, error) {
	build := func(i int, s SourceConfig) (directory.Source, error) {
		if s.LDIF != nil {
			if s.LDIF.Path == "" {
				return nil, c.errorf(c.sourceKey(i)+".ldif.path", "required")
			}
			return &directory.LDIFFile{Path: c.path(s.LDIF.Path), Logger: log}, nil
		}
		return c.extraSource(c.sourceKey(i), s, log)
	}
	if c.Source != nil {
		return build(0, *c.Source)
	}
	m := &directory.Multi{Logger: log}
	for i, s := range c.Sources {
		src, err := build(i, s)
		if err != nil {
			return nil, err
		}
		m.Sources = append(m.Sources, directory.Named{Name: s.Name, Source: src})
	}
	return m, nil
}

// sinks builds the configured sinks. Exchange with graph gives two: each
// runs as its own Syncer with its own state file.
func (c *Config) sinks(log *slog.Logger) ([]namedSink, error) {
	if c.Sink.File != nil {
		if c.Sink.File.Path == "" {
			return nil, c.errorf("sink.file.path", "required")
		}
		return []namedSink{{name: "file", sink: &cloud.FileSink{Path: c.path(c.Sink.File.Path), Logger: log}}}, nil
	}
	return c.extraSinks(log)
}

type namedSink struct {
	name string
	sink cloud.Sink
}

// policy builds the configured policy.
func (c *Config) policy(log *slog.Logger) (*smimesync.Policy, error) {
	p := &smimesync.Policy{
		Now:                   clock,
		MaxValues:             c.Policy.MaxValues,
		DropUnmanaged:         c.Policy.DropUnmanaged,
		RequireEncryption:     c.Policy.RequireEncryption,
		RequireValidSignature: c.Policy.RequireValidSignature,
	}
	var err error
	if len(c.Policy.Roots) > 0 {
		if p.Roots, err = c.pool("policy.roots", c.Policy.Roots); err != nil {
			return nil, err
		}
	}
	if len(c.Policy.Intermediates) > 0 {
		if p.Intermediates, err = c.pool("policy.intermediates", c.Policy.Intermediates); err != nil {
			return nil, err
		}
	}
	for i, f := range c.Policy.ManagedCAs {
		certs, err := c.readCerts(fmt.Sprintf("policy.managed_cas[%d]", i), f)
		if err != nil {
			return nil, err
		}
		p.ManagedCAs = append(p.ManagedCAs, certs...)
	}
	if err := c.extraPolicy(p, log); err != nil {
		return nil, err
	}
	return p, nil
}

func (c *Config) pool(key string, files []string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for i, f := range files {
		certs, err := c.readCerts(fmt.Sprintf("%s[%d]", key, i), f)
		if err != nil {
			return nil, err
		}
		for _, cert := range certs {
			pool.AddCert(cert)
		}
	}
	return pool, nil
}

// readCerts reads every certificate of a PEM file (or one DER
// certificate); key is the file's YAML path, for errors.
func (c *Config) readCerts(key, f string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(c.path(f))
	if err != nil {
		return nil, c.errorf(key, "%v", err)
	}
	var out []*x509.Certificate
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, c.errorf(key, "%s: %v", f, err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		cert, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, c.errorf(key, "%s holds no certificate", f)
		}
		out = append(out, cert)
	}
	return out, nil
}

// state is the state of the i-th sink: a store (smimesync.BoltState)
// named after state.path for the first sink, and after
// "<state>.<sink><ext>" beside it for the others (what was published
// differs per sink). Adding a second sink leaves the first one's state
// where it was. See statePaths for the store's name and the JSON state it
// imports once.
func (c *Config) state(sink string, i int) smimesync.State {
	if st := c.store(sink, i); st != nil {
		return st
	}
	return nil
}

// store is state's store, nil without state.path. The same *BoltState is
// returned for the same file while the Config lives.
func (c *Config) store(sink string, i int) *smimesync.BoltState {
	if c.State.Path == "" {
		return nil
	}
	p := c.path(c.State.Path)
	if i > 0 {
		ext := filepath.Ext(p)
		p = strings.TrimSuffix(p, ext) + "." + sink + ext
	}
	store, legacy := statePaths(p)
	if c.stores == nil {
		return &smimesync.BoltState{Path: store, Import: legacy}
	}
	return c.stores.get(store, legacy)
}

// statePaths names the store of the state configured at p, and the JSON
// state file (smimesync.FileState's, as every release before the store
// kept) it imports once, if it exists: "state.json" is kept in
// "state.db" and imported from "state.json"; a path ending in ".db" is the
// store itself, and nothing is imported; any other path p is kept in
// "p.db" and imported from p.
func statePaths(p string) (store, legacy string) {
	switch filepath.Ext(p) {
	case ".db":
		return p, ""
	case ".json":
		return strings.TrimSuffix(p, ".json") + ".db", p
	default:
		return p + ".db", p
	}
}

// stateStores hands out one *smimesync.BoltState per store file.
type stateStores struct {
	mu sync.Mutex
	m  map[string]*smimesync.BoltState
}

func (s *stateStores) get(store, legacy string) *smimesync.BoltState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.m[store]; ok {
		return st
	}
	if s.m == nil {
		s.m = map[string]*smimesync.BoltState{}
	}
	st := &smimesync.BoltState{Path: store, Import: legacy}
	s.m[store] = st
	return st
}

func (c *Config) pruneReasons() []smimesync.Reason {
	var rs []smimesync.Reason
	for _, r := range c.Prune.Reasons {
		rs = append(rs, smimesync.Reason(r))
	}
	return rs
}

func knownReason(r smimesync.Reason) bool {
	return slices.Contains(smimesync.Reasons(), r)
}
