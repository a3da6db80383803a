package ldapsource

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// fakeResult is one answer of a fake search.
type fakeResult struct {
	entry    *ldap.Entry
	referral string
	controls []ldap.Control
}

// fakeConn is a hand-written stand-in for *ldap.Conn: serve answers each
// search; nil results with hang=true block until the context ends.
type fakeConn struct {
	mu       sync.Mutex
	serve    func(req *ldap.SearchRequest) ([]fakeResult, error)
	closing  bool
	modifies []*ldap.ModifyRequest
	modErr   error
	searches []*ldap.SearchRequest
}

func (c *fakeConn) SearchAsync(ctx context.Context, req *ldap.SearchRequest, _ int) ldap.Response {
	c.mu.Lock()
	c.searches = append(c.searches, req)
	c.mu.Unlock()
	res, err := c.serve(req)
	return &fakeResponse{ctx: ctx, results: res, err: err, conn: c}
}

func (c *fakeConn) Modify(req *ldap.ModifyRequest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.modifies = append(c.modifies, req)
	return c.modErr
}

func (c *fakeConn) Close() error        { return nil }
func (c *fakeConn) IsClosing() bool     { c.mu.Lock(); defer c.mu.Unlock(); return c.closing }
func (c *fakeConn) GetLastError() error { return nil }

// errHang makes a fake search wait for its context (a server that stopped
// answering).
var errHang = errors.New("hang")

// errVanish makes a fake search end early without an error, as go-ldap
// does when the connection is lost, and marks the connection closing.
var errVanish = errors.New("vanish")

type fakeResponse struct {
	ctx     context.Context
	results []fakeResult
	err     error
	conn    *fakeConn
	cur     fakeResult
	done    bool
	failed  error
}

func (r *fakeResponse) Entry() *ldap.Entry       { return r.cur.entry }
func (r *fakeResponse) Referral() string         { return r.cur.referral }
func (r *fakeResponse) Controls() []ldap.Control { return r.cur.controls }
func (r *fakeResponse) Err() error               { return r.failed }

func (r *fakeResponse) Next() bool {
	if r.done {
		return false
	}
	if len(r.results) > 0 {
		r.cur, r.results = r.results[0], r.results[1:]
		return true
	}
	r.done = true
	switch r.err {
	case nil:
	case errHang:
		<-r.ctx.Done()
	case errVanish:
		r.conn.mu.Lock()
		r.conn.closing = true
		r.conn.mu.Unlock()
	default:
		r.failed = r.err
	}
	return false
}

// entry builds an entry with string or byte values.
func entry(dn string, attrs map[string][][]byte) *ldap.Entry {
	e := &ldap.Entry{DN: dn}
	for name, vs := range attrs {
		a := &ldap.EntryAttribute{Name: name, ByteValues: vs}
		for _, v := range vs {
			a.Values = append(a.Values, string(v))
		}
		e.Attributes = append(e.Attributes, a)
	}
	return e
}

func vals(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, v := range s {
		out[i] = []byte(v)
	}
	return out
}

// adRootDSE answers a root DSE search like an AD DC.
func adRootDSE(req *ldap.SearchRequest) ([]fakeResult, bool) {
	if req.BaseDN != "" || req.Scope != ldap.ScopeBaseObject {
		return nil, false
	}
	return []fakeResult{{entry: entry("", map[string][][]byte{
		"defaultNamingContext":  vals("DC=example,DC=com"),
		"namingContexts":        vals("DC=example,DC=com"),
		"supportedCapabilities": vals("1.2.840.113556.1.4.800"),
		"supportedControl":      vals(ldap.ControlTypePaging, ldap.ControlTypeDirSync),
		"dsServiceName":         vals("CN=NTDS Settings,CN=DC1,CN=Servers,CN=Site,CN=Sites,CN=Configuration,DC=example,DC=com"),
		"highestCommittedUSN":   vals("4242"),
	})}}, true
}

// pagedDone is the SearchResultDone of a paged search.
func pagedDone(cookie string) fakeResult {
	c := ldap.NewControlPaging(0)
	c.SetCookie([]byte(cookie))
	return fakeResult{controls: []ldap.Control{c}}
}

func newFakeSource(t *testing.T, cfg Config, fc *fakeConn) (*Source, *bytes.Buffer) {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = "ldaps://dc1.example.com"
	}
	if cfg.Bind.User == "" && cfg.Bind.Method == "" {
		cfg.Bind = Bind{User: "svc@example.com", Password: "pw"}
	}
	if cfg.ReadConnections == 0 {
		// The fakes answer every search with their entries whatever
		// its filter: one paged search per base DN (parallel_test.go
		// serves uSNCreated ranges).
		cfg.ReadConnections = 1
	}
	var buf bytes.Buffer
	s, err := New(cfg, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	s.dial = func(context.Context, string) (conn, error) { return fc, nil }
	return s, &buf
}
