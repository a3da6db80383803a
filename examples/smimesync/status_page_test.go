package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/internal/browsertest"
)

// article is the search result for user in a page, "" when there is none.
func article(page, user string) string {
	i := strings.Index(page, `<article class="user" data-user="`+user+`"`)
	if i < 0 {
		return ""
	}
	rest := page[i:]
	return rest[:strings.Index(rest, "</article>")]
}

// TestReportHTML: `smimesync report --html FILE` writes the status page's
// view of the report as one file (mode 0600), with a search when asked,
// which shows what the state says was published; Chromium renders it from
// file://.
func TestReportHTML(t *testing.T) {
	useCorpusClock(t)
	cfg := writeConfig(t, basicConfig+"log: {level: error}\n")
	if code, _, stderr := runCLI(t, "run", "--once", "--config", cfg); code != exitOK {
		t.Fatalf("run --once: exit %d: %s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "report.html")
	if code, stdout, stderr := runCLI(t, "report", "--config", cfg, "--html", out, "--search", "smime.example"); code != exitOK || stdout != "" {
		t.Fatalf("report --html: exit %d: %s%s", code, stdout, stderr)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the HTML report's mode is %v, want 0600 (it names people)", fi.Mode().Perm())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{`<section class="card sink" data-sink="file"`, `data-k="users">2<`, `data-k="without-usable" class="warn">1<`,
		`<svg class="chart"`, `<span class="reason">no-matching-address</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the HTML report lacks %q", want)
		}
	}
	// Alice was published: the state's record of her recipient is on
	// the page, her kept values marked as on it.
	alice := article(page, "alice@smime.example")
	if !strings.Contains(alice, `<table class="tenant">`) || !strings.Contains(alice, `<tr class="kept"`) || !strings.Contains(alice, `<td>yes</td>`) {
		t.Errorf("Alice's result: %s", alice)
	}
	if bob := article(page, "bob@smime.example"); !strings.Contains(bob, "no usable certificate") {
		t.Errorf("Bob's result: %s", bob)
	}

	for name, args := range map[string][]string{
		"html+json":       {"report", "--config", cfg, "--html", out, "--json"},
		"html+csv":        {"report", "--config", cfg, "--html", out, "--csv"},
		"search w/o html": {"report", "--config", cfg, "--search", "bob"},
	} {
		if code, _, stderr := runCLI(t, args...); code != exitUsage {
			t.Errorf("%s: exit %d, want %d (%s)", name, code, exitUsage, stderr)
		}
	}

	bin := browsertest.Find(t)
	dom := browsertest.DumpDOM(t, bin, (&url.URL{Scheme: "file", Path: out}).String())
	if !strings.Contains(dom, `data-k="users">2<`) || !strings.Contains(dom, `<svg class="chart"`) || article(dom, "alice@smime.example") == "" {
		t.Errorf("Chromium's DOM of the HTML report lacks the numbers, the chart or Alice")
	}
}

// TestRunStatusPage: `smimesync run` serves the status page on its
// listener, read-only, with the search; Chromium renders it.
func TestRunStatusPage(t *testing.T) {
	cfg := writeConfig(t, serviceConfig)
	sr := startService(t, cfg)
	waitFor(t, "/healthz to report the good pass", func() bool {
		code, doc := getHealth(t, sr.addr)
		return code == http.StatusOK && doc.Status == "ok"
	})
	fetch := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+sr.addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, page := fetch("GET", "/")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d", code)
	}
	for _, want := range []string{`id="health" data-status="ok"`, `<section class="card sink" data-sink="file"`, `data-k="users">2<`,
		`<tr data-result="ok">`, `<svg class="chart"`, `<meta http-equiv="refresh" content="60">`} {
		if !strings.Contains(page, want) {
			t.Errorf("the status page lacks %q", want)
		}
	}
	_, page = fetch("GET", "/?q=alice")
	if a := article(page, "alice@smime.example"); !strings.Contains(a, `<table class="tenant">`) {
		t.Errorf("the search for alice: %s", a)
	}
	if code, _ := fetch("POST", "/"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", code)
	}

	bin := browsertest.Find(t)
	dom := browsertest.DumpDOM(t, bin, "http://"+sr.addr+"/?q=bob")
	if !strings.Contains(dom, `data-k="users">2<`) || !strings.Contains(dom, `<svg class="chart"`) || article(dom, "bob@smime.example") == "" {
		t.Errorf("Chromium's DOM of the status page lacks the numbers, the chart or Bob")
	}
}
