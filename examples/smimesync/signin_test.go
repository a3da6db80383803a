package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
)

// manyUsersLDIF writes an LDIF file of n users, each with a recipient in
// exo.
func manyUsersLDIF(t *testing.T, dir string, n int, exo *exchangetest.Server) {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\n")
	for i := 1; i <= n; i++ {
		mail := fmt.Sprintf("user%02d@smime.example", i)
		guid := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("user-guid-%06d", i)))
		fmt.Fprintf(&b, "\ndn: CN=User %02d,OU=Staff,DC=smime,DC=example\nobjectGUID:: %s\nmail: %s\n", i, guid, mail)
		exo.Add(exchangetest.Recipient{Guid: fmt.Sprintf("e0000000-0000-4000-8000-0000000000%02d", i), PrimarySmtpAddress: mail})
	}
	if err := os.WriteFile(filepath.Join(dir, "users.ldif"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWrongSecretReportedOnce: with a wrong client secret, plan and sync
// print one error, naming the AADSTS code and the fix, not one copy of the
// Azure SDK's many-line error per user framed as that user's failure.
// Before the fix, 37 users printed hundreds of lines.
func TestWrongSecretReportedOnce(t *testing.T) {
	exo, _, cfg := exchangeTenant(t)
	manyUsersLDIF(t, filepath.Dir(cfg), 37, exo)
	t.Setenv("SMIMESYNC_TEST_SECRET", "wrong")
	for _, cmd := range []string{"plan", "sync"} {
		code, stdout, stderr := runCLI(t, cmd, "--config", cfg)
		out := stdout + stderr
		lines := strings.Count(out, "\n")
		if code != exitRuntime {
			t.Errorf("%s: exit %d, want %d", cmd, code, exitRuntime)
		}
		if lines > 2 || strings.Count(out, "AADSTS7000215") != 1 || !strings.Contains(out, "fix: ") {
			t.Errorf("%s printed %d lines, want one error naming AADSTS7000215 once, with a fix:\n%s", cmd, lines, out)
		}
		if strings.Contains(out, "user01@") {
			t.Errorf("%s frames the refused sign-in as a user's failure:\n%s", cmd, out)
		}
	}
	if n := exo.Requests(""); n != 0 {
		t.Errorf("Exchange received %d requests without a token", n)
	}
}

// TestSignInEveryPass: a pass with nothing to publish still signs in, so a
// wrong secret fails it (exit 1) and /healthz says so, instead of a quiet
// exit 0 and "ok".
func TestSignInEveryPass(t *testing.T) {
	exo, _, cfg := exchangeTenant(t)
	dir := filepath.Dir(cfg)
	manyUsersLDIF(t, dir, 0, exo) // an empty directory: nothing to look up
	t.Setenv("SMIMESYNC_TEST_SECRET", "wrong")
	for _, cmd := range []string{"plan", "sync"} {
		code, stdout, stderr := runCLI(t, cmd, "--config", cfg)
		if code != exitRuntime || !strings.Contains(stderr, "AADSTS7000215") {
			t.Errorf("%s with a wrong secret and nothing to do: exit %d, want %d naming AADSTS7000215:\n%s%s", cmd, code, exitRuntime, stdout, stderr)
		}
	}

	// The service: /healthz fails after the first pass.
	svc := cfg + ".service.yaml"
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, "service: {interval: 200ms, listen: \"127.0.0.1:0\"}\nlog: {format: json}\n"...)
	if err := os.WriteFile(svc, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sr := startService(t, svc)
	var doc healthResponse
	var code int
	waitFor(t, "a pass to finish", func() bool {
		code, doc = getHealth(t, sr.addr)
		return doc.Status != "starting"
	})
	if code != http.StatusServiceUnavailable || doc.Status != "failing" || !strings.Contains(doc.Reason, "AADSTS7000215") {
		t.Errorf("/healthz after a refused sign-in: %d %+v", code, doc)
	}
	sr.stop(t, 15*time.Second)
}
