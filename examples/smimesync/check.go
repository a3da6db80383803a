package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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

// checkItem is one line of `smimesync check`: a part of the setup, whether
// it works, and what to do when it does not.
type checkItem struct {
	// Part is the group: "config", "directory", a sink's name, or "probe".
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

// checkDoc is check --json's document.
type checkDoc struct {
	OK     bool        `json:"ok"`
	Checks []checkItem `json:"checks"`
}

// errChecksFailed is what check returns when some check failed: exit 1.
var errChecksFailed = errors.New("some checks failed")

// checker collects the items of one check run.
type checker struct {
	items []checkItem
	part  string
}

func (c *checker) ok(check, detail string) {
	c.items = append(c.items, checkItem{Part: c.part, Check: check, OK: true, Detail: detail})
}

func (c *checker) note(check, detail, note string) {
	c.items = append(c.items, checkItem{Part: c.part, Check: check, OK: true, Detail: detail, Note: note})
}

func (c *checker) fail(check, detail, fix string) {
	c.items = append(c.items, checkItem{Part: c.part, Check: check, Detail: detail, Fix: fix})
}

// cmdCheck walks every configured part in order and says, for each,
// whether it works and, when not, what to do. It writes nothing, except
// with --probe: see checkProbe.
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config := fs.String("config", "", "configuration file (YAML)")
	jsonOut := fs.Bool("json", false, "print JSON")
	probe := fs.String("probe", "", "write this recipient's certificates back unchanged and read them back")
	trace := traceFlag(fs)
	cfg, err := commandConfig("check", fs, args, trace)
	if err != nil {
		return err
	}
	defer cfg.trace.Close()
	log := cfg.logger(stderr)
	src, err := cfg.source(log)
	if err != nil {
		return err
	}
	sinks, err := cfg.sinks(log)
	if err != nil {
		return err
	}

	c := &checker{part: "config"}
	c.ok("configuration", *config+" loads")
	checkState(c, cfg, sinks)
	checkPolicyFiles(c, cfg)
	c.part = "directory"
	checkSource(ctx, c, "", src)
	probed := false
	for _, s := range sinks {
		c.part = s.name
		switch sk := s.sink.(type) {
		case *exchange.Sink:
			if checkExchange(ctx, c, cfg, sk) && *probe != "" {
				c.part = "probe"
				checkProbe(ctx, c, sk, *probe)
				probed = true
			}
		case cloudProber:
			checkCloud(ctx, c, s.name, sk, graphRoles, cfg)
		default:
			c.ok("sink", s.name+": nothing to check beyond the state")
		}
	}
	if *probe != "" && !probed {
		c.part = "probe"
		c.fail("probe "+*probe, "not run: the probe needs a working exchange sink (the graph sink cannot read certificates back)",
			"configure sink.exchange and fix what is marked ✗ above, then run check --probe again")
	}

	failed := 0
	for _, it := range c.items {
		if !it.OK {
			failed++
		}
	}
	if *jsonOut {
		if err := writeJSON(stdout, checkDoc{OK: failed == 0, Checks: c.items}); err != nil {
			return err
		}
	} else {
		printChecks(stdout, c.items)
	}
	if failed > 0 {
		return fmt.Errorf("check: %d of %d checks failed: %w", failed, len(c.items), errChecksFailed)
	}
	return nil
}

// printChecks prints the items grouped by part.
func printChecks(w io.Writer, items []checkItem) {
	part := ""
	for _, it := range items {
		if it.Part != part {
			part = it.Part
			fmt.Fprintln(w, termSafe(partTitle(part)))
		}
		mark := "✓"
		if !it.OK {
			mark = "✗"
		}
		line := "  " + mark + " " + it.Check
		if it.Detail != "" {
			line += ": " + it.Detail
		}
		fmt.Fprintln(w, termSafe(line))
		if it.Fix != "" {
			fmt.Fprintln(w, termSafe("      fix: "+it.Fix))
		}
		if it.Note != "" {
			fmt.Fprintln(w, termSafe("      note: "+it.Note))
		}
	}
}

