package main

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/internal/testpki"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

// hostile is what a directory user can put in a name: a screen clear and
// cursor move, a window-title escape, a carriage return, a tab that breaks
// columns, a right-to-left override, and a byte that is not UTF-8.
const hostile = "mallory\x1b[2J\x1b[1;1H\x1b]0;pwned\x07\rroot\tx\u202ecod.exe\xff"

// unsafeIn reports the first byte sequence in out that a terminal would
// act on: a control character other than newline, U+202E, or invalid
// UTF-8.
func unsafeIn(out string) string {
	for i, r := range out {
		switch {
		case r == '\n':
		case r < 0x20 || r == 0x7f:
			return out[max(0, i-10):min(len(out), i+10)]
		case r == '\u202e':
			return "U+202E"
		case r == 0xfffd && !strings.HasPrefix(out[i:], "\ufffd"):
			return "invalid UTF-8"
		}
	}
	return ""
}

func TestTermSafe(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{`cn=Smith\, John,dc=example`, `cn=Smith\, John,dc=example`},
		{"Zoë Ångström 日本", "Zoë Ångström 日本"},
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"a\tb\rc\nd", `a\tb\rc\nd`},
		{"x\u202ey", `x\u202ey`},
		{"x\u200by", `x\u200by`},
		{"x\xffy", `x\xffy`},
		{"\x00", `\x00`},
	} {
		if got := termSafe(tt.in); got != tt.want {
			t.Errorf("termSafe(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := termSafe(hostile); unsafeIn(got) != "" || termSafe(got) != got {
		t.Errorf("termSafe(hostile) = %q", got)
	}
}

// TestInspectEscapesCertificateText: a certificate whose subject, issuer
// and e-mail address carry escape sequences is shown with them escaped.
func TestInspectEscapesCertificateText(t *testing.T) {
	now := clock()
	der := testpki.MustSelfSigned(t, testpki.SerialNumber(7),
		testpki.Subject(pkix.Name{CommonName: strings.ToValidUTF8(hostile, ""), Organization: []string{"\x1b[31mRed Corp"}}),
		testpki.Validity(now.Add(-time.Hour), now.Add(24*time.Hour)), testpki.KeyUsage(x509.KeyUsageDigitalSignature),
		testpki.Email("mallory\x1b[2J@example.com")).DER
	path := filepath.Join(t.TempDir(), "evil\x1b[2J.der")
	if err := os.WriteFile(path, der, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stdout, stderr := runCLI(t, "inspect", path)
	if !strings.Contains(stdout, `mallory\x1b[2J`) {
		t.Fatalf("inspect output does not show the escaped subject:\n%s%s", stdout, stderr)
	}
	if bad := unsafeIn(stdout); bad != "" {
		t.Errorf("inspect prints %q raw:\n%q", bad, stdout)
	}
}

// TestTextOutputEscapes: plan and sync tables, the report's text and CSV,
// and the progress line escape what came from the directory or the cloud.
func TestTextOutputEscapes(t *testing.T) {
	changes := []*smimesync.Change{{
		ID: hostile, User: hostile, DN: "cn=" + hostile, Action: smimesync.ActionSkip, Reason: smimesync.SkipError,
		Error: "lookup failed: " + hostile,
	}, {
		ID: "2", User: hostile, Action: smimesync.ActionSkip, Reason: hostile,
		Recipient: &cloud.Recipient{ID: "r", Name: hostile, Kind: "Mail\x1b[0mUser", ReadOnly: hostile},
	}}
	var plan, sync bytes.Buffer
	printPlan(&plan, "exo\x1b[2J", &smimesync.Plan{Changes: changes})
	printReport(&sync, "exo", &smimesync.Report{Plan: smimesync.Plan{Changes: changes}, Errors: []string{hostile}})

	ref := report.UserRef{User: hostile, ID: hostile, DN: "cn=" + hostile, Recipient: hostile}
	sum := &report.Summary{File: "r\x1b.json", Sinks: []report.SinkSummary{{
		Sink:         "exo\x1b[2J",
		LastPass:     report.Pass{Command: "run", Error: hostile},
		NoUsable:     []report.NoUsable{{UserRef: ref, Why: hostile}},
		Expiring:     []report.Expiring{{UserRef: ref, Attribute: "userCertificate", NotAfter: time.Now()}},
		Dropped:      []report.Dropped{{UserRef: ref, Attribute: hostile, Reasons: []smimesync.Reason{"expired"}, Notes: []string{hostile}}},
		NotPublished: []report.NotPublished{{UserRef: ref, Status: hostile, Why: hostile}},
	}}}
	var text, csv bytes.Buffer
	printReportSummary(&text, sum)
	if err := writeReportCSV(&csv, sum); err != nil {
		t.Fatal(err)
	}

	// The progress line's own escape (back to the start, erase the line)
	// is the only one it may print.
	var prog bytes.Buffer
	newProgress(&prog, func(io.Writer) bool { return true }).hook(hostile)(smimesync.Progress{Stage: "plan", Done: 1})
	progress := strings.ReplaceAll(prog.String(), "\r\x1b[K", "") + "\n"

	for name, out := range map[string]string{"plan": plan.String(), "sync": sync.String(), "report": text.String(), "report --csv": csv.String(), "progress": progress} {
		if !strings.Contains(out, `mallory\x1b[2J`) {
			t.Errorf("%s output does not show the escaped user:\n%s", name, out)
		}
		if bad := unsafeIn(out); bad != "" {
			t.Errorf("%s output prints %q raw:\n%q", name, bad, out)
		}
	}
}
