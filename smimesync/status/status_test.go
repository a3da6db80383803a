package status

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
	"github.com/smimesync/go-smimesync/smimesync/service"
)

func get(t *testing.T, srv *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// stat finds a number the page shows under data-k="key" in the sink's
// section.
func stat(t *testing.T, section, key string) string {
	t.Helper()
	m := regexp.MustCompile(`data-k="` + key + `"[^>]*>([^<]*)<`).FindStringSubmatch(section)
	if m == nil {
		t.Fatalf("no %s on the page", key)
	}
	return m[1]
}

// sinkSection is the part of the page about sink.
func sinkSection(t *testing.T, body, sink string) string {
	t.Helper()
	start := strings.Index(body, `<section class="card sink" data-sink="`+sink+`"`)
	if start < 0 {
		t.Fatalf("no section for sink %s", sink)
	}
	rest := body[start:]
	return rest[:strings.Index(rest, "</section>")]
}

func TestPage(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.st.Handler())
	defer srv.Close()
	resp, body := get(t, srv, "GET", "/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d %s", resp.StatusCode, body)
	}
	for h, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": contentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	ex := sinkSection(t, body, "exchange")
	for key, want := range map[string]int{"users": f.users, "with-usable": f.withUsable, "without-usable": f.withoutUsable,
		"expiring": f.expiringWithin30, "dropped": 3, "not-published": 2} {
		if got := stat(t, ex, key); got != strconv.Itoa(want) {
			t.Errorf("exchange %s = %s, want %d", key, got, want)
		}
	}
	// The last passes, newest first: the failed delta, the good delta,
	// the full pass with its failed write.
	results := regexp.MustCompile(`<tr data-result="([^"]+)"`).FindAllStringSubmatch(ex, -1)
	if len(results) != 3 || results[0][1] != "error" || results[1][1] != "ok" || results[2][1] != "error" {
		t.Errorf("exchange passes: %v", results)
	}
	if !strings.Contains(ex, "<code>pass:source-unreachable</code>") {
		t.Error("the last pass's code is not among its errors")
	}
	if !strings.Contains(ex, `<tr data-reason="expired"><td>expired</td><td class="n">2</td></tr>`) {
		t.Error("dropped by reason: no row of 2 expired values")
	}
	// The chart: 52 weeks, the crowd on it.
	if n := strings.Count(ex, `<g class="bar"`); n != Weeks {
		t.Errorf("%d bars, want %d", n, Weeks)
	}
	if !strings.Contains(ex, `<svg class="chart"`) || !strings.Contains(ex, "<desc id=") {
		t.Error("no chart with a description")
	}
	// The errors' text never shows: it names hosts and accounts.
	for _, secret := range []string{"10.1.2.3", "svc-sync", "exo.internal"} {
		if strings.Contains(body, secret) {
			t.Errorf("the page shows %q from an error's text", secret)
		}
	}
	// Directory data is escaped.
	if strings.Contains(body, "<img") || !strings.Contains(body, "&lt;img src=x onerror=") {
		t.Error("Mallory's name is not escaped")
	}
	if !strings.Contains(body, `<meta http-equiv="refresh" content="60">`) {
		t.Error("the page does not reload itself")
	}
	for _, external := range []string{"http://", "https://", "<script", "<link", "src="} {
		if strings.Contains(strings.ReplaceAll(body, "&lt;img src=x", ""), external) {
			t.Errorf("the page refers to %q: it must load nothing", external)
		}
	}
	gr := sinkSection(t, body, "graph")
	if stat(t, gr, "users") != "1" || !strings.Contains(gr, `<p data-k="no-errors">None.</p>`) {
		t.Errorf("sink graph: %s", gr)
	}
}