func partTitle(part string) string {
	switch part {
	case "config":
		return "Configuration and state"
	case "directory":
		return "Directory"
	case "probe":
		return "Probe (writes)"
	}
	return "Sink " + part
}

// checkState checks each sink's state: its folder is writable (a
// temporary file is created and removed; the state itself is not
// touched) and its lock is free (taken and released at once).
func checkState(c *checker, cfg *Config, sinks []namedSink) {
	if cfg.State.Path == "" {
		c.note("state", "no state.path", "every run is a first run; set state.path to remember what was published")
		return
	}
	for i, s := range sinks {
		st := cfg.store(s.name, i)
		if st == nil {
			continue
		}
		dir := filepath.Dir(st.Path)
		f, err := os.CreateTemp(dir, ".smimesync-check-*")
		if err != nil {
			c.fail("state folder "+dir, "not writable: "+err.Error(),
				"create the folder and give the account smimesync runs as write access to it, or point state.path elsewhere")
			continue
		}
		name := f.Name()
		f.Close()
		os.Remove(name)
		c.ok("state folder "+dir, "writable")
		if _, err := os.Lstat(st.Path); errors.Is(err, fs.ErrNotExist) {
			what := "free (no store yet: the first sync creates it"
			if _, err := os.Lstat(st.Import); st.Import != "" && err == nil {
				what += " and imports " + st.Import + ", keeping it as a backup"
			}
			c.ok("state lock "+st.Path, what+")")
			continue
		}
		// The store's file lock is the instance lock. Opened without its
		// import, so that check changes nothing.
		unlock, err := (&smimesync.BoltState{Path: st.Path}).Lock()
		if err != nil {
			fix := "see the error"
			if errors.Is(err, smimesync.ErrLocked) {
				fix = "another smimesync (run or sync) uses this state: stop it, or give this configuration its own state.path"
			}
			c.fail("state lock "+st.Path, err.Error(), fix)
			continue
		}
		unlock()
		c.ok("state lock "+st.Path, "free")
	}
}

// checkPolicyFiles parses every PEM file the policy names.
func checkPolicyFiles(c *checker, cfg *Config) {
	for _, l := range []struct {
		key   string
		files []string
	}{{"policy.roots", cfg.Policy.Roots}, {"policy.intermediates", cfg.Policy.Intermediates}, {"policy.managed_cas", cfg.Policy.ManagedCAs}} {
		for i, f := range l.files {
			key := fmt.Sprintf("%s[%d]", l.key, i)
			certs, err := cfg.readCerts(key, f)
			if err != nil {
				c.fail(key+" "+f, err.Error(), "give a PEM file of CERTIFICATE blocks (or one DER certificate) readable by the account smimesync runs as")
				continue
			}
			c.ok(key+" "+f, fmt.Sprintf("%d certificate(s), the first %s", len(certs), certs[0].Subject))
		}
	}
}

// checkSource checks a directory source: each of several in turn.
func checkSource(ctx context.Context, c *checker, name string, src directory.Source) {
	prefix := ""
	if name != "" {
		prefix = name + ": "
	}
	switch s := src.(type) {
	case *directory.Multi:
		for _, n := range s.Sources {
			checkSource(ctx, c, n.Name, n.Source)
		}
	case *directory.LDIFFile:
		n := 0
		_, err := s.Read(ctx, directory.Pass{}, func(*directory.Entry) error { n++; return nil })
		if err != nil {
			c.fail(prefix+"LDIF "+s.Path, err.Error(), "fix the file at the line named (RFC 2849), or re-export it")
			return
		}
		c.ok(prefix+"LDIF "+s.Path, fmt.Sprintf("parses, %d entries", n))
	case *ldapsource.Source:
		checkLDAP(ctx, c, prefix, s.Probe(ctx))
	default:
		c.ok(prefix+"source", fmt.Sprintf("%T: nothing to check", src))
	}
}

