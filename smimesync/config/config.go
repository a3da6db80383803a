package config

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/smimesync"
)

// File is the configuration file. Unknown keys are an error. Relative
// paths are relative to Dir, the file's folder. Secrets never appear here:
// they come from the environment or a file named by a *_env or *_file key.
//
// The fields after Report are not keys of the file: the program sets them
// (Load and Parse set Dir) before it builds what the file describes.
type File struct {
	// Source is the one directory source; Sources lists several (one per
	// forest) and excludes Source.
	Source  *Source  `yaml:"source"`
	Sources []Source `yaml:"sources"`
	// Sink is where certificates are published.
	Sink Sink `yaml:"sink"`
	// Policy chooses what each recipient carries.
	Policy Policy `yaml:"policy"`
	// State is where the cookie and what was published are kept.
	State State `yaml:"state"`
	// Guard is the mass-change guard.
	Guard Guard `yaml:"guard"`
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
	// RecheckNotFound is how long a user no cloud recipient matched is
	// taken on trust before the sink is asked again: a positive duration
	// ("30m"; absent: an hour), or "every_pass"
	// (smimesync.Syncer.RecheckNotFound). Every such user is asked about
	// in the same pass, once a period.
	RecheckNotFound string `yaml:"recheck_not_found"`
	// Log configures logging (see File.Logger).
	Log Log `yaml:"log"`
	// Prune lists the drop reasons whose values are removed from the
	// directory (write-back; only LDAP sources support it, and they keep a
	// backup and default to a dry run).
	Prune Prune `yaml:"prune"`
	// Service configures the long-running service (see File.BuildService).
	Service Service `yaml:"service"`
	// Report says where passes keep the report store (package
	// smimesync/report; see File.ReportPath).
	Report Report `yaml:"report"`

	// Dir is the folder relative paths are resolved against: the
	// configuration file's, as Load and Parse set it. Empty means the
	// working directory.
	Dir string `yaml:"-"`
	// Now is the clock of the policy, the revocation checker, the
	// Syncers and the service (default time.Now).
	Now func() time.Time `yaml:"-"`
	// HTTPClient, when set, is the HTTP client of the cloud sinks and of
	// their token credentials (to count or record their traffic); nil
	// leaves each its default.
	HTTPClient *http.Client `yaml:"-"`
	// GraphSink builds the sink of sink.graph (see GraphSinkFunc); nil
	// refuses a file that names one with ErrNoGraphSink.
	GraphSink GraphSinkFunc `yaml:"-"`

	// name is the configuration file as named to Load or Parse, and root
	// its YAML node tree: errors name a key's line.
	name string
	root *yaml.Node
	// stores holds the state stores handed out (see File.Store), one per
	// file, shared by everything in this process that uses it: the
	// store's file lock excludes a second opener, even in one process.
	stores *stateStores
}

// Source chooses one directory source: exactly one of LDIF and LDAP.
type Source struct {
	// Name tells sources apart in reports when there are several.
	Name string `yaml:"name"`
	// LDIF reads an RFC 2849 file.
	LDIF *LDIF `yaml:"ldif"`
	// LDAP reads Active Directory or OpenLDAP.
	LDAP *ldapsource.Config `yaml:"ldap"`
}

// LDIF is the LDIF source.
type LDIF struct {
	// Path of the LDIF file (required).
	Path string `yaml:"path"`
}

// Sink chooses the sink: File, or Exchange, Graph, or both of those.
type Sink struct {
	// File keeps what each recipient carries in a JSON file.
	File *FileSink `yaml:"file"`
	// Exchange publishes UserCertificate and UserSMimeCertificate to
	// Exchange Online recipients.
	Exchange *exchange.Config `yaml:"exchange"`
	// Graph writes certificate-based sign-in bindings
	// (authorizationInfo.certificateUserIds) to Entra ID users: on its own,
	// or as a second sink beside exchange, whose tenant, application and
	// sign-in it then shares unless it names its own.
	Graph *Graph `yaml:"graph"`
}

