package status

import (
	"context"
	"image/png"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/internal/browsertest"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

// The screenshots' window, and where SMIMESYNC_UPDATE_SCREENSHOTS=1
// saves them (otherwise they go to a temporary folder and are checked
// only to be pictures of that size).
const (
	shotW, shotH = 1280, 1600
	updateEnv    = "SMIMESYNC_UPDATE_SCREENSHOTS"
)

func shotPath(t *testing.T, name string) string {
	if os.Getenv(updateEnv) == "1" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		p, err := filepath.Abs(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return filepath.Join(t.TempDir(), name)
}

// checkPNG checks that file is a PNG of the window's size.
func checkPNG(t *testing.T, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil || cfg.Width != shotW || cfg.Height != shotH {
		t.Errorf("screenshot %s: %dx%d, %v; want a %dx%d PNG", file, cfg.Width, cfg.Height, err, shotW, shotH)
	}
}

// checkDOM asserts on the DOM Chromium built for the fixture's page.
func checkDOM(t *testing.T, f *fixture, dom string) {
	t.Helper()
	// The page's title is its own: Mallory's markup did not run (its
	// onerror would have renamed the page).
	if !regexp.MustCompile(`<title>smimesync (status|report)</title>`).MatchString(dom) || strings.Contains(dom, "pwned</title>") {
		t.Error("the page's title changed: directory data ran as markup")
	}
	ex := sinkSection(t, dom, "exchange")
	for key, want := range map[string]int{"users": f.users, "with-usable": f.withUsable, "without-usable": f.withoutUsable,
		"expiring": f.expiringWithin30} {
		if got := stat(t, ex, key); got != strconv.Itoa(want) {
			t.Errorf("rendered exchange %s = %s, want %d", key, got, want)
		}
	}
	// A user's row: Alice's certificate expires within 30 days.
	if !regexp.MustCompile(`<tr data-user="alice@example.com"><td>alice@example.com</td><td>alice@example.com</td><td class="d">\d{4}-\d\d-\d\d</td><td class="n">(9|10)</td>`).MatchString(ex) {
		t.Error("no row for Alice among the certificates that expire soon")
	}
	// The chart: an <svg> of 52 bars whose counts add up to the users
	// whose last certificate expires within the year.
	if !strings.Contains(ex, `<svg class="chart"`) {
		t.Fatal("no chart <svg> in the rendered page")
	}
	total := 0
	bars := regexp.MustCompile(`<g class="bar" data-week="\d+" data-count="(\d+)">`).FindAllStringSubmatch(ex, -1)
	for _, b := range bars {
		n, _ := strconv.Atoi(b[1])
		total += n
	}
	want := f.withUsable // every kept certificate of the fixture expires within the year
	if len(bars) != Weeks || total != want {
		t.Errorf("chart: %d bars adding up to %d, want %d adding up to %d", len(bars), total, Weeks, want)
	}
}

// TestBrowserStatusPage serves the page on loopback and loads it in
// headless Chromium: the overview, then the search for Bob.
func TestBrowserStatusPage(t *testing.T) {
	bin := browsertest.Find(t)
	f := newFixture(t)
	svc := &service.Service{Status: f.st.Handler()}
	srv := httptest.NewServer(svc.Mux())
	defer srv.Close()

	dom := browsertest.DumpDOM(t, bin, srv.URL+"/")
	checkDOM(t, f, dom)
	if !strings.Contains(dom, `<input type="search" name="q"`) {
		t.Error("no search box")
	}

	dom = browsertest.DumpDOM(t, bin, srv.URL+"/?q="+url.QueryEscape("bob"))
	i := strings.Index(dom, `<article class="user" data-user="bob@example.com" data-sink="exchange">`)
	if i < 0 {
		t.Fatal("the search for bob shows no Bob")
	}
	bobs := dom[i:]
	bobs = bobs[:strings.Index(bobs, "</article>")]
	for _, want := range []string{
		`<tr class="dropped" data-sha256="` + fp("bob-wrong").String() + `">`,
		`<span class="reason">no-matching-address</span>`,
		`<span class="reason">expired</span>`,
		"CN=bob-wrong,O=Example",
		`<td data-k="publish-status">removed: `,
		"No certificate: smimesync last cleared the recipient's certificates.",
	} {
		if !strings.Contains(bobs, want) {
			t.Errorf("Bob's result lacks %q", want)
		}
	}

	for _, s := range []struct{ path, file string }{{"/", "status.png"}, {"/?q=bob", "search.png"}} {
		file := shotPath(t, s.file)
		browsertest.Screenshot(t, bin, srv.URL+s.path, file, shotW, shotH)
		checkPNG(t, file)
	}
}

// TestBrowserReportFile writes the report as one HTML file and loads it
// from file:// in headless Chromium.
func TestBrowserReportFile(t *testing.T) {
	bin := browsertest.Find(t)
	f := newFixture(t)
	file := filepath.Join(t.TempDir(), "report.html")
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	err = WriteFile(context.Background(), out, f.st.Report, FileOptions{ReportFile: "state.report.json", Now: f.now})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	u := (&url.URL{Scheme: "file", Path: file}).String()
	dom := browsertest.DumpDOM(t, bin, u)
	checkDOM(t, f, dom)
	if strings.Contains(dom, "<form") {
		t.Error("the file has a search form it cannot serve")
	}
	shot := shotPath(t, "report.png")
	browsertest.Screenshot(t, bin, u, shot, shotW, shotH)
	checkPNG(t, shot)
}
