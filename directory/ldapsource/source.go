package ldapsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
)

// Source reads users and their certificates from an LDAP directory. It
// implements [directory.Source] and [directory.Pruner]. It is safe for
// concurrent use, though one Read at a time is the expected use.
type Source struct {
	cfg  Config
	log  *slog.Logger
	urls []string
	dial dialFunc
	now  func() time.Time

	// plainWarned: the warning about a simple bind over plain LDAP is
	// logged once per Source, not once per connection.
	plainWarned sync.Once

	pruneMu   sync.Mutex
	pruneConn conn
	pruneInfo *serverInfo
}

var (
	_ directory.Source = (*Source)(nil)
	_ directory.Pruner = (*Source)(nil)
)

// New returns a Source for cfg after validating it (errors wrap
// [ErrConfig]). It does not connect: every Read connects, and fails over
// and retries as cfg says. A nil logger discards.
func New(cfg Config, logger *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Source{cfg: cfg.withDefaults(), log: logger, now: time.Now}
	s.urls = s.cfg.urls()
	s.dial = s.dialLDAP
	return s, nil
}

// serverInfo is what the root DSE says about the server.
type serverInfo struct {
	kind          ServerKind // ServerAD or ServerOpenLDAP
	defaultNC     string
	namingCtx     []string
	dsServiceName string
	highestUSN    int64
	controls      map[string]bool
	url           string
}

// rootDSE reads the root DSE.
func (s *Source) rootDSE(ctx context.Context, c conn, url string) (*serverInfo, error) {
	req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)",
		[]string{"defaultNamingContext", "namingContexts", "dsServiceName", "highestCommittedUSN",
			"supportedCapabilities", "supportedControl", "vendorName"}, nil)
	var e *ldap.Entry
	err := s.stream(ctx, c, req, func(x *ldap.Entry, _ []ldap.Control) error { e = x; return nil }, nil)
	if err != nil {
		return nil, fmt.Errorf("ldapsource: read the root DSE of %s: %w", url, err)
	}
	if e == nil {
		return nil, fmt.Errorf("ldapsource: %s returned no root DSE", url)
	}
	info := &serverInfo{
		defaultNC:     e.GetEqualFoldAttributeValue("defaultNamingContext"),
		namingCtx:     e.GetEqualFoldAttributeValues("namingContexts"),
		dsServiceName: e.GetEqualFoldAttributeValue("dsServiceName"),
		controls:      map[string]bool{},
		url:           url,
	}
	if v := e.GetEqualFoldAttributeValue("highestCommittedUSN"); v != "" {
		info.highestUSN, _ = strconv.ParseInt(v, 10, 64)
	}
	for _, c := range e.GetEqualFoldAttributeValues("supportedControl") {
		info.controls[c] = true
	}
	info.kind = ServerOpenLDAP
	for _, c := range e.GetEqualFoldAttributeValues("supportedCapabilities") {
		if c == "1.2.840.113556.1.4.800" { // LDAP_CAP_ACTIVE_DIRECTORY_OID
			info.kind = ServerAD
		}
	}
	if s.cfg.Server != "" {
		info.kind = s.cfg.Server
	}
	return info, nil
}

// contexts returns the naming contexts the root DSE names, the default
// first.
func (info *serverInfo) contexts() []string {
	var out []string
	for _, nc := range append([]string{info.defaultNC}, info.namingCtx...) {
		if nc != "" && !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, nc) }) {
			out = append(out, nc)
		}
	}
	return out
}

// holds reports whether dn lies in one of the server's naming contexts.
// A root DSE that names none (some servers hide it from anonymous
// readers) holds everything: the server then answers for itself.
func (info *serverInfo) holds(dn *ldap.DN) bool {
	ncs := info.contexts()
	if len(ncs) == 0 {
		return true
	}
	for _, nc := range ncs {
		d, err := ldap.ParseDN(nc)
		if err != nil || d.EqualFold(dn) || d.AncestorOfFold(dn) {
			return true
		}
	}
	return false
}

// plan is what one pass reads, derived from the configuration and the
// server.
type plan struct {
	kind     ServerKind
	filter   string
	bases    []*ldap.DN
	baseStrs []string
	excludes []*ldap.DN
	idAttr   string
	attrs    []string
	delta    DeltaMode
	scope    string
}

