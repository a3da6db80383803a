package ldapsource

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.yaml.in/yaml/v3"
)

// Config says which directory to read and how. Its zero value is not
// enough (a URL is required), but every other field has a working default.
// The yaml tags are the keys of the `source: {ldap: …}` section of the
// smimesync configuration file.
type Config struct {
	// URL is one LDAP URL: ldaps://host[:port] or ldap://host[:port].
	URL string `yaml:"url"`
	// URLs lists more servers, tried in order after URL when one cannot
	// be reached (failover).
	URLs StringList `yaml:"urls"`
	// CAFile is a PEM file with the CA certificates to trust; empty means
	// the system's roots.
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the name the server's certificate is verified
	// against (default: the host of the URL).
	ServerName string `yaml:"server_name"`
	// AllowPlainLDAP lets ldap:// URLs run without StartTLS. Without it an
	// ldap:// URL always upgrades with StartTLS. A simple bind over plain
	// LDAP sends the password in the clear: the Source logs a warning
	// (once) when it does one.
	AllowPlainLDAP bool `yaml:"allow_plain_ldap"`
	// Bind says how to authenticate.
	Bind Bind `yaml:"bind"`

	// BaseDN lists the subtrees to read. Empty means the server's
	// defaultNamingContext (the domain root on Active Directory).
	BaseDN StringList `yaml:"base_dn"`
	// Filter selects the entries; empty means [DefaultFilter] for the
	// server's kind.
	Filter string `yaml:"filter"`
	// ExcludeOU lists subtrees (any DN, usually OUs) whose entries are
	// left out even though they lie under a BaseDN.
	ExcludeOU StringList `yaml:"exclude_ou"`
	// Groups, when set, keeps only members of these groups: on Active
	// Directory nested membership counts (LDAP_MATCHING_RULE_IN_CHAIN,
	// 1.2.840.113556.1.4.1941); elsewhere direct memberOf. Group
	// membership changes do not touch the user object, so deltas cannot
	// see them: with Groups, every pass is full (Delta "" becomes "none",
	// and another Delta is refused by Validate).
	Groups StringList `yaml:"groups"`
	// Server is the kind of directory: "ad" (Active Directory, Samba AD)
	// or "openldap" (OpenLDAP, 389-DS and other RFC 4512 servers). Empty
	// detects it from the root DSE (supportedCapabilities carries
	// 1.2.840.113556.1.4.800 on AD).
	Server ServerKind `yaml:"server"`
	// IDAttribute names the attribute holding each entry's stable
	// identifier. Empty means objectGUID on AD and entryUUID elsewhere;
	// entries without it are identified by their DN. Deltas report
	// deletions by objectGUID or entryUUID only, so another IDAttribute
	// makes every pass full (Delta "" becomes "none", and another Delta
	// is refused by Validate). A value that is printable UTF-8 is used as
	// it is; a binary one (mS-DS-ConsistencyGuid) becomes a GUID string
	// when it has 16 bytes, lowercase hex otherwise.
	IDAttribute string `yaml:"id_attribute"`

	// Delta chooses how a pass with a cookie finds changes: "dirsync"
	// (AD's DirSync control; needs the Replicating Directory Changes
	// right, and falls back to usn, with a warning, when refused), "usn" (AD's uSNChanged, pinned to the DC's invocationId; for
	// accounts without that right), "syncrepl" (RFC 4533 content sync,
	// refreshOnly; OpenLDAP's syncprov), or "none" (every pass full).
	// Empty chooses: dirsync on AD, falling back to usn when DirSync is
	// refused; syncrepl elsewhere when the server offers it, else none.
	Delta DeltaMode `yaml:"delta"`
	// FullPassEvery forces a full pass when the last one is older. Zero
	// means never, except with usn deltas whose account cannot see deleted
	// objects: there deletions are found only by full passes, so zero
	// means [DefaultUSNFullPassEvery].
	FullPassEvery time.Duration `yaml:"full_pass_every"`

	// PageSize is the paged-results page size (default 1000, Active
	// Directory's MaxPageSize).
	PageSize int `yaml:"page_size"`
	// ReadConnections is how many connections a full read of Active
	// Directory uses at once (default [DefaultReadConnections], at most
	// [MaxReadConnections]): the read is split into ranges of uSNCreated,
	// each a paged search of its own, and the connections, all bound to
	// the same domain controller, take them in turn. 1 reads through one
	// paged search. Deltas, and OpenLDAP (which has no uSNCreated), read
	// through one connection.
	ReadConnections int `yaml:"read_connections"`
	// RangeSize, when positive, asks Active Directory for the values of
	// the certificate attributes in slices of this many values
	// (userCertificate;range=0-N-1, then the next slice). Zero asks for
	// whole attributes and follows the slices the server makes on its own
	// (AD: MaxValRange, 1,500 values by default). Either way every value
	// is read.
	RangeSize int `yaml:"range_size"`
	// DialTimeout bounds connecting, TLS and binding (default 15 s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// Timeout bounds each wait for the server's next answer during a
	// pass (default 2 min). Time spent in the caller's yield does not
	// count.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many more rounds over the URLs a connection attempt
	// makes after the first fails (default 3), with exponential backoff
	// from 500 ms up to 15 s. Wrong credentials and certificate failures
	// are not retried.
	Retries int `yaml:"retries"`

	// Prune configures the write-back ([Source.Prune]).
	Prune PruneConfig `yaml:"prune"`
}