// FileSink is the file sink.
type FileSink struct {
	// Path of the JSON file (required).
	Path string `yaml:"path"`
}

// Policy is the policy (smimesync.Policy).
type Policy struct {
	// MaxValues per attribute (default 15).
	MaxValues int `yaml:"max_values"`
	// Roots are PEM files of trusted roots; set, they turn on chain
	// validation. Intermediates help build chains.
	Roots         []string `yaml:"roots"`
	Intermediates []string `yaml:"intermediates"`
	// ManagedCAs are PEM files of the CAs the organisation runs.
	ManagedCAs []string `yaml:"managed_cas"`
	// DropUnmanaged drops certificates no managed CA issued.
	DropUnmanaged bool `yaml:"drop_unmanaged"`
	// RequireEncryption drops signing-only certificates.
	RequireEncryption bool `yaml:"require_encryption"`
	// RequireValidSignature drops blobs whose signature fails.
	RequireValidSignature bool `yaml:"require_valid_signature"`
	// Revocation turns on OCSP and CRL checking.
	Revocation *Revocation `yaml:"revocation"`
}

// Revocation is policy.revocation (package smimesync/revocation). Only
// certificates whose issuer is in policy.managed_cas (and signed them) or
// on a chain verified to policy.roots are checked; with neither set,
// nothing is.
type Revocation struct {
	// Methods is the order to try: ocsp, crl (default both, OCSP first).
	Methods []string `yaml:"methods"`
	// HardFail drops a certificate whose revocation sources all fail
	// (default: keep it and report the failure).
	HardFail bool `yaml:"hard_fail"`
	// Timeout per request (Go duration, default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxCRLSize in bytes (default 32 MiB).
	MaxCRLSize int64 `yaml:"max_crl_size"`
	// AllowHosts are the loopback, private or link-local destinations
	// the checker may contact: host names (exact), IP addresses, or CIDR
	// prefixes (default none: such destinations are refused).
	AllowHosts []string `yaml:"allow_hosts"`
	// EntryBudget bounds the time all fetches for one directory entry
	// take together (default 30s).
	EntryBudget time.Duration `yaml:"entry_budget"`
	// PassBudget bounds the time all fetches of one plan take together
	// (default 10m).
	PassBudget time.Duration `yaml:"pass_budget"`
	// MaxCacheBytes bounds the memory of cached answers and CRLs
	// (default 128 MiB).
	MaxCacheBytes int64 `yaml:"max_cache_bytes"`
}

// State is the state: where each sink's store is kept (see File.Store).
type State struct {
	// Path of the first sink's store; required with a cloud sink.
	Path string `yaml:"path"`
	// MapLimit, in bytes, bounds on Linux the pages of the store's file
	// mapped into the process (smimesync.BoltState.MapLimit): 0, the
	// default, leaves them mapped (the fastest passes; the RSS grows
	// toward the file's size, as reclaimable page cache).
	MapLimit int64 `yaml:"map_limit"`
}

// Guard is the mass-change guard (smimesync.Guard).
type Guard struct {
	// MaxRemovals: most recipients that may lose a certificate in one run
	// (absent: 500; -1 turns the guard off; 0 and other negatives are
	// refused). A pointer, so that an explicit 0 is told from an absent
	// key without a custom UnmarshalYAML (which would escape the
	// decoder's unknown-key check).
	MaxRemovals *int `yaml:"max_removals"`
}

// maxRemovals is the smimesync.Guard's MaxRemovals: 0 (its default) when
// the key is absent.
func (g Guard) maxRemovals() int {
	if g.MaxRemovals == nil {
		return 0
	}
	return *g.MaxRemovals
}

// Log configures logs (see File.Logger).
type Log struct {
	// Level is debug, info, warn or error (default warn).
	Level string `yaml:"level"`
	// Format is text or json (default text).
	Format string `yaml:"format"`
}

