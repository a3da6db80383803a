package ldapsource

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Probe stages, in the order a pass meets them: what [Probe.Failed] names.
const (
	// StageConnect is reaching the server (TCP, and the URL itself).
	StageConnect = "connect"
	// StageTLS is securing the connection: ldaps or StartTLS, the server's
	// certificate against ca_file or the system roots.
	StageTLS = "tls"
	// StageBind is authenticating.
	StageBind = "bind"
	// StageScope is the root DSE and the configured scope (base DNs in
	// the server's naming contexts).
	StageScope = "scope"
	// StageRead is reading one entry in scope.
	StageRead = "read"
)

// Probe is what [Source.Probe] found out about the directory, in the order
// a pass meets it. The fields after Failed are filled only as far as the
// probe got.
type Probe struct {
	// URL is the server that answered (the first configured URL that did),
	// or the last one tried when none did.
	URL string
	// TLS says how the connection is secured: "ldaps", "StartTLS", or
	// "none (allow_plain_ldap)".
	TLS string
	// Bind says how the source binds ("simple CN=reader,…", "kerberos").
	Bind string
	// Failed is the first stage that failed (StageConnect, StageTLS,
	// StageBind, StageScope, StageRead), "" when none did; Err says why.
	Failed string
	Err    error

	// Server is ServerAD or ServerOpenLDAP.
	Server ServerKind
	// Base and Filter are where the one entry was looked for; Entry is its
	// DN, "" when the filter matched nothing under Base.
	Base, Filter, Entry string
	// Delta is the delta mechanism a pass uses: DeltaDirSync, DeltaUSN,
	// DeltaSyncrepl or DeltaNone.
	Delta DeltaMode
	// DirSync, for Active Directory with Delta DeltaDirSync, is nil when
	// a DirSync search was allowed, else the refusal (insufficient access
	// rights: the account lacks "Replicating Directory Changes"); passes
	// then fall back to uSNChanged deltas.
	DirSync error
	// USN, for Active Directory with Delta DeltaUSN or a refused DirSync,
	// is nil when the uSNChanged deltas can work (the DC's invocationId
	// and highestCommittedUSN are readable), else why not.
	USN error
	// Tombstones, for Active Directory, reports whether the account sees
	// deleted objects (by default only administrators do; a domain with
	// none yet looks the same).
	Tombstones bool
	// ContentSync, for OpenLDAP, reports whether the root DSE lists the
	// RFC 4533 content-sync control (1.3.6.1.4.1.4203.1.9.1.1);
	// ContentSyncErr, when Delta is DeltaSyncrepl, is the refusal of a
	// content-sync search, nil when it was allowed.
	ContentSync    bool
	ContentSyncErr error
}

// Probe connects to the directory as a pass would (one round over the
// URLs, without retries), reads the root DSE and one entry in scope, and
// tries what the source's delta mechanism needs, writing nothing. It
// reports how far it got: it does not return an error, Probe.Failed and
// Probe.Err say what failed.
func (s *Source) Probe(ctx context.Context) *Probe {
	pr := &Probe{Bind: s.bindName()}
	ps := &pass{s: s, ctx: ctx}
	defer ps.close()
	var errs []error
	for _, u := range s.urls {
		pr.URL, pr.TLS = u, s.tlsMode(u)
		c, err := s.dial(ctx, u)
		if err == nil {
			ps.main, ps.url = c, u
			break
		}
		errs = append(errs, err)
	}
	if ps.main == nil {
		pr.Err = &ConnectError{Errors: errs}
		pr.Failed = StageConnect
		for _, err := range errs {
			if st := probeStage(err); stageRank(st) > stageRank(pr.Failed) {
				pr.Failed = st
			}
		}
		return pr
	}
	var err error
	if ps.info, err = s.rootDSE(ctx, ps.main, ps.url); err != nil {
		pr.Failed, pr.Err = StageScope, err
		return pr
	}
	pr.Server = ps.info.kind
	pr.ContentSync = ps.info.controls[ldap.ControlTypeSyncRequest]
	if ps.plan, err = s.makePlan(ps.info); err != nil {
		pr.Failed, pr.Err = StageScope, err
		return pr
	}
	p := ps.plan
	pr.Delta, pr.Filter = p.delta, p.filter
	if len(p.baseStrs) > 0 {
		pr.Base = p.baseStrs[0]
	}
	req := ldap.NewSearchRequest(pr.Base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false, p.filter, p.attrs, nil)
	err = s.stream(ctx, ps.main, req, func(e *ldap.Entry, _ []ldap.Control) error {
		if pr.Entry == "" {
			pr.Entry = e.DN
		}
		return nil
	}, nil)
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		pr.Failed, pr.Err = StageRead, err
		return pr
	}
	switch {
	case p.kind == ServerAD:
		if p.delta == DeltaDirSync {
			pr.DirSync = ps.dirsyncAllowed()
		}
		if p.delta == DeltaUSN || (p.delta == DeltaDirSync && pr.DirSync != nil) {
			if _, err := ps.invocationID(); err != nil {
				pr.USN = err
			} else if _, err := ps.highestUSN(); err != nil {
				pr.USN = err
			}
		}
		pr.Tombstones = ps.tombstonesVisible()
	case p.delta == DeltaSyncrepl:
		_, pr.ContentSyncErr = ps.syncreplMark()
	}
	return pr
}

// dirsyncAllowed sends one DirSync search that matches nothing on the
// naming context's root, as the first round of a pass's delta mark does,
// and returns the server's refusal, if any.
func (ps *pass) dirsyncAllowed() error {
	nc, err := ps.ncRoot()
	if err != nil {
		return err
	}
	req := ldap.NewSearchRequest(nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false, noMatch, []string{"objectGUID"},
		[]ldap.Control{ldap.NewRequestControlDirSync(0, 0, nil)})
	err = ps.s.stream(ps.ctx, ps.main, req, func(*ldap.Entry, []ldap.Control) error { return nil }, nil)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil
	}
	return err
}

// tlsMode says how a connection to rawURL is secured.
func (s *Source) tlsMode(rawURL string) string {
	u, err := url.Parse(rawURL)
	switch {
	case err != nil:
		return ""
	case u.Scheme == "ldaps":
		return "ldaps"
	case s.cfg.AllowPlainLDAP:
		return "none (allow_plain_ldap)"
	}
	return "StartTLS"
}

// probeStage returns the stage a connection error happened at.
func probeStage(err error) string {
	var ue *urlError
	if !errors.As(err, &ue) {
		return StageConnect
	}
	switch {
	case strings.HasPrefix(ue.stage, "bind"):
		return StageBind
	case ue.stage == "tls" || ue.stage == "starttls":
		return StageTLS
	}
	if permanent(ue.err) { // a certificate that does not verify, over ldaps
		return StageTLS
	}
	return StageConnect
}

func stageRank(st string) int {
	switch st {
	case StageTLS:
		return 1
	case StageBind:
		return 2
	}
	return 0
}
