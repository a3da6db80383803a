package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// genVersion names the generator's output in the Samba OU's name: bump it
// when Entry makes different users for the same seed, so that an OU seeded
// by an older version is not reused.
const genVersion = 1

// errNoServer is wrapped by the error of a Samba scenario that could not
// run because Samba is not installed or did not come up (the harness's
// skip).
var errNoServer = errors.New("no directory server")

// benchOUPrefix starts the name of the OU the Samba scenario seeds and
// keeps between runs.
const benchOUPrefix = "smimesync-bench-"

// benchTB is the testing.TB the ldaptest harness is given: the
// *testing.B of a testing.Benchmark call, with the messages the harness
// logs, skips or fails with kept (testing.Benchmark would discard them).
type benchTB struct {
	*testing.B
	log io.Writer

	mu   sync.Mutex
	msgs []string
}

func (t *benchTB) note(msg string) {
	t.mu.Lock()
	t.msgs = append(t.msgs, msg)
	t.mu.Unlock()
}

func (t *benchTB) messages() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.msgs, "; ")
}

// Log prints to the benchmark's log.
func (t *benchTB) Log(args ...any) { fmt.Fprintln(t.log, append([]any{"bench:"}, args...)...) }

// Logf prints to the benchmark's log.
func (t *benchTB) Logf(format string, args ...any) {
	fmt.Fprintf(t.log, "bench: "+format+"\n", args...)
}

// Error notes the message and marks the run failed.
func (t *benchTB) Error(args ...any) { t.note(fmt.Sprint(args...)); t.B.Fail() }

// Errorf notes the message and marks the run failed.
func (t *benchTB) Errorf(format string, args ...any) {
	t.note(fmt.Sprintf(format, args...))
	t.B.Fail()
}

// Fatal notes the message and stops the run.
func (t *benchTB) Fatal(args ...any) { t.note(fmt.Sprint(args...)); t.B.FailNow() }

// Fatalf notes the message and stops the run.
func (t *benchTB) Fatalf(format string, args ...any) {
	t.note(fmt.Sprintf(format, args...))
	t.B.FailNow()
}

// Skip notes the message and stops the run as skipped.
func (t *benchTB) Skip(args ...any) { t.note(fmt.Sprint(args...)); t.B.SkipNow() }

// Skipf notes the message and stops the run as skipped.
func (t *benchTB) Skipf(format string, args ...any) {
	t.note(fmt.Sprintf(format, args...))
	t.B.SkipNow()
}

// sambaScenario measures the LDAP source against the machine's Samba AD
// DC (provisioned by the ldaptest harness when needed): a full pass over
// LDAP against an empty tenant, an unchanged DirSync delta, a DirSync
// delta after o.Changes users changed, and a full re-read. The seeded OU
// is kept for the next run with the same seed and size.
//
// The harness wants a testing.TB: the scenario runs inside
// testing.Benchmark, once.
func sambaScenario(ctx context.Context, o *options, users int, dir string, log io.Writer) (*Run, error) {
	var (
		run    *Run
		runErr error
		once   sync.Once
		tb     *benchTB
	)
	testing.Benchmark(func(b *testing.B) {
		// testing.Benchmark calls again with a larger b.N when a call
		// takes less than a second; one run is all we want.
		once.Do(func() {
			tb = &benchTB{B: b, log: log}
			run, runErr = sambaRun(ctx, tb, o, users, dir)
		})
	})
	switch {
	case tb == nil:
		return nil, fmt.Errorf("bench: samba: the benchmark did not run")
	case tb.Skipped():
		return nil, fmt.Errorf("bench: samba: %w: %s", errNoServer, tb.messages())
	case tb.Failed():
		return nil, fmt.Errorf("bench: samba: %s", tb.messages())
	case runErr != nil:
		return nil, runErr
	case run == nil:
		return nil, fmt.Errorf("bench: samba: stopped: %s", tb.messages())
	}
	return run, nil
}

// sambaSpec is user i as the harness adds it. Account names carry a tag
// of the seed and size, so that the OUs of several configurations can live
// side by side in the one domain; the UPN is left to the harness
// (name@realm) for the same reason: Samba keeps both unique domain-wide.
func sambaSpec(g *Generator, i int, e *directory.Entry) ldaptest.UserSpec {
	tag := seedBytes(g.Seed, "samba", uint64(g.Users))
	return ldaptest.UserSpec{
		Name:                 fmt.Sprintf("sb%02x%02x%06d", tag[0], tag[1], i),
		Mail:                 e.Mail,
		ProxyAddresses:       e.ProxyAddresses,
		UserCertificate:      e.UserCertificate,
		UserSMIMECertificate: e.UserSMIMECertificate,
	}
}

