// Package check tries each part of a smimesync setup (state, policy files,
// directory sources, cloud sinks) and says, for each, whether it works and,
// when not, what to do. The results are data ([Result]), printed as JSON
// or as text ([Report.WriteText]). Checks write nothing, except
// [Checker.Probe].
package check

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/smimesync"
)

// The parts a Checker's results are grouped in, besides a sink's name.
const (
	PartConfig    = "config"
	PartDirectory = "directory"
	PartProbe     = "probe"
)

// Result is one check: a part of the setup, whether it works, and what to
// do when it does not.
type Result struct {
	// Part is the group: PartConfig, PartDirectory, a sink's name, or
	// PartProbe.
	Part string `json:"part"`
	// Check names what was tried.
	Check string `json:"check"`
	// OK is true for ✓.
	OK bool `json:"ok"`
	// Detail says what was found.
	Detail string `json:"detail,omitempty"`
	// Fix says what to do about a ✗; Note is advice on a ✓ (a fallback
	// that works, but less well).
	Fix  string `json:"fix,omitempty"`
	Note string `json:"note,omitempty"`
}

// Report is a whole run's results, as `smimesync check --json` prints it.
type Report struct {
	OK     bool     `json:"ok"`
	Checks []Result `json:"checks"`
}

// CloudProber is a cloud sink [Checker.Cloud] can ask: the Exchange and
// Graph sinks.
type CloudProber interface {
	Token(ctx context.Context) (azauth.TokenClaims, error)
	Ping(ctx context.Context) error
}

// Checker collects the results of one run. The zero value is ready; set
// Part before the checks of each part.
type Checker struct {
	// Part is the part the next results belong to.
	Part string
	// Results are the results so far, in order.
	Results []Result
}

// OK records a passed check.
func (c *Checker) OK(check, detail string) {
	c.Results = append(c.Results, Result{Part: c.Part, Check: check, OK: true, Detail: detail})
}

// Note records a passed check with advice.
func (c *Checker) Note(check, detail, note string) {
	c.Results = append(c.Results, Result{Part: c.Part, Check: check, OK: true, Detail: detail, Note: note})
}

// Fail records a failed check and its fix.
func (c *Checker) Fail(check, detail, fix string) {
	c.Results = append(c.Results, Result{Part: c.Part, Check: check, Detail: detail, Fix: fix})
}

// Failed counts the failed checks.
func (c *Checker) Failed() int {
	n := 0
	for _, r := range c.Results {
		if !r.OK {
			n++
		}
	}
	return n
}

// Report returns the results as one document.
func (c *Checker) Report() Report {
	return Report{OK: c.Failed() == 0, Checks: c.Results}
}