// Bind says how the source authenticates.
type Bind struct {
	// Method is "simple", "ntlm", "kerberos", "sspi" (Windows only: the
	// running account, or User/password through SSPI) or "anonymous".
	// Empty means simple when User is set and anonymous otherwise. ntlm is
	// the NTLM ("Sicily") bind Active Directory offers; Samba does not
	// implement it (use kerberos or simple over TLS there).
	Method BindMethod `yaml:"method"`
	// User is the bind name: a DN or user@domain for simple binds;
	// user, DOMAIN\user or user@domain for NTLM; the principal (without
	// realm) for Kerberos.
	User string `yaml:"user"`
	// Domain is the NTLM domain, when User does not carry one.
	Domain string `yaml:"domain"`
	// Password is for programs that hold the secret themselves. It is
	// never read from a configuration file (no yaml key); files name the
	// secret with PasswordEnv or PasswordFile instead.
	Password string `yaml:"-"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"password_env"`
	// PasswordFile names a file holding the password (one trailing newline
	// is ignored).
	PasswordFile string `yaml:"password_file"`
	// Realm is the Kerberos realm (default: krb5.conf's default_realm).
	Realm string `yaml:"realm"`
	// Keytab is a Kerberos keytab file for User; with neither Keytab nor a
	// password, the credentials cache ($KRB5CCNAME) is used.
	Keytab string `yaml:"keytab"`
	// Krb5Conf is the Kerberos configuration (default $KRB5_CONFIG, then
	// /etc/krb5.conf).
	Krb5Conf string `yaml:"krb5_conf"`
	// SPN is the service principal of the directory server (default
	// ldap/<host of the URL>).
	SPN string `yaml:"spn"`
}

// PruneConfig configures the write-back: removing from the directory the
// values smimesync's policy rejects.
type PruneConfig struct {
	// BackupDir receives a copy of every value before it is removed, named
	// by the entry's ID and the value's SHA-256 fingerprint. Required
	// unless DryRun.
	BackupDir string `yaml:"backup_dir"`
	// DryRun, when nil or true, only logs what would be removed. Set it to
	// false to change the directory.
	DryRun *bool `yaml:"dry_run"`
}

// dryRun reports whether Prune only logs (the default).
func (p PruneConfig) dryRun() bool { return p.DryRun == nil || *p.DryRun }