func TestMethods(t *testing.T) {
	f := newFixture(t)
	svc := &service.Service{Status: f.st.Handler()}
	srv := httptest.NewServer(svc.Mux())
	defer srv.Close()
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/", 200},
		{"HEAD", "/", 200},
		{"GET", "/?q=bob", 200},
		{"POST", "/", 405},
		{"PUT", "/", 405},
		{"DELETE", "/", 405},
		{"GET", "/other", 404},
		{"GET", "/?q=" + strings.Repeat("b", MaxQuery+1), 414},
	} {
		resp, body := get(t, srv, c.method, c.path)
		if resp.StatusCode != c.want {
			t.Errorf("%s %.40s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
		if c.method == "HEAD" && body != "" {
			t.Errorf("HEAD / has a body")
		}
	}
	// The handler alone refuses writes too.
	resp, _ := get(t, httptest.NewServer(f.st.Handler()), "POST", "/")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST to the handler: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestSearch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	// Bob by name, in any case: his two certificates, both dropped and
	// why, and his recipient cleared.
	p := f.st.Page(ctx, "  BOB ")
	if p.Query != "BOB" || len(p.Results) != 1 || p.More != 0 {
		t.Fatalf("search BOB: %q %d results, %d more", p.Query, len(p.Results), p.More)
	}
	b := p.Results[0]
	if b.Entry.User != bob || b.Usable || b.Status != "removed" || !b.TenantKnown || len(b.Tenant) != 0 || len(b.Values) != 2 {
		t.Errorf("Bob: %+v", b)
	}
	if v := b.Values[0]; v.Kept || v.SHA256 != fp("bob-wrong") || len(v.Reasons) != 1 || v.Reasons[0] != smimesync.ReasonNoMatchingAddress ||
		v.Subject != "CN=bob-wrong,O=Example" || v.Issuer == "" || v.NotAfter.IsZero() {
		t.Errorf("Bob's first value: %+v", v)
	}

	// Dave's recipient carries a certificate the directory dropped long
	// ago; it is read-only, in the sink's words.
	p = f.st.Page(ctx, "dave@")
	if len(p.Results) != 1 {
		t.Fatalf("dave: %d results", len(p.Results))
	}
	d := p.Results[0]
	if d.Status != "read-only" || !strings.Contains(d.Why, "Entra Connect") || len(d.Tenant) != 1 || d.Tenant[0].InDirectory ||
		d.Tenant[0].SHA256 != fp("dave-2019") || d.Values[0].Published {
		t.Errorf("Dave: %+v", d)
	}

	// Alice is in both sinks; her kept values are on her recipient.
	p = f.st.Page(ctx, "alice")
	if len(p.Results) != 2 || p.Results[0].Sink != "exchange" || p.Results[1].Sink != "graph" {
		t.Fatalf("alice: %+v", p.Results)
	}
	if a := p.Results[0]; !a.Usable || a.Status != "published" || !a.Values[0].Published || !a.Values[1].Published || a.Values[2].Published {
		t.Errorf("Alice: %+v", a)
	}
	if p.Results[1].TenantKnown {
		t.Error("Alice in graph: the state of graph has no record of her")
	}

	// By a DN substring, and by a dropped value's subject.
	if p := f.st.Page(ctx, "CN=carol@example.com,OU=People"); len(p.Results) != 1 || p.Results[0].Entry.User != carol {
		t.Errorf("by DN: %+v", p.Results)
	}
	if p := f.st.Page(ctx, "alice-old"); len(p.Results) != 1 || p.Results[0].Entry.User != alice {
		t.Errorf("by a dropped value's subject: %+v", p.Results)
	}

	// Bounded: everyone matches OU=People.
	if p := f.st.Page(ctx, "ou=people"); len(p.Results) != MaxResults || p.More != f.users+1-MaxResults {
		t.Errorf("ou=people: %d results, %d more; want %d and %d", len(p.Results), p.More, MaxResults, f.users+1-MaxResults)
	}
	if p := f.st.Page(ctx, "nobody-such"); len(p.Results) != 0 {
		t.Errorf("nobody-such: %+v", p.Results)
	}

	// Without the state, the page says so; with a state that fails,
	// it says so without the error's text.
	f.st.Published = nil
	if p := f.st.Page(ctx, "bob"); p.TenantNote == "" || p.Results[0].TenantKnown {
		t.Errorf("no state: note %q", p.TenantNote)
	}
	f.st.Published = func(context.Context, string) (map[string]smimesync.Published, error) {
		return nil, errors.New("open /secret/path/state.json: permission denied")
	}
	srv := httptest.NewServer(f.st.Handler())
	defer srv.Close()
	_, body := get(t, srv, "GET", "/?q="+url.QueryEscape("bob"))
	if strings.Contains(body, "/secret/path") || !strings.Contains(body, "could not be read from the state") {
		t.Error("a state that cannot be read: the page shows the error's text, or nothing")
	}
	if !strings.Contains(body, `<article class="user" data-user="bob@example.com"`) {
		t.Error("Bob's result is not on the page")
	}
}

// TestSearchEscapes: a search is echoed into the page, escaped.
func TestSearchEscapes(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.st.Handler())
	defer srv.Close()
	_, body := get(t, srv, "GET", "/?q="+url.QueryEscape(`"><script>alert(1)</script>`))
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Error("the search is not escaped")
	}
}