func sambaRun(ctx context.Context, tb *benchTB, o *options, users int, dir string) (*Run, error) {
	g, err := NewGenerator(o.Seed, users)
	if err != nil {
		return nil, err
	}
	run := newRun(o, "samba", g)
	changed, err := g.Changed(o.Changes)
	if err != nil {
		return nil, err
	}
	srv := ldaptest.Samba(tb)
	t0 := time.Now()
	ou, seeded, stats, err := benchOU(ctx, tb, srv, g)
	if err != nil {
		return nil, err
	}
	run.Directory = stats
	// The changed users as the generator makes them: a previous run's
	// delta pass left them changed.
	original := map[int]*directory.Entry{}
	for _, i := range changed {
		e, _, err := g.Entry(i, false)
		if err != nil {
			return nil, err
		}
		original[i] = e
		srv.SetCertificates(tb, srv.UserDN(ou, sambaSpec(g, i, e)), e.UserCertificate)
	}
	if o.VsLdapsearch > 0 {
		run.SetupSeconds = time.Since(t0).Seconds()
		run.SetupNote = fmt.Sprintf("reused the seeded %s", ou)
		if seeded {
			run.SetupNote = fmt.Sprintf("seeded Samba (%s)", ou)
		}
		run.Comparison, err = compareLdapsearch(ctx, o, srv, ou, dir, tb.log)
		if err != nil {
			return nil, err
		}
		return run, nil
	}
	ten, err := newTenant(o.Sink, g, o.tenantConfig(dir))
	if err != nil {
		return nil, err
	}
	defer ten.Close()
	run.SetupSeconds = time.Since(t0).Seconds()
	if seeded {
		run.SetupNote = fmt.Sprintf("seeded Samba (%s) and the tenant", ou)
	} else {
		run.SetupNote = fmt.Sprintf("reused the seeded %s; seeded the tenant", ou)
	}
	fmt.Fprintf(tb.log, "bench: %s in %.1f s\n", run.SetupNote, run.SetupSeconds)

	source := func() (string, *ldapSpec) {
		return "", &ldapSpec{URL: srv.URL, CAFile: srv.CAFile, BindDN: srv.AdminDN, Password: srv.AdminPassword, BaseDN: ou}
	}
	run.Passes, err = runPasses(ctx, o, "samba", ten, dir, []pass{
		{name: "read", read: "paged LDAP search, Read alone (no policy, sink or state)", readOnly: true, source: source},
		{name: "full", read: "paged LDAP search; empty tenant", want: -1, force: true, source: source},
		{name: "unchanged", read: "DirSync delta; nothing changed", want: 0, source: source},
		{name: fmt.Sprintf("delta-%d", len(changed)), read: fmt.Sprintf("DirSync delta; %d users changed", len(changed)),
			want: len(changed), source: source, before: func(context.Context) error {
				for _, i := range changed {
					e, _, err := g.Entry(i, true)
					if err != nil {
						return err
					}
					srv.SetCertificates(tb, srv.UserDN(ou, sambaSpec(g, i, original[i])), e.UserCertificate)
				}
				return nil
			}},
		{name: "full-reread", read: "paged LDAP search (PlanFull); nothing changed", full: true, want: 0, source: source},
	}, tb.log)
	if err != nil {
		return nil, err
	}
	return run, nil
}

// benchOU returns the OU holding the generator's users on srv, seeding it
// unless a complete one from an earlier run is there (seeding 10,000
// users takes about a minute). An incomplete one (an interrupted seeding)
// is removed and seeded again.
func benchOU(ctx context.Context, tb *benchTB, srv *ldaptest.Server, g *Generator) (ou string, seeded bool, st DirStats, err error) {
	name := fmt.Sprintf("%sv%d-s%d-n%d", benchOUPrefix, genVersion, g.Seed, g.Users)
	ou = "OU=" + name + "," + srv.BaseDN
	c := srv.Dial(tb)
	res, err := c.SearchWithPaging(ldap.NewSearchRequest(ou, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=user)(mail=*))", []string{"1.1"}, nil), 1000)
	switch {
	case err == nil && len(res.Entries) == g.Users:
		// Count what the OU holds by making the users again (the
		// certificates are not compared: the generator is deterministic).
		err = g.forEachUser(ctx, func(_ int, _ *directory.Entry, s DirStats) error { st.add(s); return nil })
		return ou, false, st, err
	case err == nil:
		if err := srv.DeleteTree(ou); err != nil {
			return "", false, st, fmt.Errorf("bench: removing the incomplete %s: %w", ou, err)
		}
		fmt.Fprintf(tb.log, "bench: removed the incomplete %s (%d of %d users)\n", ou, len(res.Entries), g.Users)
	case !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return "", false, st, fmt.Errorf("bench: looking for %s: %w", ou, err)
	}
	add := ldap.NewAddRequest(ou, nil)
	add.Attribute("objectClass", []string{"top", "organizationalUnit"})
	add.Attribute("ou", []string{name})
	if err := c.Add(add); err != nil {
		return "", false, st, fmt.Errorf("bench: adding %s: %w", ou, err)
	}
	fmt.Fprintf(tb.log, "bench: seeding %s with %d users\n", ou, g.Users)
	t0 := time.Now()
	var batch []ldaptest.UserSpec
	flush := func() {
		srv.AddUsers(tb, ou, batch)
		batch = batch[:0]
	}
	err = g.forEachUser(ctx, func(i int, e *directory.Entry, s DirStats) error {
		st.add(s)
		batch = append(batch, sambaSpec(g, i, e))
		if len(batch) == 1000 {
			flush()
			fmt.Fprintf(tb.log, "bench: %d users added (%.0f s)\n", i+1, time.Since(t0).Seconds())
		}
		return nil
	})
	if err != nil {
		return "", false, st, err
	}
	if len(batch) > 0 {
		flush()
	}
	return ou, true, st, nil
}