func (s *Source) makePlan(info *serverInfo) (*plan, error) {
	p := &plan{kind: info.kind}
	p.filter = s.cfg.Filter
	if p.filter == "" {
		p.filter = DefaultFilter(p.kind)
	}
	if !strings.HasPrefix(p.filter, "(") {
		p.filter = "(" + p.filter + ")"
	}
	if len(s.cfg.Groups) > 0 {
		var g strings.Builder
		for _, dn := range s.cfg.Groups {
			if p.kind == ServerAD {
				g.WriteString("(memberOf:1.2.840.113556.1.4.1941:=" + ldap.EscapeFilter(dn) + ")")
			} else {
				g.WriteString("(memberOf=" + ldap.EscapeFilter(dn) + ")")
			}
		}
		p.filter = "(&" + p.filter + "(|" + g.String() + "))"
	}
	bases := []string(s.cfg.BaseDN)
	if len(bases) == 0 {
		switch {
		case info.defaultNC != "":
			bases = []string{info.defaultNC}
		case len(info.namingCtx) == 1:
			bases = info.namingCtx
		default:
			return nil, fmt.Errorf("%w: base_dn is required: %s names no single naming context", ErrConfig, info.url)
		}
	}
	for _, b := range bases {
		dn, err := ldap.ParseDN(b)
		if err != nil {
			return nil, fmt.Errorf("%w: base_dn %q: %v", ErrConfig, b, err)
		}
		if !info.holds(dn) {
			return nil, configErr("base_dn", "base_dn %q lies outside the naming contexts of %s (%s)", b, info.url, strings.Join(info.contexts(), "; "))
		}
		p.bases = append(p.bases, dn)
	}
	// Drop bases inside other bases: an entry is read once.
	var kept []*ldap.DN
	var keptStrs []string
	for i, b := range p.bases {
		inside := false
		for j, o := range p.bases {
			if i != j && (o.AncestorOfFold(b) || (o.EqualFold(b) && j < i)) {
				inside = true
			}
		}
		if !inside {
			kept = append(kept, b)
			keptStrs = append(keptStrs, bases[i])
		}
	}
	p.bases, p.baseStrs = kept, keptStrs
	for _, x := range s.cfg.ExcludeOU {
		dn, err := ldap.ParseDN(x)
		if err != nil {
			return nil, fmt.Errorf("%w: exclude_ou %q: %v", ErrConfig, x, err)
		}
		p.excludes = append(p.excludes, dn)
	}
	native := "entryUUID" // what deltas report deletions by
	if p.kind == ServerAD {
		native = "objectGUID"
	}
	p.idAttr = s.cfg.IDAttribute
	if p.idAttr == "" {
		p.idAttr = native
	}
	p.attrs = []string{p.idAttr, "mail", "userCertificate", "userSMIMECertificate"}
	if p.kind == ServerAD {
		p.attrs = append(p.attrs, "userPrincipalName", "proxyAddresses")
		if n := s.cfg.RangeSize; n > 0 {
			p.attrs[2] = fmt.Sprintf("userCertificate;range=0-%d", n-1)
			p.attrs[3] = fmt.Sprintf("userSMIMECertificate;range=0-%d", n-1)
		}
	}
	p.delta = s.cfg.Delta
	switch {
	case p.delta != "":
	case len(s.cfg.Groups) > 0:
		p.delta = DeltaNone
	case !strings.EqualFold(p.idAttr, native):
		// Deletions arrive named by objectGUID or entryUUID only.
		s.log.Debug("ldapsource: deltas off: id_attribute is not the server's own", "id_attribute", p.idAttr, "native", native)
		p.delta = DeltaNone
	case p.kind == ServerAD:
		p.delta = DeltaDirSync
	case info.controls[ldap.ControlTypeSyncRequest]:
		p.delta = DeltaSyncrepl
	default:
		p.delta = DeltaNone
	}
	p.scope = scopeDigest([]string{string(p.kind), p.filter, p.idAttr}, p.baseStrs, s.cfg.ExcludeOU)
	return p, nil
}