func TestRecordRing(t *testing.T) {
	store, err := report.Open(t.TempDir()+"/r.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	st := &Status{Report: store, Recent: 3}
	t0 := time.Now()
	for i := range 5 {
		rep := &smimesync.Report{Plan: smimesync.Plan{Summary: smimesync.Summary{Written: i}}}
		if err := st.Record(service.PassResult{Sink: "s", Kind: service.KindDelta, Result: service.ResultOK,
			Started: t0, Finished: t0.Add(time.Duration(i) * time.Second), Report: rep}); err != nil {
			t.Fatal(err)
		}
	}
	// A pass abandoned while planning: neither kept nor recorded.
	if err := st.Record(service.PassResult{Sink: "s", Result: service.ResultCancelled, Abandoned: true,
		Err: context.Canceled, Finished: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ps := st.Passes("s")
	if len(ps) != 3 || ps[0].Summary.Written != 4 || ps[2].Summary.Written != 2 {
		t.Errorf("passes: %+v", ps)
	}
	if sum, err := store.Summarize("", t0, 30); err != nil || sum.Sinks[0].LastPass.Summary.Written != 4 {
		t.Errorf("the report's last pass: %+v, %v", sum, err)
	}
}

func TestWriteFile(t *testing.T) {
	f := newFixture(t)
	var b bytes.Buffer
	err := WriteFile(context.Background(), &b, f.st.Report, FileOptions{ReportFile: "state.report.json", Now: f.now,
		Query: "bob", Published: f.st.Published})
	if err != nil {
		t.Fatal(err)
	}
	body := b.String()
	if strings.Contains(body, `http-equiv="refresh"`) || strings.Contains(body, "<form") {
		t.Error("the file reloads itself or has a search form")
	}
	ex := sinkSection(t, body, "exchange")
	if stat(t, ex, "users") != strconv.Itoa(f.users) || stat(t, ex, "without-usable") != "2" || strings.Count(ex, `<g class="bar"`) != Weeks {
		t.Error("the file's numbers or chart")
	}
	// Its last pass comes from the report: failed, without the text.
	if !strings.Contains(ex, `<tr data-result="error">`) || !strings.Contains(ex, "<code>pass:error</code>") || strings.Contains(body, "10.1.2.3") {
		t.Error("the file's last pass")
	}
	if !strings.Contains(body, `<article class="user" data-user="bob@example.com"`) {
		t.Error("the file lacks the search for Bob")
	}
	if err := WriteFile(context.Background(), io.Discard, f.st.Report, FileOptions{Query: strings.Repeat("x", MaxQuery+1)}); !errors.Is(err, ErrQueryTooLong) {
		t.Errorf("a long query: %v", err)
	}
}
