package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// The reliability tests run the example binary's sync against the
// emulated Exchange Online tenant (and a real Samba AD) while things go
// wrong, and check after each fault that nothing valid was removed,
// nothing was written twice, and the next pass converges (see
// reliability_helpers_test.go). The disk-full case is in the smimesync
// package (TestDiskFull), where the state file lives.

// statusCounts tallies the emulator's answers: "200", "500", …, and
// "none" for a dropped connection or a request held until the client gave
// up.
func statusCounts(log []exchangetest.Request) map[string]int {
	out := map[string]int{}
	for _, q := range log {
		k := fmt.Sprint(q.Status)
		if q.Status == 0 {
			k = "none"
		}
		out[k]++
	}
	return out
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// TestReliabilityExchangeFaults runs `sync` (LDIF directory, Exchange
// emulator) while the emulator answers 5xx, 503 with Retry-After, 429
// storms (injected, and from its own write budget), holds requests past
// the request timeout, drops connections, or reports errors inside a 200.
// Faults the retries absorb end in exit 0; faults beyond them in exit 1
// with the failed recipients named and the cookie kept. Either way the
// three properties hold, and the next sync writes exactly what failed.
func TestReliabilityExchangeFaults(t *testing.T) {
	const users = 30
	for _, tt := range []struct {
		name     string
		exo      exchangetest.Config
		faults   []exchangetest.Fault
		maxTries int           // default 10
		timeout  time.Duration // request_timeout, default 1 s
		exit     int
		// faulty is the least number of answers that must be faults
		// (not 200), so that the case tests something.
		faulty int
	}{
		{name: "500 on writes", exit: exitOK, faulty: 6,
			faults: []exchangetest.Fault{{Cmdlet: "Set-Mailbox", Kind: exchangetest.FaultStatus, Status: 500, Times: 6}}},
		{name: "502 on reads, 504 on writes", exit: exitOK, faulty: 8,
			faults: []exchangetest.Fault{
				{Cmdlet: "Get-Mailbox", Kind: exchangetest.FaultStatus, Status: 502, Times: 4},
				{Cmdlet: "Set-Mailbox", Kind: exchangetest.FaultStatus, Status: 504, Times: 4},
			}},
		{name: "503 with Retry-After", exit: exitOK, faulty: 8,
			faults: []exchangetest.Fault{{Kind: exchangetest.FaultUnavailable, RetryAfter: 30 * time.Millisecond, Times: 8}}},
		{name: "429 storm", exit: exitOK, faulty: 60, maxTries: 40,
			faults: []exchangetest.Fault{
				{Cmdlet: "Get-Recipient", Kind: exchangetest.FaultThrottle, RetryAfter: 5 * time.Millisecond, Times: 10},
				{Cmdlet: "Get-Mailbox", Kind: exchangetest.FaultThrottle, RetryAfter: 5 * time.Millisecond, Times: 20},
				{Cmdlet: "Set-Mailbox", Kind: exchangetest.FaultThrottle, RetryAfter: 5 * time.Millisecond, Times: 30},
			}},
		{name: "429 from the write budget", exit: exitOK, maxTries: 40, faulty: 1,
			// 5 writes per 150 ms of wall clock: the 30 writes span 6 windows.
			// No Rate-Limit headers: the sink would pace itself before the
			// 429s this case is about (pacing has its own test in cloud/exchange).
			exo: exchangetest.Config{Budget: 5, Window: 150 * time.Second, TimeScale: 1000, NoRateLimitHeaders: true}},
		{name: "timeouts", exit: exitOK, faulty: 5, timeout: 300 * time.Millisecond,
			faults: []exchangetest.Fault{
				{Cmdlet: "Set-Mailbox", Kind: exchangetest.FaultTimeout, Times: 3},
				{Cmdlet: "Get-Mailbox", Kind: exchangetest.FaultTimeout, Times: 2},
			}},
		{name: "dropped connections", exit: exitOK, faulty: 8,
			faults: []exchangetest.Fault{{Kind: exchangetest.FaultDrop, Times: 8}}},
		{name: "500 beyond the retries", exit: exitRuntime, faulty: 12, maxTries: 2,
			faults: []exchangetest.Fault{{Cmdlet: "Set-Mailbox", Kind: exchangetest.FaultStatus, Status: 500, Times: 12}}},
		{name: "timeouts beyond the retries", exit: exitRuntime, faulty: 4, maxTries: 1, timeout: 200 * time.Millisecond,
			faults: []exchangetest.Fault{{Cmdlet: "Set-Mailbox", Kind: exchangetest.FaultTimeout, Times: 4}}},
		// One index load, 3 tries, all 503: the sink remembers the failure
		// for 30 s, so every lookup of the pass fails at once.
		{name: "recipient index unavailable", exit: exitRuntime, faulty: 3, maxTries: 3,
			faults: []exchangetest.Fault{{Cmdlet: "Get-Recipient", Kind: exchangetest.FaultUnavailable, Times: 3}}},
		{name: "errors inside a 200", exit: exitRuntime,
			faults: []exchangetest.Fault{{Cmdlet: "Set-Mailbox", Kind: exchangetest.FaultAdminAPIError, Times: 3}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			us := relUsers(t, "x", users)
			rt := newRelTenant(t, tt.exo, us)
			timeout := cmp.Or(tt.timeout, time.Second)
			tries := cmp.Or(tt.maxTries, 10)
			cfg := writeConfig(t, "source: {ldif: {path: users.ldif}}\nstate: {path: state.json}\nconcurrency: 4\n"+rt.sinkYAML(timeout, tries))
			writeUsersLDIF(t, filepath.Dir(cfg), us)
			kept := keptByPolicy(t, cfg)
			before := rt.snapshot(t)
			for _, f := range tt.faults {
				rt.exo.Fail(f)
			}

			code, rep, stderr := syncJSON(t, cfg)
			statuses := statusCounts(rt.exo.Log())
			if code != tt.exit || rep == nil {
				t.Fatalf("faulted sync: exit %d, want %d\n%s", code, tt.exit, stderr)
			}
			t.Logf("faulted sync: exit %d, %d written, %d errors, cookie advanced %v; emulator answered %s",
				code, rep.Summary.Written, len(rep.Errors), rep.CookieAdvanced, formatCounts(statuses))
			if faulty := len(rt.exo.Log()) - statuses["200"]; faulty < tt.faulty || tt.exo.Budget > 0 && rt.exo.Throttled() == 0 {
				t.Errorf("only %d fault answers (throttled by budget: %d), want at least %d: the case tests nothing", faulty, rt.exo.Throttled(), tt.faulty)
			}
			if rep.CookieAdvanced != (code == exitOK) {
				t.Errorf("cookie advanced %v with exit %d", rep.CookieAdvanced, code)
			}
			if code != exitOK {
				if len(rep.Errors) == 0 || !regexp.MustCompile(`x\d{3}@`+regexp.QuoteMeta(relDomain)).MatchString(stderr) {
					t.Errorf("a failed sync must list and name its failures: %q\n%s", rep.Errors, stderr)
				}
				t.Logf("first error: %s", firstLine(stderr))
			}
			nothingValidRemoved(t, before, rt.snapshot(t), kept)

			// The next pass: no faults left.
			code2, rep2, stderr2 := syncJSON(t, cfg)
			if code2 != exitOK || rep2 == nil {
				t.Fatalf("next sync: exit %d\n%s", code2, stderr2)
			}
			t.Logf("next sync: %d written, %d unchanged", rep2.Summary.Written, rep2.Summary.Unchanged)
			if rep2.Summary.Written != users-rep.Summary.Written || rep2.Summary.Unchanged != rep.Summary.Written {
				t.Errorf("next sync wrote %d and left %d unchanged; want the %d the faulted one did not write, and its %d",
					rep2.Summary.Written, rep2.Summary.Unchanged, users-rep.Summary.Written, rep.Summary.Written)
			}
			if counts := nothingWrittenTwice(t, rt.exo, nil); len(counts) != users {
				t.Errorf("%d recipients written, want all %d", len(counts), users)
			}
			nothingValidRemoved(t, before, rt.snapshot(t), kept)
			converges(t, cfg, rt.exo, users)
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	return line
}

func randSuffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestReliabilityLDAPConnectionCut: the connection to Samba is cut (through
// the harness's proxy) in the middle of the paged read of a DirSync delta,
// during `sync`. The sync fails with a clear error, writes nothing, and
// leaves the state file (and so the delta cookie) byte for byte as it was;
// the next sync carries the whole delta, writing each recipient once.
func TestReliabilityLDAPConnectionCut(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	proxy := srv.Proxy(t)
	const n = 60
	us := relUsers(t, "rc"+randSuffix(), n)
	specs := make([]ldaptest.UserSpec, n)
	for i, u := range us {
		certs, _ := u.directoryCerts(false)
		specs[i] = ldaptest.UserSpec{Name: u.Name, Mail: u.Mail, UserCertificate: certs}
	}
	dns := srv.AddUsers(t, ou, specs)
	// A tenant that returns certificate bytes: the sink then asks what
	// each recipient carries (one Get-Mailbox per planned entry), which
	// paces the plan below.
	rt := newRelTenant(t, exchangetest.Config{ReadBack: exchangetest.ReadBackByteArray}, us)

	t.Setenv("SMIMESYNC_TEST_LDAP_PASSWORD", srv.AdminPassword)
	cfg := writeConfig(t, fmt.Sprintf(`source:
  ldap:
    url: %s
    server_name: 127.0.0.1
    ca_file: %s
    bind: {method: simple, user: %q, password_env: SMIMESYNC_TEST_LDAP_PASSWORD}
    base_dn: [%q]
    delta: dirsync
    page_size: 5
    retries: 1
state: {path: state.json}
concurrency: 4
`, proxy.URL, srv.CAFile, srv.AdminDN, ou)+rt.sinkYAML(time.Second, 10))
	statePath := filepath.Join(filepath.Dir(cfg), "state.db")

	// The tenant reads back: users whose seeded set is already right are
	// unchanged, the others lose their expired certificate.
	if code, rep, stderr := syncJSON(t, cfg); code != exitOK || rep == nil || rep.Summary.Written+rep.Summary.Unchanged != n {
		t.Fatalf("first sync: exit %d\n%s", code, stderr)
	}
	// Everyone renews in AD: the next sync is a DirSync delta of n users.
	for i, u := range us {
		certs, _ := u.directoryCerts(true)
		srv.SetCertificates(t, dns[i], certs)
	}
	rt.exo.ResetCounters()
	saved, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	kept := keptByPolicy(t, cfg)
	before := rt.snapshot(t)

	// Each lookup of what a recipient carries takes 15 ms, so that the
	// read is still paging when the cut comes.
	rt.exo.Fail(exchangetest.Fault{Cmdlet: "Get-Mailbox", Kind: exchangetest.FaultSlow, Delay: 15 * time.Millisecond, Times: 1 << 20})
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, _, stderr := runCLI(t, "sync", "--config", cfg)
		done <- result{code, stderr}
	}()
	waitFor(t, "the delta to be half-way through planning", func() bool { return rt.exo.Requests("Get-Mailbox") >= 12 })
	proxy.Cut()
	var res result
	select {
	case res = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("sync did not end after the cut")
	}
	planned := rt.exo.Requests("Get-Mailbox")
	t.Logf("cut after %d lookups; sync exit %d: %s", planned, res.code, firstLine(res.stderr))
	if res.code != exitRuntime || !strings.Contains(res.stderr, "connection to the directory server lost") || !strings.Contains(res.stderr, ou) {
		t.Errorf("sync through a cut connection: exit %d, want %d and an error naming the lost connection and %s:\n%s", res.code, exitRuntime, ou, res.stderr)
	}
	if planned >= n {
		t.Errorf("all %d entries were planned: the cut came after the read", planned)
	}
	if w := rt.exo.Requests("Set-Mailbox"); w != 0 {
		t.Errorf("the failed sync sent %d writes", w)
	}
	if now, err := os.ReadFile(statePath); err != nil || !bytes.Equal(now, saved) {
		t.Errorf("the state file changed after the failed read (%v): the cookie must not advance", err)
	}
	nothingValidRemoved(t, before, rt.snapshot(t), kept)

	code, rep, stderr := syncJSON(t, cfg)
	if code != exitOK || rep == nil {
		t.Fatalf("next sync: exit %d\n%s", code, stderr)
	}
	if rep.Full || rep.Summary.Written != n {
		t.Errorf("next sync: full %v, %d written; want a delta writing %d", rep.Full, rep.Summary.Written, n)
	}
	t.Logf("next sync (the delta again, from the old cookie): %d written", rep.Summary.Written)
	if counts := nothingWrittenTwice(t, rt.exo, nil); len(counts) != n {
		t.Errorf("%d recipients written, want %d", len(counts), n)
	}
	nothingValidRemoved(t, before, rt.snapshot(t), kept)
	converges(t, cfg, rt.exo, n)
}

// killChildEnv names the configuration the SIGKILL test's child syncs.
const killChildEnv = "SMIMESYNC_RELIABILITY_CHILD"

// TestReliabilitySIGKILL runs `sync` in a child process (this test binary
// again, running the real main) against the Exchange emulator in this
// process, whose writes each take 40 ms, and kills it with SIGKILL once the
// emulator has applied K of the N writes. Then `sync` runs again here.
//
// The state's journal records every write the child saw acknowledged
// before it goes on, so the only writes the second sync can repeat are
// those the emulator applied but the child had not yet recorded: the
// writes in flight at the kill. The Syncer never has more than Concurrency
// writes in flight, so at most Concurrency recipients are written twice,
// and the test checks that the repeated ones are exactly the applied ones
// missing from the journal.
func TestReliabilitySIGKILL(t *testing.T) {
	if cfg := os.Getenv(killChildEnv); cfg != "" {
		os.Args = []string{"smimesync", "sync", "--config", cfg}
		main() // exits
		return
	}
	if runtime.GOOS == "windows" {
		t.Skip("no SIGKILL on Windows")
	}
	const (
		n           = 48
		k           = 16
		concurrency = 4
		delay       = 40 * time.Millisecond
	)
	us := relUsers(t, "k", n)
	// Certificates unreadable in every form, so that what the sync after the kill knows comes from the journal.
	rt := newRelTenant(t, exchangetest.Config{CLIXML: exchangetest.CLIXMLPlaceholder, EntityPlaceholder: true}, us)
	cfg := writeConfig(t, fmt.Sprintf("source: {ldif: {path: users.ldif}}\nstate: {path: state.json}\nconcurrency: %d\n", concurrency)+rt.sinkYAML(5*time.Second, 5))
	dir := filepath.Dir(cfg)
	writeUsersLDIF(t, dir, us)
	kept := keptByPolicy(t, cfg)
	before := rt.snapshot(t)
	rt.exo.Fail(exchangetest.Fault{Cmdlet: "Set-Mailbox", Kind: exchangetest.FaultSlow, Delay: delay, Times: 1 << 20})

	cmd := exec.Command(os.Args[0], "-test.run=^TestReliabilitySIGKILL$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+cfg, "TMPDIR="+t.TempDir())
	var childErr syncBuffer
	cmd.Stdout, cmd.Stderr = &childErr, &childErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	applied := func() int {
		sum := 0
		for _, c := range rt.exo.WriteCounts() {
			sum += c
		}
		return sum
	}
	deadline := time.Now().Add(time.Minute)
	for applied() < k {
		select {
		case err := <-exited:
			t.Fatalf("the child ended before the kill (%v):\n%s", err, childErr.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the emulator saw %d writes in a minute:\n%s", applied(), childErr.String())
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL\n%s", err, childErr.String())
	}
	// Requests the child left in the emulator's FaultSlow end when their
	// connection closes; give a racing one time to land.
	time.Sleep(3 * delay)
	atKill := rt.exo.WriteCounts()
	snap, err := (&smimesync.BoltState{Path: filepath.Join(dir, "state.db")}).Load(context.Background())
	if err != nil {
		t.Fatalf("the killed child's state cannot be loaded: %v", err)
	}
	recorded := map[string]bool{}
	for _, p := range snap.Published {
		recorded[p.Recipient] = true
	}
	unrecorded := map[string]bool{}
	for guid := range atKill {
		if !recorded[guid] {
			unrecorded[guid] = true
		}
	}
	for guid := range recorded {
		if atKill[guid] == 0 {
			t.Errorf("the journal records a write to %s the emulator never applied", guid)
		}
	}
	t.Logf("killed mid-apply: the emulator had applied %d of %d writes, the journal recorded %d; %d applied but unrecorded (bound: concurrency %d)",
		len(atKill), n, len(recorded), len(unrecorded), concurrency)
	if len(atKill) < k || len(atKill) >= n {
		t.Errorf("the kill came at %d applied writes, want between %d and %d: not mid-apply", len(atKill), k, n-1)
	}
	if len(unrecorded) > concurrency {
		t.Errorf("%d writes applied but not recorded, more than the %d that can be in flight", len(unrecorded), concurrency)
	}
	nothingValidRemoved(t, before, rt.snapshot(t), kept)

	code, rep, stderr := syncJSON(t, cfg)
	if code != exitOK || rep == nil {
		t.Fatalf("sync after the kill: exit %d\n%s", code, stderr)
	}
	t.Logf("sync after the kill: %d written, %d unchanged (known from the journal)", rep.Summary.Written, rep.Summary.Unchanged)
	if rep.Summary.Unchanged != len(recorded) || rep.Summary.Written != n-len(recorded) {
		t.Errorf("sync after the kill: %d written, %d unchanged; want %d and %d", rep.Summary.Written, rep.Summary.Unchanged, n-len(recorded), len(recorded))
	}
	if counts := nothingWrittenTwice(t, rt.exo, unrecorded); len(counts) != n {
		t.Errorf("%d recipients written, want %d", len(counts), n)
	}
	nothingValidRemoved(t, before, rt.snapshot(t), kept)
	converges(t, cfg, rt.exo, n)
}