// StringList is a list of strings that a YAML file may also give as a
// single scalar.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "" {
			*l = nil
			return nil
		}
		*l = StringList{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// Defaults.
const (
	// DefaultPageSize is Active Directory's MaxPageSize.
	DefaultPageSize = 1000
	// DefaultDialTimeout bounds connecting and binding.
	DefaultDialTimeout = 15 * time.Second
	// DefaultTimeout bounds each wait for the server.
	DefaultTimeout = 2 * time.Minute
	// DefaultRetries is the number of extra connection rounds.
	DefaultRetries = 3
	// DefaultUSNFullPassEvery is how stale a usn-delta cookie may get
	// when deleted objects are not visible to the account.
	DefaultUSNFullPassEvery = 24 * time.Hour
)

// ServerKind is the kind of directory (Config.Server), spelled in YAML
// and JSON as its constant's value; the empty kind detects it.
type ServerKind string

// Server kinds (Config.Server).
const (
	// ServerAD is Active Directory (and Samba AD).
	ServerAD ServerKind = "ad"
	// ServerOpenLDAP is OpenLDAP, 389-DS and other RFC 4512 directories.
	ServerOpenLDAP ServerKind = "openldap"
)

// DeltaMode is how a pass with a cookie finds changes (Config.Delta),
// spelled in YAML and JSON as its constant's value; the empty mode
// chooses.
type DeltaMode string

// Delta mechanisms (Config.Delta).
const (
	// DeltaDirSync is AD's DirSync control.
	DeltaDirSync DeltaMode = "dirsync"
	// DeltaUSN is AD's uSNChanged high-water mark.
	DeltaUSN DeltaMode = "usn"
	// DeltaSyncrepl is RFC 4533 content synchronisation (refreshOnly).
	DeltaSyncrepl DeltaMode = "syncrepl"
	// DeltaNone makes every pass full.
	DeltaNone DeltaMode = "none"
)

// BindMethod is how the source authenticates (Bind.Method), spelled in
// YAML and JSON as its constant's value; the empty method is simple with a
// user and anonymous without.
type BindMethod string

// Bind methods (Bind.Method).
const (
	// BindSimple is an LDAP simple bind (name and password).
	BindSimple BindMethod = "simple"
	// BindNTLM is Active Directory's NTLM bind.
	BindNTLM BindMethod = "ntlm"
	// BindKerberos is SASL GSSAPI through gokrb5.
	BindKerberos BindMethod = "kerberos"
	// BindSSPI is SASL GSSAPI through Windows SSPI.
	BindSSPI BindMethod = "sspi"
	// BindAnonymous does not bind.
	BindAnonymous BindMethod = "anonymous"
)

// DefaultFilter returns the filter used when Config.Filter is empty:
//
//   - Active Directory: (&(objectCategory=person)(objectClass=user)(mail=*)),
//     the mail-enabled users (mailboxes, shared mailboxes and mail users,
//     enabled or not; computers are not persons, contacts not users). Add
//     (objectClass=contact) yourself to publish contacts' certificates.
//   - other directories: (&(objectClass=inetOrgPerson)(mail=*)).
func DefaultFilter(server ServerKind) string {
	if server == ServerAD {
		return "(&(objectCategory=person)(objectClass=user)(mail=*))"
	}
	return "(&(objectClass=inetOrgPerson)(mail=*))"
}

// ErrConfig is wrapped by every error [Config.Validate] returns, and by
// the errors of a pass that no server can cure: a missing password
// variable or file, an unreadable CA file, a base DN outside the server's
// naming contexts. Each of those is a [*ConfigError].
var ErrConfig = errors.New("ldapsource: invalid configuration")

// ConfigError is a configuration that cannot work, with the key at fault.
// It wraps [ErrConfig]. Found by [Config.Validate], or when a pass
// connects (secrets and the CA file are read then; the naming contexts are
// the server's).
type ConfigError struct {
	// Field is the key's YAML path within the ldap section, as the yaml
	// tags of [Config] name it: "bind.password_env", "base_dn", "urls".
	Field string
	// Reason says what is wrong with it.
	Reason string
	// Err is the underlying error, if any (an *fs.PathError for a
	// password file that cannot be read).
	Err error
}

// Error implements error; the message is the same with or without Field.
func (e *ConfigError) Error() string { return ErrConfig.Error() + ": " + e.Reason }

// Unwrap returns [ErrConfig] and Err.
func (e *ConfigError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrConfig}
	}
	return []error{ErrConfig, e.Err}
}