// checkLDAP turns an LDAP probe into items, stopping at the first stage
// that failed.
func checkLDAP(ctx context.Context, c *checker, prefix string, p *ldapsource.Probe) {
	fail := func(check, fix string) { c.fail(prefix+check, p.Err.Error(), fix) }
	switch p.Failed {
	case ldapsource.StageConnect:
		fail("connect "+p.URL, "check url (host and port: 389 for ldap:// and StartTLS, 636 for ldaps://), that the server runs, and that no firewall is in the way")
		return
	}
	c.ok(prefix+"connect", p.URL)
	if p.Failed == ldapsource.StageTLS {
		fail("TLS ("+p.TLS+")", "set ca_file to the PEM of the CA that issued the server's certificate, and server_name if the URL's host is not in it; ldaps:// needs port 636")
		return
	}
	c.ok(prefix+"TLS", p.TLS)
	if p.Failed == ldapsource.StageBind {
		fail("bind as "+p.Bind, "check bind.user and the password its password_env or password_file gives (or the keytab); is the account enabled, its password unexpired?")
		return
	}
	c.ok(prefix+"bind", p.Bind)
	if p.Failed == ldapsource.StageScope {
		fail("scope", "check base_dn: it must lie in a naming context the server holds")
		return
	}
	if p.Failed == ldapsource.StageRead {
		fail("read one entry under "+p.Base, "check base_dn and filter, and that the account may read users there")
		return
	}
	if p.Entry == "" {
		c.fail(prefix+"read one entry", fmt.Sprintf("the filter %s matches nothing under %s", p.Filter, p.Base),
			"check base_dn and filter (and groups); an account that may not read the users sees none")
	} else {
		c.ok(prefix+"read one entry", p.Entry)
	}
	switch p.Server {
	case ldapsource.ServerAD:
		switch {
		case p.Delta == ldapsource.DeltaDirSync && p.DirSync == nil:
			c.ok(prefix+"DirSync", "allowed: deltas come by DirSync")
		case p.Delta == ldapsource.DeltaDirSync && p.USN == nil:
			reason := p.DirSync.Error()
			if ldap.IsErrorWithCode(p.DirSync, ldap.LDAPResultInsufficientAccessRights) {
				reason = "refused: the account lacks \"Replicating Directory Changes\""
			}
			c.note(prefix+"DirSync", reason+"; the uSNChanged fallback works",
				"grant the bind account \"Replicating Directory Changes\" on the domain's naming context for DirSync deltas; the fallback sees deletions only when tombstones are visible")
		case p.USN == nil:
			c.ok(prefix+"uSNChanged deltas", "the DC's invocationId and highestCommittedUSN are readable")
		default:
			c.fail(prefix+"deltas", p.USN.Error(), "grant \"Replicating Directory Changes\" for DirSync, or set delta: none (every pass full)")
		}
		if p.Tombstones {
			c.ok(prefix+"tombstones", "visible: deleted users are seen")
		} else {
			c.note(prefix+"tombstones", "not visible to this account (or the domain has none yet)",
				"uSNChanged deltas then see deletions only at full passes (full_pass_every); DirSync with \"Replicating Directory Changes\" sees them")
		}
	case ldapsource.ServerOpenLDAP:
		switch {
		case p.Delta == ldapsource.DeltaSyncrepl && p.ContentSyncErr == nil:
			c.ok(prefix+"content sync (RFC 4533)", "available: deltas come by content sync")
		case p.Delta == ldapsource.DeltaSyncrepl:
			c.fail(prefix+"content sync (RFC 4533)", p.ContentSyncErr.Error(), "allow the bind account to use the syncprov overlay (limits, ACLs), or set delta: none")
		case p.ContentSync:
			c.ok(prefix+"content sync (RFC 4533)", "available, not used (delta: "+string(p.Delta)+")")
		default:
			c.note(prefix+"content sync (RFC 4533)", "not offered by the server: every pass reads the whole directory",
				"load the syncprov overlay on the database (overlay syncprov) for delta passes")
		}
	}
}

// cloudProber is a cloud sink check can ask: the graph sink.
type cloudProber interface {
	Token(ctx context.Context) (azauth.TokenClaims, error)
	Ping(ctx context.Context) error
}