// Prune is the directory write-back.
type Prune struct {
	// Reasons are smimesync.Reasons among smimesync.PrunableReasons.
	Reasons []string `yaml:"reasons"`
}

// Report says where passes keep the report (see File.ReportPath).
type Report struct {
	// Path of the report store (a bbolt file, package smimesync/report).
	// Default: next to the state file, its name ending in .report.db
	// (state.json or state.db gives state.report.db). With neither set,
	// no report is kept. A JSON report of an earlier release at this path
	// is converted in place once (and kept as
	// <path>.imported-<UTC time>.bak).
	Path string `yaml:"path"`
}

// Load reads and checks the configuration file at path (see Parse). A
// file that cannot be read is an *Error too.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Msg: "reading config: " + err.Error(), Err: err}
	}
	return Parse(b, path)
}

// Parse decodes and checks a configuration held in data, read from the
// file at path: path names the file in errors, relative paths resolve
// against its folder, and no key may name the file itself. Every error it
// returns is an *Error, or several joined; nothing is built or read but
// the file.
func Parse(data []byte, path string) (*File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error(), Err: err}
	}
	c, err := decode(data, path)
	if err != nil {
		return nil, err
	}
	c.Dir = filepath.Dir(abs)
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := c.checkPaths(abs); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *File) check() error {
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
	if _, err := c.recheckNotFound(); err != nil {
		return err
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
		case !slices.Contains(smimesync.Reasons(), smimesync.Reason(r)):
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
	return c.Service.check(c)
}

func (c *File) sources() []Source {
	if c.Source != nil {
		return []Source{*c.Source}
	}
	return c.Sources
}

func (s *Source) kinds() int {
	n := 0
	if s.LDIF != nil {
		n++
	}
	if s.LDAP != nil {
		n++
	}
	return n
}

func (s Sink) kinds() int {
	n := 0
	if s.File != nil {
		n++
	}
	if s.Exchange != nil || s.Graph != nil {
		n++ // exchange, graph, or exchange with graph
	}
	return n
}

// path resolves p against the configuration file's folder.
func (c *File) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// now is the clock: c.Now, or time.Now.
func (c *File) now() func() time.Time {
	if c.Now != nil {
		return c.Now
	}
	return time.Now
}

// Logger builds the logger log.level and log.format ask for, writing to w.
func (c *File) Logger(w io.Writer) *slog.Logger {
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

// ReportPath is where the report store is kept (report.path, or beside
// state.path: state.json or state.db gives state.report.db); "" when
// nowhere.
func (c *File) ReportPath() string {
	if c.Report.Path != "" {
		return c.path(c.Report.Path)
	}
	if c.State.Path == "" {
		return ""
	}
	p := c.path(c.State.Path)
	return strings.TrimSuffix(p, filepath.Ext(p)) + ".report.db"
}

// ReportImport is the JSON report of an earlier release that the report
// store imports once, when it exists (report.Options.Import): the old
// default beside state.path (state.json gave state.report.json). "" when
// report.path is set (a JSON report there is converted in place) or no
// report is kept.
func (c *File) ReportImport() string {
	if c.Report.Path != "" || c.State.Path == "" {
		return ""
	}
	p := c.path(c.State.Path)
	return strings.TrimSuffix(p, filepath.Ext(p)) + ".report.json"
}

// recheckNotFound is RecheckNotFound as the Syncer takes it.
func (c *File) recheckNotFound() (time.Duration, error) {
	switch v := strings.TrimSpace(c.RecheckNotFound); v {
	case "":
		return 0, nil
	case "every_pass":
		return smimesync.RecheckNotFoundEveryPass, nil
	default:
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, c.errorf("recheck_not_found", "%q: use a positive duration such as 30m or 1h, or every_pass", v)
		}
		return d, nil
	}
}