func configErr(field, format string, a ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// urlKey names the key that holds raw: url, or urls.
func urlKey(c *Config, raw string) string {
	if strings.TrimSpace(c.URL) == raw {
		return "url"
	}
	return "urls"
}

// urls returns URL followed by URLs, without empties.
func (c *Config) urls() []string {
	var out []string
	for _, u := range append([]string{c.URL}, c.URLs...) {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// method returns the effective bind method.
func (b *Bind) method() BindMethod {
	if b.Method != "" {
		return BindMethod(strings.ToLower(string(b.Method)))
	}
	if b.User != "" {
		return BindSimple
	}
	return BindAnonymous
}

// Validate checks the configuration without touching the network or the
// files it names (secrets are read at bind time, so that a rotated file
// is picked up). Every error wraps [ErrConfig].
func (c *Config) Validate() error {
	var errs []error
	urls := c.urls()
	if len(urls) == 0 {
		errs = append(errs, configErr("url", "url: at least one LDAP URL is required"))
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			errs = append(errs, configErr(urlKey(c, raw), "url %q: %v", raw, err))
		case u.Scheme != "ldap" && u.Scheme != "ldaps":
			errs = append(errs, configErr(urlKey(c, raw), "url %q: scheme must be ldap or ldaps", raw))
		case u.Host == "":
			errs = append(errs, configErr(urlKey(c, raw), "url %q: no host", raw))
		}
	}
	if c.Filter != "" {
		if _, err := ldap.CompileFilter(c.Filter); err != nil {
			errs = append(errs, configErr("filter", "filter %q: %v", c.Filter, err))
		}
	}
	for _, list := range []struct {
		key string
		dns []string
	}{{"base_dn", c.BaseDN}, {"exclude_ou", c.ExcludeOU}, {"groups", c.Groups}} {
		for _, dn := range list.dns {
			if _, err := ldap.ParseDN(dn); err != nil || strings.TrimSpace(dn) == "" {
				errs = append(errs, configErr(list.key, "%s %q is not a DN", list.key, dn))
			}
		}
	}
	switch ServerKind(strings.ToLower(string(c.Server))) {
	case "", ServerAD, ServerOpenLDAP:
	default:
		errs = append(errs, configErr("server", "server %q: want ad or openldap", c.Server))
	}
	switch d := DeltaMode(strings.ToLower(string(c.Delta))); d {
	case "", DeltaNone:
	case DeltaDirSync, DeltaUSN, DeltaSyncrepl:
		if c.IDAttribute != "" && !strings.EqualFold(c.IDAttribute, "objectGUID") && !strings.EqualFold(c.IDAttribute, "entryUUID") {
			errs = append(errs, configErr("delta", "delta %q reports deletions by objectGUID or entryUUID: it cannot work with id_attribute %q", d, c.IDAttribute))
		}
		if len(c.Groups) > 0 {
			errs = append(errs, configErr("delta", "delta %q cannot see group membership changes: leave delta empty or none with groups", d))
		}
		if d != DeltaSyncrepl && strings.EqualFold(string(c.Server), string(ServerOpenLDAP)) {
			errs = append(errs, configErr("delta", "delta %q needs Active Directory", d))
		}
	default:
		errs = append(errs, configErr("delta", "delta %q: want dirsync, usn, syncrepl or none", c.Delta))
	}
	for _, n := range []struct {
		key string
		v   int64
	}{{"page_size", int64(c.PageSize)}, {"read_connections", int64(c.ReadConnections)}, {"range_size", int64(c.RangeSize)}, {"retries", int64(c.Retries)},
		{"dial_timeout", int64(c.DialTimeout)}, {"timeout", int64(c.Timeout)}, {"full_pass_every", int64(c.FullPassEvery)}} {
		if n.v < 0 {
			errs = append(errs, configErr(n.key, "%s must not be negative", n.key))
		}
	}
	if c.ReadConnections > MaxReadConnections {
		errs = append(errs, configErr("read_connections", "read_connections %d: at most %d", c.ReadConnections, MaxReadConnections))
	}
	errs = append(errs, c.Bind.validate()...)
	if !c.Prune.dryRun() && c.Prune.BackupDir == "" {
		errs = append(errs, configErr("prune.backup_dir", "prune: backup_dir is required when dry_run is false"))
	}
	return errors.Join(errs...)
}

func (b *Bind) validate() []error {
	var errs []error
	secrets := 0
	for _, s := range []string{b.Password, b.PasswordEnv, b.PasswordFile} {
		if s != "" {
			secrets++
		}
	}
	if secrets > 1 {
		errs = append(errs, configErr("bind", "bind: give only one of password, password_env, password_file"))
	}
	switch m := b.method(); m {
	case BindSimple, BindNTLM:
		if b.User == "" {
			errs = append(errs, configErr("bind.user", "bind %s: user is required", m))
		}
		if secrets == 0 {
			errs = append(errs, configErr("bind.password_env", "bind %s: password_env or password_file is required", m))
		}
	case BindKerberos:
		if b.User == "" && b.Keytab != "" {
			errs = append(errs, configErr("bind.user", "bind kerberos: keytab needs user"))
		}
		if b.Keytab != "" && secrets > 0 {
			errs = append(errs, configErr("bind.keytab", "bind kerberos: give a keytab or a password, not both"))
		}
		if secrets > 0 && b.User == "" {
			errs = append(errs, configErr("bind.user", "bind kerberos: a password needs user"))
		}
	case BindSSPI:
		if runtime.GOOS != "windows" {
			errs = append(errs, configErr("bind.method", "bind sspi works on Windows only (use kerberos elsewhere)"))
		}
		if secrets > 0 && b.User == "" {
			errs = append(errs, configErr("bind.user", "bind sspi: a password needs user"))
		}
	case BindAnonymous:
		if b.User != "" || secrets > 0 {
			errs = append(errs, configErr("bind", "bind anonymous takes no user or password"))
		}
	default:
		errs = append(errs, configErr("bind.method", "bind method %q: want simple, ntlm, kerberos, sspi or anonymous", b.Method))
	}
	return errs
}

// password returns the bind password from Password, PasswordEnv or
// PasswordFile; empty when none is configured.
func (b *Bind) password() (string, error) {
	switch {
	case b.Password != "":
		return b.Password, nil
	case b.PasswordEnv != "":
		v, ok := os.LookupEnv(b.PasswordEnv)
		if !ok || v == "" {
			return "", configErr("bind.password_env", "bind password: environment variable %s is not set", b.PasswordEnv)
		}
		return v, nil
	case b.PasswordFile != "":
		v, err := os.ReadFile(b.PasswordFile)
		if err != nil {
			return "", &ConfigError{Field: "bind.password_file", Reason: "bind password: " + err.Error(), Err: err}
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(v), "\n"), "\r")
		if s == "" {
			return "", configErr("bind.password_file", "bind password: %s is empty", b.PasswordFile)
		}
		return s, nil
	}
	return "", nil
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.ReadConnections == 0 {
		c.ReadConnections = DefaultReadConnections
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	c.Server = ServerKind(strings.ToLower(string(c.Server)))
	c.Delta = DeltaMode(strings.ToLower(string(c.Delta)))
	return c
}
