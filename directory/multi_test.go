package directory_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"testing"

	"github.com/smimesync/go-smimesync/directory"
)

// deltaSource is a hand-written fake with a delta mechanism: it answers
// each cookie it knows with its scripted result.
type deltaSource struct {
	entries []*directory.Entry
	answers map[string]directory.Result // by the cookie asked with ("" for nil)
	err     error
	asked   []string
	pruned  []string
}

func (d *deltaSource) Read(_ context.Context, p directory.Pass, yield func(*directory.Entry) error) (directory.Result, error) {
	d.asked = append(d.asked, string(p.Cookie))
	for _, e := range d.entries {
		c := *e
		if err := yield(&c); err != nil {
			return directory.Result{}, err
		}
	}
	if d.err != nil {
		return directory.Result{}, d.err
	}
	res, ok := d.answers[string(p.Cookie)]
	if !ok {
		return directory.Result{}, fmt.Errorf("deltaSource: unexpected cookie %q", p.Cookie)
	}
	return res, nil
}

func (d *deltaSource) Prune(_ context.Context, e *directory.Entry, attr string, values [][]byte) error {
	d.pruned = append(d.pruned, fmt.Sprintf("%s %s %d", e.ID, attr, len(values)))
	return nil
}

func collect(t *testing.T, m *directory.Multi, cookie []byte) ([]*directory.Entry, directory.Result, error) {
	t.Helper()
	var got []*directory.Entry
	res, err := m.Read(context.Background(), directory.Pass{Cookie: cookie}, func(e *directory.Entry) error {
		got = append(got, e)
		return nil
	})
	return got, res, err
}