// inScope reports whether dn lies under a base DN and outside the
// exclusions. A DN that does not parse is taken as in scope: the server
// found it under a base DN, and a delta fetches it again with the filter,
// so nothing valid is dropped on a parsing difference.
func (p *plan) inScope(dn string) bool {
	d, err := ldap.ParseDN(dn)
	if err != nil {
		return true
	}
	return p.inScopeDN(d)
}

func (p *plan) inScopeDN(d *ldap.DN) bool {
	under := false
	for _, b := range p.bases {
		if b.EqualFold(d) || b.AncestorOfFold(d) {
			under = true
			break
		}
	}
	if !under {
		return false
	}
	for _, x := range p.excludes {
		if x.EqualFold(d) || x.AncestorOfFold(d) {
			return false
		}
	}
	return true
}

// errStale marks a delta that cannot continue from its cookie.
type staleError struct{ why string }

func (e *staleError) Error() string { return "delta cookie is stale: " + e.why }
func (e *staleError) Unwrap() error { return directory.ErrStaleCookie }

// Read streams the entries in scope to yield: every entry when p.Cookie is
// nil or cannot be used (a full pass, logged with the reason), else the
// entries changed since the cookie's pass, deletions and entries that left
// the scope included (as entries with Deleted set). See the package
// documentation for the delta mechanisms.
//
// A connection that fails before any entry was yielded is retried with
// backoff; after that, Read returns the error and no cookie. A cookie
// that turns out stale after entries were yielded gives an error wrapping
// [directory.ErrStaleCookie].
func (s *Source) Read(ctx context.Context, p directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	backoff := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		ps := &pass{s: s, ctx: ctx, yieldFn: yield}
		res, err := ps.run(p.Cookie)
		ps.close()
		var ce *ConnectError
		if err == nil || ps.yielded > 0 || !isNetwork(err) || errors.As(err, &ce) || attempt >= s.cfg.Retries || ctx.Err() != nil {
			return res, err // connect already retried with backoff
		}
		s.log.Warn("ldapsource: connection lost before any entry was read; reconnecting", "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return directory.Result{}, errors.Join(ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// isNetwork reports whether err is a lost or refused connection.
func isNetwork(err error) bool {
	var ce *ConnectError
	if errors.As(err, &ce) {
		return !permanent(err)
	}
	return errors.Is(err, ErrConnectionLost) || ldap.IsErrorWithCode(err, ldap.ErrorNetwork) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// pass is one Read.
type pass struct {
	s       *Source
	ctx     context.Context
	main    conn
	url     string
	auxConn conn
	info    *serverInfo
	plan    *plan
	yieldFn func(*directory.Entry) error
	yielded int
	// auxMu guards auxConn, which a parallel full read's connections
	// share for range retrieval.
	auxMu sync.Mutex
	// extra holds the further connections of a parallel full read
	// (readAll), guarded by extraMu.
	extraMu sync.Mutex
	extra   []conn
}

func (ps *pass) close() {
	for _, c := range append([]conn{ps.main, ps.auxConn}, ps.extra...) {
		if c != nil {
			c.Close()
		}
	}
}

func (ps *pass) yield(e *directory.Entry) error {
	ps.yielded++
	return ps.yieldFn(e)
}

// aux returns a second connection, for range retrieval and for fetching
// changed entries while the main connection streams.
func (ps *pass) aux() (conn, error) {
	ps.auxMu.Lock()
	defer ps.auxMu.Unlock()
	if ps.auxConn == nil {
		c, _, err := ps.s.connect(ps.ctx)
		if err != nil {
			return nil, err
		}
		ps.auxConn = c
	}
	return ps.auxConn, nil
}

func (ps *pass) run(raw []byte) (directory.Result, error) {
	s := ps.s
	c, url, err := s.connect(ps.ctx)
	if err != nil {
		return directory.Result{}, err
	}
	ps.main, ps.url = c, url
	if ps.info, err = s.rootDSE(ps.ctx, c, url); err != nil {
		return directory.Result{}, err
	}
	if ps.plan, err = s.makePlan(ps.info); err != nil {
		return directory.Result{}, err
	}
	if raw == nil {
		return ps.full("no cookie")
	}
	prev, why := ps.usable(raw)
	if prev == nil {
		return ps.full(why)
	}
	res, err := ps.delta(prev)
	var stale *staleError
	if errors.As(err, &stale) && ps.yielded == 0 {
		return ps.full(stale.why)
	}
	return res, err
}

// usable returns the previous cookie when a delta may continue from it,
// or nil and why not.
func (ps *pass) usable(raw []byte) (*cookie, string) {
	s, p := ps.s, ps.plan
	if p.delta == DeltaNone {
		return nil, "delta is none"
	}
	prev, err := decodeCookie(raw)
	if err != nil {
		return nil, err.Error()
	}
	if prev.Scope != p.scope {
		return nil, "the configured scope (filter, base DNs, exclusions, server kind) changed"
	}
	switch {
	case prev.Kind == p.delta:
	case p.delta == DeltaDirSync && prev.Kind == DeltaUSN:
		// DirSync was refused at the last full pass; carry on with USN.
	default:
		return nil, fmt.Sprintf("cookie is for %s deltas, the source now uses %s", prev.Kind, p.delta)
	}
	every := s.fullEvery(prev.Kind, prev.Tombstones)
	if every > 0 && s.now().Sub(prev.Full) > every {
		return nil, fmt.Sprintf("the last full pass (%s) is older than %s", prev.Full.Format(time.RFC3339), every)
	}
	return prev, ""
}

// fullEvery returns how old the last full pass may be before a delta of
// kind is refused (0: no limit).
func (s *Source) fullEvery(kind DeltaMode, tombstones bool) time.Duration {
	if s.cfg.FullPassEvery == 0 && kind == DeltaUSN && !tombstones {
		return DefaultUSNFullPassEvery
	}
	return s.cfg.FullPassEvery
}

// full reads every entry in scope. The delta mark is taken first, so that
// changes made during the read are seen again by the next delta.
func (ps *pass) full(why string) (directory.Result, error) {
	ps.s.log.Info("ldapsource: full pass", "url", ps.url, "why", why, "delta", ps.plan.delta)
	start := ps.s.now()
	mark, err := ps.mark()
	if err != nil {
		return directory.Result{}, err
	}
	p := ps.plan
	conns := ps.s.cfg.ReadConnections
	parts, split := ps.readParts(conns)
	if !split {
		conns = 1 // one search per base DN: through the main connection
	}
	err = ps.readAll(parts, conns, func(part readPart, e *ldap.Entry) error {
		de, err := ps.convert(e)
		if err != nil {
			return err
		}
		if !p.inScope(e.DN) {
			ps.s.log.Debug("ldapsource: skipping excluded entry", "dn", e.DN)
			return nil
		}
		return ps.yield(de)
	})
	if err != nil {
		return directory.Result{}, err
	}
	if mark == nil {
		return directory.Result{Full: true}, nil
	}
	mark.Full, mark.Scope = start, p.scope
	b, err := mark.encode()
	if err != nil {
		return directory.Result{}, err
	}
	return directory.Result{Cookie: b, Full: true}, nil
}

// mark returns the cookie a full pass starting now hands back, or nil
// when the source has no delta mechanism.
func (ps *pass) mark() (*cookie, error) {
	p := ps.plan
	switch p.delta {
	case DeltaDirSync:
		c, err := ps.dirsyncMark()
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
			ps.s.log.Warn("ldapsource: DirSync refused (the account lacks Replicating Directory Changes); falling back to uSNChanged deltas",
				"url", ps.url, "bind", ps.s.bindName())
			return ps.usnMark()
		}
		return c, err
	case DeltaUSN:
		return ps.usnMark()
	case DeltaSyncrepl:
		c, err := ps.syncreplMark()
		if err != nil && ps.s.cfg.Delta == "" {
			ps.s.log.Warn("ldapsource: content sync (RFC 4533) refused; every pass will be full", "url", ps.url, "err", err)
			return nil, nil
		}
		return c, err
	}
	return nil, nil
}

// noMatch is a filter that matches no entry, for taking a delta mark
// without reading anything.
const noMatch = "(&(objectClass=top)(objectClass=smimesyncNoSuchClass))"
