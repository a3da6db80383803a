package config

import (
	"cmp"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/revocation"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// Syncers builds one Syncer per configured sink, named after it
// (file, exchange, graph), in the order BuildSinks returns them. They
// share the source and the policy; each has its own state (File.Store),
// and the guard, prune reasons, concurrency, not-found recheck and clock
// the file sets. The
// caller adds what it watches them with (Progress). Errors are *Errors.
func (c *File) Syncers(log *slog.Logger) ([]service.Named, error) {
	src, err := c.BuildSource(log)
	if err != nil {
		return nil, err
	}
	pol, version, err := c.buildPolicy(log)
	if err != nil {
		return nil, err
	}
	sinks, err := c.BuildSinks(log)
	if err != nil {
		return nil, err
	}
	recheck, err := c.recheckNotFound()
	if err != nil {
		return nil, err
	}
	var prune []smimesync.Reason
	for _, r := range c.Prune.Reasons {
		prune = append(prune, smimesync.Reason(r))
	}
	var out []service.Named
	for i, s := range sinks {
		var state smimesync.State
		if st := c.Store(s.Name, i); st != nil {
			state = st
		}
		out = append(out, service.Named{Name: s.Name, Syncer: &smimesync.Syncer{
			Source:      src,
			Sink:        s.Sink,
			Policy:      pol,
			Now:         c.now(),
			State:       state,
			Logger:      log.With("sink", s.Name),
			Concurrency: c.Concurrency, // 0: the sink's preference
			Guard:       smimesync.Guard{MaxRemovals: c.Guard.maxRemovals()},
			Prune:       smimesync.Prune{Reasons: prune},

			RemoveDeparted:  c.RemoveDeparted,
			PolicyVersion:   version,
			RecheckNotFound: recheck,
		}})
	}
	return out, nil
}

// BuildSource builds the configured directory source: the one source, or
// a directory.Multi of the named sources. Nothing is contacted yet; a
// setting the source refuses is an *Error naming its key.
func (c *File) BuildSource(log *slog.Logger) (directory.Source, error) {
	build := func(i int, s Source) (directory.Source, error) {
		key := c.sourceKey(i)
		switch {
		case s.LDIF != nil:
			if s.LDIF.Path == "" {
				return nil, c.errorf(key+".ldif.path", "required")
			}
			return &directory.LDIFFile{Path: c.path(s.LDIF.Path), Logger: log}, nil
		case s.LDAP == nil:
			return nil, c.errorf(key, "choose ldif or ldap")
		}
		cfg := *s.LDAP
		cfg.CAFile = c.path(cfg.CAFile)
		cfg.Bind.PasswordFile = c.path(cfg.Bind.PasswordFile)
		cfg.Bind.Keytab = c.path(cfg.Bind.Keytab)
		cfg.Bind.Krb5Conf = c.path(cfg.Bind.Krb5Conf)
		cfg.Prune.BackupDir = c.path(cfg.Prune.BackupDir)
		log := log
		if s.Name != "" {
			log = log.With("source", s.Name)
		}
		src, err := ldapsource.New(cfg, log)
		if err != nil {
			return nil, c.sectionError(key+".ldap", err)
		}
		return src, nil
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

// NamedSink is a sink and its name: file, exchange or graph.
type NamedSink struct {
	// Name is the sink's key under sink, and the name of its Syncer.
	Name string
	// Sink is the sink.
	Sink cloud.Sink
}

// BuildSinks builds the configured sinks: file; exchange; graph; or
// exchange then graph, each of which runs as its own Syncer with its own
// state. The cloud sinks get File.HTTPClient, and the graph sink is built
// by File.GraphSink. Secrets are read here (a client secret variable that
// is not set is an *Error naming its key); nothing is contacted yet.
func (c *File) BuildSinks(log *slog.Logger) ([]NamedSink, error) {
	if c.Sink.File != nil {
		if c.Sink.File.Path == "" {
			return nil, c.errorf("sink.file.path", "required")
		}
		return []NamedSink{{Name: "file", Sink: &cloud.FileSink{Path: c.path(c.Sink.File.Path), Logger: log}}}, nil
	}
	var out []NamedSink
	if x := c.Sink.Exchange; x != nil {
		cfg := *x
		c.resolveAuthPaths(&cfg.Config)
		if hc := c.HTTPClient; hc != nil {
			cfg.HTTPClient = hc
			cred, err := cfg.Config.Credential(azauth.WithHTTPClient(hc))
			if err != nil {
				return nil, c.sectionError("sink.exchange", err)
			}
			cfg.Credential = cred
		}
		cfg.Logger = log.With("sink", "exchange")
		sink, err := exchange.New(cfg)
		if err != nil {
			return nil, c.sectionError("sink.exchange", err)
		}
		out = append(out, NamedSink{Name: "exchange", Sink: sink})
	}
	if g := c.Sink.Graph; g != nil {
		auth := g.Auth
		if x := c.Sink.Exchange; x != nil {
			auth = inheritAuth(auth, x.Config)
		}
		c.resolveAuthPaths(&auth)
		newSink := c.GraphSink
		if newSink == nil {
			newSink = noGraphSink
		}
		sink, err := newSink(g.Sink, auth, c.HTTPClient, log.With("sink", "graph"))
		if err != nil {
			return nil, c.sectionError("sink.graph", err)
		}
		out = append(out, NamedSink{Name: "graph", Sink: sink})
	}
	return out, nil
}

// inheritAuth fills, field by field, what the graph sink's own sign-in
// leaves out from the Exchange sink's: a graph block may name its own app
// and keep the tenant and cloud, or name nothing and share everything.
func inheritAuth(own, from azauth.Config) azauth.Config {
	own.TenantID = cmp.Or(own.TenantID, from.TenantID)
	own.ClientID = cmp.Or(own.ClientID, from.ClientID)
	if own.Auth.Method == "" {
		own.Auth = from.Auth
	}
	own.Cloud = cmp.Or(own.Cloud, from.Cloud)
	own.Endpoints.Login = cmp.Or(own.Endpoints.Login, from.Endpoints.Login)
	own.Endpoints.Exchange = cmp.Or(own.Endpoints.Exchange, from.Endpoints.Exchange)
	own.Endpoints.Graph = cmp.Or(own.Endpoints.Graph, from.Endpoints.Graph)
	return own
}

// resolveAuthPaths makes the sign-in's file names relative to the
// configuration file.
func (c *File) resolveAuthPaths(a *azauth.Config) {
	a.Auth.SecretFile = c.path(a.Auth.SecretFile)
	a.Auth.CertificateFile = c.path(a.Auth.CertificateFile)
	a.Auth.TokenFile = c.path(a.Auth.TokenFile)
}

// BuildPolicy builds the configured policy, reading the CA files it names
// and building the revocation checker of policy.revocation. A file that
// cannot be read or holds no certificate is an *Error naming its key.
func (c *File) BuildPolicy(log *slog.Logger) (*smimesync.Policy, error) {
	p, _, err := c.buildPolicy(log)
	return p, err
}

// buildPolicy is BuildPolicy, and the Syncers' PolicyVersion: with
// policy.roots or policy.intermediates (and no policy.revocation), the
// SHA-256 of their certificates, in the order read, so that a pass over
// unchanged entries skips them (smimesync.Memo) and a change of a trust
// anchor judges every entry again. With policy.revocation it is empty,
// and every pass judges every entry: a revocation is then seen at the
// next pass, not after Syncer.Reverify. (A CA certificate of those files
// that expires is seen when the entries are next judged: at the latest
// after Syncer.Reverify.)
func (c *File) buildPolicy(log *slog.Logger) (*smimesync.Policy, string, error) {
	p := &smimesync.Policy{
		Now:                   c.now(),
		MaxValues:             c.Policy.MaxValues,
		DropUnmanaged:         c.Policy.DropUnmanaged,
		RequireEncryption:     c.Policy.RequireEncryption,
		RequireValidSignature: c.Policy.RequireValidSignature,
	}
	var err error
	anchors := sha256.New()
	if len(c.Policy.Roots) > 0 {
		if p.Roots, err = c.pool("policy.roots", c.Policy.Roots, anchors); err != nil {
			return nil, "", err
		}
	}
	if len(c.Policy.Intermediates) > 0 {
		if p.Intermediates, err = c.pool("policy.intermediates", c.Policy.Intermediates, anchors); err != nil {
			return nil, "", err
		}
	}
	for i, f := range c.Policy.ManagedCAs {
		certs, err := c.ReadCerts(fmt.Sprintf("policy.managed_cas[%d]", i), f)
		if err != nil {
			return nil, "", err
		}
		p.ManagedCAs = append(p.ManagedCAs, certs...)
	}
	if err := c.revocation(p, log); err != nil {
		return nil, "", err
	}
	if c.Policy.Revocation != nil || p.Roots == nil && p.Intermediates == nil {
		return p, "", nil
	}
	return p, "certs:" + hex.EncodeToString(anchors.Sum(nil)), nil
}

// pool reads the certificates of files (the key's list) into a pool, and
// writes each one's DER to version.
func (c *File) pool(key string, files []string, version hash.Hash) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for i, f := range files {
		certs, err := c.ReadCerts(fmt.Sprintf("%s[%d]", key, i), f)
		if err != nil {
			return nil, err
		}
		for _, cert := range certs {
			pool.AddCert(cert)
			fmt.Fprintf(version, "%s %d\n", key, len(cert.Raw))
			version.Write(cert.Raw)
		}
	}
	return pool, nil
}

// ReadCerts reads every certificate of the PEM file f (or its one DER
// certificate), resolved against File.Dir; key is the file's YAML path
// ("policy.roots[0]"), which the *Error it returns names.
func (c *File) ReadCerts(key, f string) ([]*x509.Certificate, error) {
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

// revocation sets p.Revocation to the checker policy.revocation
// describes, if any.
func (c *File) revocation(p *smimesync.Policy, log *slog.Logger) error {
	r := c.Policy.Revocation
	if r == nil {
		return nil
	}
	for _, f := range []struct {
		key string
		neg bool
	}{
		{"timeout", r.Timeout < 0}, {"max_crl_size", r.MaxCRLSize < 0}, {"entry_budget", r.EntryBudget < 0},
		{"pass_budget", r.PassBudget < 0}, {"max_cache_bytes", r.MaxCacheBytes < 0},
	} {
		if f.neg { // caught by checkNumbers, unless c was not parsed
			return c.errorf("policy.revocation."+f.key, "must not be negative")
		}
	}
	chk := &revocation.Checker{
		Now:           c.now(),
		HardFail:      r.HardFail,
		Timeout:       r.Timeout,
		MaxCRLSize:    r.MaxCRLSize,
		AllowHosts:    r.AllowHosts,
		EntryBudget:   r.EntryBudget,
		PassBudget:    r.PassBudget,
		MaxCacheBytes: r.MaxCacheBytes,
		Logger:        log,
	}
	for i, m := range r.Methods {
		switch revocation.Method(m) {
		case revocation.OCSP, revocation.CRL:
			chk.Methods = append(chk.Methods, revocation.Method(m))
		default:
			return c.errorf(fmt.Sprintf("policy.revocation.methods[%d]", i), "%q is not ocsp or crl", m)
		}
	}
	if err := chk.Validate(); err != nil {
		return c.errorf("policy.revocation.allow_hosts", "%v", err)
	}
	if len(p.ManagedCAs) == 0 && p.Roots == nil {
		log.Warn("policy.revocation is on, but neither policy.managed_cas nor policy.roots is set: no certificate's issuer can be vouched for, so none is checked")
	}
	p.Revocation = chk
	return nil
}

// Store is the state store of the i-th sink, named sink (see
// BuildSinks), or nil without state.path: a smimesync.BoltState named
// after state.path for the first sink, and after "<state>.<sink><ext>"
// beside it for the others (what was published differs per sink), so that
// adding a second sink leaves the first one's state where it was. A
// state.path ending in .db is the store itself; "state.json" is kept in
// "state.db", which imports state.json (a smimesync.FileState, as releases
// before the store kept) once, if it exists; any other path p is kept in
// "p.db" and imported from p. A File from Load or Parse returns the same
// *BoltState for the same file every time (its lock excludes a second
// opener, even in one process).
func (c *File) Store(sink string, i int) *smimesync.BoltState {
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
		return &smimesync.BoltState{Path: store, Import: legacy, MapLimit: c.State.MapLimit}
	}
	return c.stores.get(store, legacy, c.State.MapLimit)
}

// statePaths names the store of the state configured at p, and the JSON
// state file it imports (see File.Store).
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

func (s *stateStores) get(store, legacy string, mapLimit int64) *smimesync.BoltState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.m[store]; ok {
		return st
	}
	if s.m == nil {
		s.m = map[string]*smimesync.BoltState{}
	}
	st := &smimesync.BoltState{Path: store, Import: legacy, MapLimit: mapLimit}
	s.m[store] = st
	return st
}