// State checks one sink's state store: its folder is writable (a
// temporary file is created and removed; the store itself is not touched)
// and its lock is free (taken and released at once). A store not yet
// created is free; when st.Import exists, the first sync imports it.
func (c *Checker) State(st *smimesync.BoltState) {
	dir := filepath.Dir(st.Path)
	f, err := os.CreateTemp(dir, ".smimesync-check-*")
	if err != nil {
		c.Fail("state folder "+dir, "not writable: "+err.Error(),
			"create the folder and give the account smimesync runs as write access to it, or point state.path elsewhere")
		return
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	c.OK("state folder "+dir, "writable")
	if _, err := os.Lstat(st.Path); errors.Is(err, fs.ErrNotExist) {
		what := "free (no store yet: the first sync creates it"
		if _, err := os.Lstat(st.Import); st.Import != "" && err == nil {
			what += " and imports " + st.Import + ", keeping it as a backup"
		}
		c.OK("state lock "+st.Path, what+")")
		return
	}
	// The store's file lock is the instance lock. Opened without its
	// import, so that check changes nothing.
	unlock, err := (&smimesync.BoltState{Path: st.Path}).Lock()
	if err != nil {
		fix := "see the error"
		if errors.Is(err, smimesync.ErrLocked) {
			fix = "another smimesync (run or sync) uses this state: stop it, or give this configuration its own state.path"
		}
		c.Fail("state lock "+st.Path, err.Error(), fix)
		return
	}
	unlock()
	c.OK("state lock "+st.Path, "free")
}

// PolicyFile records the reading of a policy PEM file: key names the
// setting (e.g. "policy.roots[0]"), certs and err are what reading path
// gave.
func (c *Checker) PolicyFile(key, path string, certs []*x509.Certificate, err error) {
	if err == nil && len(certs) == 0 {
		err = errors.New("no certificate")
	}
	if err != nil {
		c.Fail(key+" "+path, err.Error(), "give a PEM file of CERTIFICATE blocks (or one DER certificate) readable by the account smimesync runs as")
		return
	}
	c.OK(key+" "+path, fmt.Sprintf("%d certificate(s), the first %s", len(certs), certs[0].Subject))
}

// Source checks a directory source: a [directory.Multi]'s sources each in
// turn (name prefixes their checks), an [directory.LDIFFile] by parsing it,
// an [ldapsource.Source] by its Probe (connect, TLS, bind, scope, one
// entry, deltas); any other source passes with nothing to check.
func (c *Checker) Source(ctx context.Context, name string, src directory.Source) {
	prefix := ""
	if name != "" {
		prefix = name + ": "
	}
	switch s := src.(type) {
	case *directory.Multi:
		for _, n := range s.Sources {
			c.Source(ctx, n.Name, n.Source)
		}
	case *directory.LDIFFile:
		n := 0
		_, err := s.Read(ctx, directory.Pass{}, func(*directory.Entry) error { n++; return nil })
		if err != nil {
			c.Fail(prefix+"LDIF "+s.Path, err.Error(), "fix the file at the line named (RFC 2849), or re-export it")
			return
		}
		c.OK(prefix+"LDIF "+s.Path, fmt.Sprintf("parses, %d entries", n))
	case *ldapsource.Source:
		c.ldapProbe(prefix, s.Probe(ctx))
	default:
		c.OK(prefix+"source", fmt.Sprintf("%T: nothing to check", src))
	}
}

// ldapProbe turns an LDAP probe into results, stopping at the first stage
// that failed.
func (c *Checker) ldapProbe(prefix string, p *ldapsource.Probe) {
	fail := func(check, fix string) { c.Fail(prefix+check, p.Err.Error(), fix) }
	switch p.Failed {
	case ldapsource.StageConnect:
		fail("connect "+p.URL, "check url (host and port: 389 for ldap:// and StartTLS, 636 for ldaps://), that the server runs, and that no firewall is in the way")
		return
	}
	c.OK(prefix+"connect", p.URL)
	if p.Failed == ldapsource.StageTLS {
		fail("TLS ("+p.TLS+")", "set ca_file to the PEM of the CA that issued the server's certificate, and server_name if the URL's host is not in it; ldaps:// needs port 636")
		return
	}
	c.OK(prefix+"TLS", p.TLS)
	if p.Failed == ldapsource.StageBind {
		fail("bind as "+p.Bind, "check bind.user and the password its password_env or password_file gives (or the keytab); is the account enabled, its password unexpired?")
		return
	}
	c.OK(prefix+"bind", p.Bind)
	if p.Failed == ldapsource.StageScope {
		fail("scope", "check base_dn: it must lie in a naming context the server holds")
		return
	}
	if p.Failed == ldapsource.StageRead {
		fail("read one entry under "+p.Base, "check base_dn and filter, and that the account may read users there")
		return
	}
	if p.Entry == "" {
		c.Fail(prefix+"read one entry", fmt.Sprintf("the filter %s matches nothing under %s", p.Filter, p.Base),
			"check base_dn and filter (and groups); an account that may not read the users sees none")
	} else {
		c.OK(prefix+"read one entry", p.Entry)
	}
	switch p.Server {
	case ldapsource.ServerAD:
		switch {
		case p.Delta == ldapsource.DeltaDirSync && p.DirSync == nil:
			c.OK(prefix+"DirSync", "allowed: deltas come by DirSync")
		case p.Delta == ldapsource.DeltaDirSync && p.USN == nil:
			reason := p.DirSync.Error()
			if ldap.IsErrorWithCode(p.DirSync, ldap.LDAPResultInsufficientAccessRights) {
				reason = "refused: the account lacks \"Replicating Directory Changes\""
			}
			c.Note(prefix+"DirSync", reason+"; the uSNChanged fallback works",
				"grant the bind account \"Replicating Directory Changes\" on the domain's naming context for DirSync deltas; the fallback sees deletions only when tombstones are visible")
		case p.USN == nil:
			c.OK(prefix+"uSNChanged deltas", "the DC's invocationId and highestCommittedUSN are readable")
		default:
			c.Fail(prefix+"deltas", p.USN.Error(), "grant \"Replicating Directory Changes\" for DirSync, or set delta: none (every pass full)")
		}
		if p.Tombstones {
			c.OK(prefix+"tombstones", "visible: deleted users are seen")
		} else {
			c.Note(prefix+"tombstones", "not visible to this account (or the domain has none yet)",
				"uSNChanged deltas then see deletions only at full passes (full_pass_every); DirSync with \"Replicating Directory Changes\" sees them")
		}
	case ldapsource.ServerOpenLDAP:
		switch {
		case p.Delta == ldapsource.DeltaSyncrepl && p.ContentSyncErr == nil:
			c.OK(prefix+"content sync (RFC 4533)", "available: deltas come by content sync")
		case p.Delta == ldapsource.DeltaSyncrepl:
			c.Fail(prefix+"content sync (RFC 4533)", p.ContentSyncErr.Error(), "allow the bind account to use the syncprov overlay (limits, ACLs), or set delta: none")
		case p.ContentSync:
			c.OK(prefix+"content sync (RFC 4533)", "available, not used (delta: "+string(p.Delta)+")")
		default:
			c.Note(prefix+"content sync (RFC 4533)", "not offered by the server: every pass reads the whole directory",
				"load the syncprov overlay on the database (overlay syncprov) for delta passes")
		}
	}
}

// Exchange checks the Exchange sink as [Checker.Cloud] does, and says
// whether the tenant was redirected from configured (the endpoint the
// configuration names, "" when unknown) to another region. It reports
// whether every check passed.
func (c *Checker) Exchange(ctx context.Context, s *exchange.Sink, configured string) bool {
	ok := c.Cloud(ctx, "exchange", s, exchange.RequiredRoles)
	if st := s.Stats(); st.Redirects > 0 {
		c.Note("regional redirect", fmt.Sprintf("%s redirected the tenant to %s (%d redirect(s) followed)", configured, s.Endpoint(), st.Redirects),
			"nothing to do: the sink sends every later call of a run there; set endpoints.exchange to it to save the redirect")
	} else if ok {
		c.OK("regional redirect", "none: "+s.Endpoint()+" serves the tenant")
	}
	return ok
}

// Cloud checks a cloud sink's token, that it holds the roles need, and a
// harmless read; it reports whether all passed. name "exchange" words the
// read and its fix for Exchange Online, any other for Microsoft Graph.
func (c *Checker) Cloud(ctx context.Context, name string, s CloudProber, need []azauth.Role) bool {
	claims, err := s.Token(ctx)
	if err != nil {
		c.Fail("token", firstLine(err.Error()), "check tenant_id, client_id and the secret or certificate (auth); a secret may have expired: make a new one in the app registration's \"Certificates & secrets\"")
		return false
	}
	c.OK("token", fmt.Sprintf("for %s, app %s in tenant %s", claims.Audience, claims.AppID, claims.TenantID))
	good := true
	missing := azauth.MissingRoles(claims.Roles, need)
	have := "none"
	if len(claims.Roles) > 0 {
		have = strings.Join(claims.Roles, ", ")
	}
	if len(missing) > 0 {
		var names, fixes []string
		for _, m := range missing {
			names = append(names, m.Name)
			fixes = append(fixes, fmt.Sprintf("%s > Application permissions > %s (%s)", m.API, m.Name, m.For))
		}
		c.Fail("permissions", fmt.Sprintf("missing %s (the token's roles claim, read without verifying it, holds: %s)", strings.Join(names, ", "), have),
			"in the Entra admin center, App registrations > the app > API permissions > Add a permission: "+strings.Join(fixes, "; ")+
				"; then Grant admin consent (see the README, \"Granting access\")")
		good = false
	} else {
		var names []string
		for _, r := range need {
			names = append(names, r.Name)
		}
		c.OK("permissions", fmt.Sprintf("%s granted (the token's roles claim, read without verifying it: %s)", strings.Join(names, ", "), have))
	}
	read := "GET /users?$top=1&$select=id,authorizationInfo"
	fix := "grant the permissions above; for writes to cloud-only users the app also needs the Entra role Privileged Authentication Administrator"
	if name == "exchange" {
		read = "Get-Recipient -ResultSize 1"
		fix = "give the app's service principal an Exchange role: the Entra role Exchange Recipient Administrator, or a custom role group (New-ServicePrincipal, Add-RoleGroupMember); check organization"
	}
	if err := s.Ping(ctx); err != nil {
		c.Fail("read", read+": "+firstLine(err.Error()), fix)
		return false
	}
	c.OK("read", read+" answers")
	return good
}

// Probe writes one recipient's certificates back unchanged and reads them
// back ([exchange.Sink.ProbeRoundTrip]): the only check that writes.
func (c *Checker) Probe(ctx context.Context, s *exchange.Sink, who string) {
	rt, err := s.ProbeRoundTrip(ctx, who)
	check := "round trip " + who
	switch {
	case err == nil:
		c.OK(check, fmt.Sprintf("%d value(s) written back unchanged and read back identical: the byte encoding round-trips", len(rt.Before)))
	case errors.Is(err, exchange.ErrNotProbed):
		c.Fail(check, "nothing written: "+firstLine(err.Error()), "choose a cloud-mastered mailbox, mail user or mail contact that holds a certificate; when the service returns no certificate bytes for any recipient (\"System.Byte[]\"), the encoding cannot be probed, and syncs rely on the state file instead of reading back")
	case errors.Is(err, exchange.ErrReadBackMismatch):
		c.Fail(check, "written back, but read back other bytes: "+firstLine(err.Error()),
			"do not sync: the service stores other bytes than smimesync sends; restore the recipient's certificates and report this with a --trace of the probe")
	default:
		written := "nothing written"
		if rt != nil && rt.Written {
			written = "written back"
		}
		c.Fail(check, written+": "+firstLine(err.Error()), "see the error; run check --trace FILE for the exchanges")
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
