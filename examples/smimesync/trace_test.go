package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/cloud/httplog"
)

// traceSecret is the client secret of TestTraceHoldsNoSecret: with
// characters a form body escapes, so that both spellings are looked for.
const traceSecret = "tr4ce+S3cret/value=~"

// TestTraceHoldsNoSecret runs plan, sync and check with --trace against
// the emulators and scans the trace for the client secret (raw and
// form-encoded), every token the login emulator issued, and the test
// certificates in every encoding the wire carries them in (base64, as in
// CLIXML, and the admin API's decimal byte arrays). The trace must still
// show the exchanges: the login, Get-Recipient, Set-Mailbox and the
// CLIXML read-back, with their fingerprints.
func TestTraceHoldsNoSecret(t *testing.T) {
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	tokens.AddSecretApp(testTenant, testClient, traceSecret)
	exo := exchangetest.NewServer(exchangetest.Config{Tokens: tokens, TenantID: testTenant, Organization: testOrg})
	t.Cleanup(exo.Close)
	exo.Add(exchangetest.Recipient{Guid: "e0000000-0000-4000-8000-000000000001", PrimarySmtpAddress: "alice@smime.example"})
	t.Setenv("SMIMESYNC_TEST_SECRET", traceSecret)
	cfg := writeConfig(t, "source: {ldif: {path: users.ldif}}\nstate: {path: state.json}\n"+exchangeSinkYAML(tokens, exo))
	dir := t.TempDir()
	var traces []string
	for _, cmd := range [][]string{
		{"plan", "--config", cfg},
		{"sync", "--config", cfg},
		{"check", "--config", cfg, "--probe", "alice@smime.example"},
	} {
		trace := filepath.Join(dir, cmd[0]+".jsonl")
		traces = append(traces, trace)
		code, stdout, stderr := runCLI(t, append(cmd, "--trace", trace)...)
		if cmd[0] != "check" && code != exitOK {
			t.Fatalf("%s exit %d:\n%s\n%s", cmd[0], code, stdout, stderr)
		}
	}
	alice, _ := exo.Recipient("alice@smime.example")
	if len(alice.UserCertificate) == 0 || len(alice.UserSMimeCertificate) == 0 {
		t.Fatal("the sync wrote nothing: the trace would prove little")
	}
	forbidden := map[string]string{
		"the client secret":              traceSecret,
		"the form-encoded client secret": url.QueryEscape(traceSecret),
	}
	issued := tokens.IssuedTokens()
	if len(issued) == 0 {
		t.Fatal("no token was issued")
	}
	for i, tok := range issued {
		forbidden[fmt.Sprintf("token %d", i)] = tok
		forbidden[fmt.Sprintf("token %d's signature", i)] = tok[strings.LastIndex(tok, ".")+1:]
	}
	for i, c := range append(append([][]byte{}, alice.UserCertificate...), alice.UserSMimeCertificate...) {
		forbidden[fmt.Sprintf("value %d in base64", i)] = base64.StdEncoding.EncodeToString(c)
		mid := c[300:348] // 48 bytes: base64 of it aligns at any multiple of 3
		forbidden[fmt.Sprintf("value %d, a middle part in base64", i)] = base64.StdEncoding.EncodeToString(mid)
		var dec []string
		for _, b := range mid {
			dec = append(dec, strconv.Itoa(int(b)))
		}
		forbidden[fmt.Sprintf("value %d, a middle part as a byte array", i)] = strings.Join(dec, ",")
	}
	seen := map[string]bool{}
	for _, trace := range traces {
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for what, s := range forbidden {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("%s holds %s, after %q", filepath.Base(trace), what, text[max(0, i-120):i])
			}
		}
		if strings.Contains(text, "eyJ") {
			t.Errorf("%s holds something that looks like a JWT", filepath.Base(trace))
		}
		sc := bufio.NewScanner(strings.NewReader(text))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec httplog.Record
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("%s: a line is not JSON: %v", filepath.Base(trace), err)
			}
			if rec.Response == nil && rec.Error == "" {
				t.Errorf("%s: %s %s recorded without its answer", filepath.Base(trace), rec.Method, rec.Path)
			}
			body := rec.Request.Body
			switch {
			case strings.HasSuffix(rec.Path, "/oauth2/v2.0/token"):
				seen["login"] = strings.Contains(body, "client_secret="+httplog.Redacted)
			case strings.Contains(body, `"Set-Mailbox"`):
				seen["write"] = strings.Contains(body, `"Data":"sha256:`)
			case rec.Request.Headers["X-Responseformat"] == "clixml" && rec.Response != nil:
				seen["clixml"] = seen["clixml"] || strings.Contains(rec.Response.Body, `\u003cBA\u003esha256:`)
			case strings.Contains(body, `"Get-Recipient"`):
				seen["read"] = rec.Status == 200
			}
			if a := rec.Request.Headers["Authorization"]; a != "" && a != httplog.Redacted {
				t.Errorf("Authorization recorded as %q", a)
			}
		}
	}
	for _, what := range []string{"login", "read", "write", "clixml"} {
		if !seen[what] {
			t.Errorf("no %s exchange recorded as expected", what)
		}
	}
}
