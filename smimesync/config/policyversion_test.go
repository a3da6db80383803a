package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// TestPolicyVersion: with trust anchors from files (and no revocation
// checking) the Syncers get a PolicyVersion, so that unchanged entries
// are memoized; it follows the certificates the files hold, and revocation checking
// turns it off.
func TestPolicyVersion(t *testing.T) {
	ca, err := testpki.New("Version Root", testpki.Clock(testclock.Now))
	if err != nil {
		t.Fatal(err)
	}
	other, err := testpki.New("Other Root", testpki.Clock(testclock.Now))
	if err != nil {
		t.Fatal(err)
	}
	version := func(conf string, roots []byte) string {
		t.Helper()
		c := parseIn(t, conf)
		if roots != nil {
			if err := os.WriteFile(filepath.Join(c.Dir, "roots.pem"), roots, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		syncers, err := c.Syncers(slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return syncers[0].PolicyVersion
	}
	const base = "source: {ldif: {path: users.ldif}}\nsink: {file: {path: p.json}}\n"
	if v := version(base, nil); v != "" {
		t.Errorf("no roots: PolicyVersion %q, want none (the policy is fingerprinted whole)", v)
	}
	withRoots := base + "policy: {roots: [roots.pem]}\n"
	a, a2, b := version(withRoots, ca.PEM()), version(withRoots, ca.PEM()), version(withRoots, other.PEM())
	if a == "" || a != a2 || a == b {
		t.Errorf("roots: versions %q, %q (same file), %q (another root): want one non-empty version per content", a, a2, b)
	}
	withRevocation := base + "policy: {roots: [roots.pem], revocation: {}}\n"
	if v := version(withRevocation, ca.PEM()); v != "" {
		t.Errorf("with revocation checking: PolicyVersion %q, want none (every pass asks again)", v)
	}
}