// checkExchange checks the Exchange sink; it reports whether every check
// passed.
func checkExchange(ctx context.Context, c *checker, cfg *Config, s *exchange.Sink) bool {
	ok := checkCloud(ctx, c, "exchange", s, exchange.RequiredRoles, cfg)
	configured := ""
	if x := cfg.Sink.Exchange; x != nil {
		if ep, err := x.ResolvedEndpoints(); err == nil {
			configured = ep.Exchange
		}
	}
	if st := s.Stats(); st.Redirects > 0 {
		c.note("regional redirect", fmt.Sprintf("%s redirected the tenant to %s (%d redirect(s) followed)", configured, s.Endpoint(), st.Redirects),
			"nothing to do: the sink sends every later call of a run there; set endpoints.exchange to it to save the redirect")
	} else if ok {
		c.ok("regional redirect", "none: "+s.Endpoint()+" serves the tenant")
	}
	return ok
}

// checkCloud checks a cloud sink's token, its permissions and a harmless
// read; it reports whether all passed.
func checkCloud(ctx context.Context, c *checker, name string, s cloudProber, need []azauth.Role, cfg *Config) bool {
	claims, err := s.Token(ctx)
	if err != nil {
		c.fail("token", checkFirstLine(err.Error()), "check tenant_id, client_id and the secret or certificate (auth); a secret may have expired: make a new one in the app registration's \"Certificates & secrets\"")
		return false
	}
	c.ok("token", fmt.Sprintf("for %s, app %s in tenant %s", claims.Audience, claims.AppID, claims.TenantID))
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
		c.fail("permissions", fmt.Sprintf("missing %s (the token's roles claim, read without verifying it, holds: %s)", strings.Join(names, ", "), have),
			"in the Entra admin center, App registrations > the app > API permissions > Add a permission: "+strings.Join(fixes, "; ")+
				"; then Grant admin consent (see the README, \"Granting access\")")
		good = false
	} else {
		var names []string
		for _, r := range need {
			names = append(names, r.Name)
		}
		c.ok("permissions", fmt.Sprintf("%s granted (the token's roles claim, read without verifying it: %s)", strings.Join(names, ", "), have))
	}
	read := "GET /users?$top=1&$select=id,authorizationInfo"
	fix := "grant the permissions above; for writes to cloud-only users the app also needs the Entra role Privileged Authentication Administrator"
	if name == "exchange" {
		read = "Get-Recipient -ResultSize 1"
		fix = "give the app's service principal an Exchange role: the Entra role Exchange Recipient Administrator, or a custom role group (New-ServicePrincipal, Add-RoleGroupMember); check organization"
	}
	if err := s.Ping(ctx); err != nil {
		c.fail("read", read+": "+checkFirstLine(err.Error()), fix)
		return false
	}
	c.ok("read", read+" answers")
	return good
}

// checkProbe writes one recipient's certificates back unchanged and reads
// them back: the only write check makes.
func checkProbe(ctx context.Context, c *checker, s *exchange.Sink, who string) {
	rt, err := s.ProbeRoundTrip(ctx, who)
	check := "round trip " + who
	switch {
	case err == nil:
		c.ok(check, fmt.Sprintf("%d value(s) written back unchanged and read back identical: the byte encoding round-trips", len(rt.Before)))
	case errors.Is(err, exchange.ErrNotProbed):
		c.fail(check, "nothing written: "+checkFirstLine(err.Error()), "choose a cloud-mastered mailbox, mail user or mail contact that holds a certificate; when the service returns no certificate bytes for any recipient (\"System.Byte[]\"), the encoding cannot be probed, and syncs rely on the state file instead of reading back")
	case errors.Is(err, exchange.ErrReadBackMismatch):
		c.fail(check, "written back, but read back other bytes: "+checkFirstLine(err.Error()),
			"do not sync: the service stores other bytes than smimesync sends; restore the recipient's certificates and report this with a --trace of the probe")
	default:
		written := "nothing written"
		if rt != nil && rt.Written {
			written = "written back"
		}
		c.fail(check, written+": "+checkFirstLine(err.Error()), "see the error; run check --trace FILE for the exchanges")
	}
}

func checkFirstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