func TestMultiLDIF(t *testing.T) {
	m := &directory.Multi{Sources: []directory.Named{
		{Name: "corp", Source: directory.LDIFFile{Path: "testdata/ad-ldifde.ldif"}},
		{Name: "lab", Source: directory.LDIFFile{Path: "testdata/openldap-slapcat-crlf.ldif"}},
	}}
	got, res, err := collect(t, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || !res.Full {
		t.Fatalf("%d entries, Full %v; want 5, true", len(got), res.Full)
	}
	for i, e := range got {
		want := "corp"
		if i >= 3 {
			want = "lab"
		}
		if e.Source != want {
			t.Errorf("entry %d (%s): Source %q, want %q", i, e.DN, e.Source, want)
		}
	}
	// LDIF has no deltas: every pass stays full.
	_, res2, err := collect(t, m, res.Cookie)
	if err != nil || !res2.Full {
		t.Fatalf("second pass: Full %v, err %v", res2.Full, err)
	}
}

func TestMultiCookies(t *testing.T) {
	a := &deltaSource{
		entries: []*directory.Entry{{ID: "a1"}},
		answers: map[string]directory.Result{"": {Cookie: []byte("A1"), Full: true}, "A1": {Cookie: []byte("A2")}},
	}
	b := &deltaSource{
		entries: []*directory.Entry{{ID: "b1", Source: "ignored"}},
		answers: map[string]directory.Result{"": {Cookie: []byte("B1"), Full: true}, "B1": {Cookie: []byte("B2")}},
	}
	m := &directory.Multi{Sources: []directory.Named{{Name: "a", Source: a}, {Name: "b", Source: b}}}
	got, res, err := collect(t, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Full || got[0].Source != "a" || got[1].Source != "b" {
		t.Fatalf("Full %v, sources %q %q", res.Full, got[0].Source, got[1].Source)
	}
	_, res2, err := collect(t, m, res.Cookie)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Full {
		t.Error("delta pass reported Full")
	}
	if fmt.Sprint(a.asked, b.asked) != "[ A1] [ B1]" {
		t.Errorf("sources were asked with %q and %q", a.asked, b.asked)
	}
	var c struct {
		V       int
		Kind    string
		Sources map[string][]byte
	}
	if err := json.Unmarshal(res2.Cookie, &c); err != nil || c.V != 1 || c.Kind != "multi" ||
		string(c.Sources["a"]) != "A2" || string(c.Sources["b"]) != "B2" {
		t.Errorf("cookie %s: %+v %v", res2.Cookie, c, err)
	}

	// Unusable cookies: every source reads in full.
	for _, bad := range []string{`garbage`, `{"v":2,"kind":"multi","sources":{"a":"QTE=","b":"QjE="}}`,
		`{"v":1,"kind":"multi","sources":{"a":"QTE="}}`, `{"v":1,"kind":"multi","sources":{"a":"QTE=","c":"QjE="}}`,
		`{"v":1,"kind":"multi","sources":{"a":"QTE=","b":null}}`} {
		a.asked, b.asked = nil, nil
		_, res, err := collect(t, m, []byte(bad))
		if err != nil || !res.Full || fmt.Sprint(a.asked, b.asked) != "[] []" {
			t.Errorf("cookie %s: Full %v, err %v, asked %q %q", bad, res.Full, err, a.asked, b.asked)
		}
	}
}

func TestMultiFailures(t *testing.T) {
	boom := errors.New("boom")
	ok := &deltaSource{answers: map[string]directory.Result{"": {Cookie: []byte("X"), Full: true}, "X": {Cookie: []byte("X2")}}}
	failing := &deltaSource{err: boom}
	m := &directory.Multi{Sources: []directory.Named{{Name: "ok", Source: ok}, {Name: "bad", Source: failing}}}
	_, res, err := collect(t, m, nil)
	var se *directory.SourceError
	if !errors.As(err, &se) || se.Source != "bad" || !errors.Is(err, boom) {
		t.Errorf("error %v: want a SourceError for bad wrapping boom", err)
	}
	if res.Cookie != nil {
		t.Error("a failed pass returned a cookie")
	}

	// One source falls back to a full pass while the other reads a delta.
	stale := &deltaSource{answers: map[string]directory.Result{"": {Cookie: []byte("S1"), Full: true}, "S1": {Cookie: []byte("S9"), Full: true}}}
	m = &directory.Multi{Sources: []directory.Named{{Name: "ok", Source: ok}, {Name: "stale", Source: stale}}}
	_, res, err = collect(t, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, res, err = collect(t, m, res.Cookie)
	if !errors.Is(err, directory.ErrStaleCookie) || res.Cookie != nil {
		t.Errorf("mixed full and delta: err %v, cookie %q; want ErrStaleCookie and no cookie", err, res.Cookie)
	}

	for _, srcs := range [][]directory.Named{nil, {{Name: "", Source: ok}}, {{Name: "x", Source: ok}, {Name: "x", Source: ok}}, {{Name: "x"}}} {
		m := &directory.Multi{Sources: srcs}
		if _, _, err := collect(t, m, nil); !errors.Is(err, directory.ErrMultiConfig) {
			t.Errorf("sources %v: err %v, want ErrMultiConfig", srcs, err)
		}
	}
}

func TestMultiPrune(t *testing.T) {
	d := &deltaSource{}
	m := &directory.Multi{Sources: []directory.Named{
		{Name: "ad", Source: d},
		{Name: "file", Source: directory.LDIFFile{Path: "testdata/plain.ldif"}},
	}}
	ctx := context.Background()
	if err := m.Prune(ctx, &directory.Entry{ID: "x", Source: "ad"}, "userCertificate", [][]byte{{1}}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d.pruned) != "[x userCertificate 1]" {
		t.Errorf("pruned %q", d.pruned)
	}
	if err := m.Prune(ctx, &directory.Entry{ID: "y", Source: "file"}, "userCertificate", nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("LDIF prune: %v, want ErrUnsupported", err)
	}
	if err := m.Prune(ctx, &directory.Entry{ID: "z", Source: "nowhere"}, "userCertificate", nil); !errors.Is(err, directory.ErrMultiConfig) {
		t.Errorf("unknown source: %v, want ErrMultiConfig", err)
	}
}

func ExampleMulti() {
	m := &directory.Multi{Sources: []directory.Named{
		{Name: "corp", Source: directory.LDIFFile{Path: "testdata/ad-ldifde.ldif"}},
		{Name: "lab", Source: directory.LDIFFile{Path: "testdata/openldap-slapcat-crlf.ldif"}},
	}}
	res, err := m.Read(context.Background(), directory.Pass{}, func(e *directory.Entry) error {
		fmt.Println(e.Source, e.ID, e.Deleted)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("full:", res.Full)
	// Output:
	// corp 3f2504e0-4f89-11d3-9a0c-0305e82c3301 false
	// corp 04030201-0605-0807-090a-0b0c0d0e0f10 false
	// corp 6b1c4e2a-5d3f-4a7b-9c8d-0e1f2a3b4c5d true
	// lab 8a3b6c1e-2f4d-4e5a-9b6c-7d8e9f0a1b2c false
	// lab 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 false
	// full: true
}
