package ldapsource

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
)

var (
	staffOU   = "OU=Staff,DC=example,DC=com"
	staffGUID = []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00}
)

// adDeltaServe answers like an AD DC for the searches every dirsync or usn
// pass makes (root DSE, invocationId, the DirSync mark) and hands the
// others to more.
func adDeltaServe(more func(req *ldap.SearchRequest) ([]fakeResult, error)) func(*ldap.SearchRequest) ([]fakeResult, error) {
	return func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		if strings.HasPrefix(req.BaseDN, "CN=NTDS Settings") {
			return []fakeResult{{entry: entry(req.BaseDN, map[string][][]byte{"invocationId": {make([]byte, 16)}})}}, nil
		}
		if req.Filter == noMatch {
			return []fakeResult{{controls: []ldap.Control{&ldap.ControlDirSync{Cookie: []byte("fresh")}}}}, nil
		}
		return more(req)
	}
}

func hasControl(req *ldap.SearchRequest, oid string) bool {
	return ldap.FindControl(req.Controls, oid) != nil
}

// deltaCookies runs a full pass on s and returns its dirsync cookie and a
// usn cookie of the same scope (from USN 100, tombstones visible).
func deltaCookies(t *testing.T, s *Source) (dirsync, usn []byte) {
	t.Helper()
	res, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeCookie(res.Cookie)
	if err != nil || c.Kind != DeltaDirSync {
		t.Fatalf("cookie %s: %v", res.Cookie, err)
	}
	u := *c
	u.Kind, u.DirSync, u.USN, u.Tombstones = DeltaUSN, nil, 100, true
	b, err := u.encode()
	if err != nil {
		t.Fatal(err)
	}
	return res.Cookie, b
}

func readPass(t *testing.T, s *Source, cookie []byte) ([]*directory.Entry, directory.Result, error) {
	t.Helper()
	var got []*directory.Entry
	res, err := s.Read(context.Background(), directory.Pass{Cookie: cookie}, func(e *directory.Entry) error {
		got = append(got, e)
		return nil
	})
	return got, res, err
}

// TestDeletedUnderDeletedOU: a user deleted with its OU has the OU's
// tombstone as lastKnownParent; its deletion is still reported, by
// DirSync and by uSNChanged deltas.
func TestDeletedUnderDeletedOU(t *testing.T) {
	tombDN := "CN=u\\0ADEL:44332211-6655-8877-99aa-bbccddeeff00,CN=Deleted Objects,DC=example,DC=com"
	tomb := entry(tombDN, map[string][][]byte{
		"objectGUID":      {staffGUID},
		"isDeleted":       vals("TRUE"),
		"lastKnownParent": vals("OU=Staff\\0ADEL:0b1e2f3a-0000-0000-0000-000000000001,CN=Deleted Objects,DC=example,DC=com"),
	})
	fc := &fakeConn{}
	fc.serve = adDeltaServe(func(req *ldap.SearchRequest) ([]fakeResult, error) {
		switch {
		case hasControl(req, ldap.ControlTypeDirSync):
			return []fakeResult{{entry: tomb}, {controls: []ldap.Control{&ldap.ControlDirSync{Cookie: []byte("next")}}}}, nil
		case strings.HasPrefix(req.BaseDN, "<WKGUID="+deletedObjectsWKGUID):
			return []fakeResult{{entry: tomb}, pagedDone("")}, nil
		}
		return []fakeResult{pagedDone("")}, nil
	})
	s, _ := newFakeSource(t, Config{BaseDN: StringList{staffOU}}, fc)
	dirsync, usn := deltaCookies(t, s)
	for name, c := range map[string][]byte{"dirsync": dirsync, "usn": usn} {
		t.Run(name, func(t *testing.T) {
			got, res, err := readPass(t, s, c)
			if err != nil || res.Full {
				t.Fatalf("Full %v, err %v", res.Full, err)
			}
			if len(got) != 1 || !got[0].Deleted || got[0].ID != "44332211-6655-8877-99aa-bbccddeeff00" {
				t.Fatalf("delta %+v, want the tombstone as deleted", got)
			}
		})
	}
}

// TestUSNDeletionsPaged: the deleted-objects search of a usn delta is paged
// and shows deleted objects on every page; when the server still refuses
// it, the pass falls back to a full pass instead of failing.
func TestUSNDeletionsPaged(t *testing.T) {
	tomb := func(i byte) *ldap.Entry {
		g := append([]byte(nil), staffGUID...)
		g[15] = i
		return entry("CN=x\\0ADEL:…,CN=Deleted Objects,DC=example,DC=com", map[string][][]byte{"objectGUID": {g}, "isDeleted": vals("TRUE")})
	}
	var refuse bool
	var pages []*ldap.SearchRequest
	fullReads := 0
	fc := &fakeConn{}
	fc.serve = adDeltaServe(func(req *ldap.SearchRequest) ([]fakeResult, error) {
		switch {
		case strings.HasPrefix(req.BaseDN, "<WKGUID="+deletedObjectsWKGUID):
			if refuse {
				return nil, ldap.NewError(ldap.LDAPResultSizeLimitExceeded, errors.New("size limit exceeded"))
			}
			pages = append(pages, req)
			pc, _ := ldap.FindControl(req.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
			if pc == nil {
				return nil, ldap.NewError(ldap.LDAPResultSizeLimitExceeded, errors.New("size limit exceeded"))
			}
			if len(pc.Cookie) == 0 {
				return []fakeResult{{entry: tomb(1)}, {entry: tomb(2)}, pagedDone("p2")}, nil
			}
			return []fakeResult{{entry: tomb(3)}, pagedDone("")}, nil
		case strings.Contains(req.Filter, "uSNChanged"):
			return []fakeResult{pagedDone("")}, nil
		}
		fullReads++
		return []fakeResult{pagedDone("")}, nil
	})
	s, logs := newFakeSource(t, Config{BaseDN: StringList{staffOU}}, fc)
	_, usn := deltaCookies(t, s)
	got, res, err := readPass(t, s, usn)
	if err != nil || res.Full {
		t.Fatalf("Full %v, err %v", res.Full, err)
	}
	if len(got) != 3 {
		t.Errorf("%d deletions, want 3 (over two pages)", len(got))
	}
	if len(pages) != 2 {
		t.Fatalf("%d pages of deleted objects, want 2", len(pages))
	}
	for _, p := range pages {
		if !hasControl(p, ldap.ControlTypeMicrosoftShowDeleted) || p.Scope != ldap.ScopeSingleLevel {
			t.Errorf("deleted-objects page without the show-deleted control or one-level scope: %+v", p)
		}
	}

	refuse, fullReads = true, 0
	_, res, err = readPass(t, s, usn)
	if err != nil || !res.Full || fullReads == 0 {
		t.Fatalf("refused deleted-objects search: Full %v, err %v, %d full reads", res.Full, err, fullReads)
	}
	if !strings.Contains(logs.String(), "refused the search for deleted objects") {
		t.Error("the fallback's reason is not logged")
	}
}

// oneSearchConn is a fake connection that, like go-ldap (one dispatcher
// per connection), cannot start a search while another one streams on it:
// it fails the nested search instead of deadlocking.
type oneSearchConn struct {
	*fakeConn
	mu     sync.Mutex
	active int
	nested *bool
}

type releasingResponse struct {
	ldap.Response
	release func()
}

func (r *releasingResponse) Next() bool {
	ok := r.Response.Next()
	if !ok {
		r.release()
	}
	return ok
}

func (c *oneSearchConn) SearchAsync(ctx context.Context, req *ldap.SearchRequest, n int) ldap.Response {
	c.mu.Lock()
	if c.active > 0 {
		*c.nested = true
		c.mu.Unlock()
		return &fakeResponse{ctx: ctx, err: errors.New("nested search on one connection (go-ldap deadlocks)"), conn: c.fakeConn}
	}
	c.active++
	c.mu.Unlock()
	var once sync.Once
	release := func() { once.Do(func() { c.mu.Lock(); c.active--; c.mu.Unlock() }) }
	context.AfterFunc(ctx, release)
	return &releasingResponse{Response: c.fakeConn.SearchAsync(ctx, req, n), release: release}
}

// TestResolverRangesAfterSearch: a changed entry with a sliced value list
// is completed after the resolver's search on the auxiliary connection
// ended, not from inside it.
func TestResolverRangesAfterSearch(t *testing.T) {
	dn := "CN=u,OU=Staff,DC=example,DC=com"
	fc := &fakeConn{}
	fc.serve = adDeltaServe(func(req *ldap.SearchRequest) ([]fakeResult, error) {
		switch {
		case hasControl(req, ldap.ControlTypeDirSync):
			return []fakeResult{{entry: entry(dn, map[string][][]byte{"objectGUID": {staffGUID}, "mail": vals("u@example.com")})},
				{controls: []ldap.Control{&ldap.ControlDirSync{Cookie: []byte("next")}}}}, nil
		case req.Scope == ldap.ScopeBaseObject && req.BaseDN == dn:
			return []fakeResult{{entry: entry(dn, map[string][][]byte{"userCertificate;range=2-*": vals("c2")})}}, nil
		case strings.Contains(req.Filter, "objectGUID="):
			return []fakeResult{{entry: entry(dn, map[string][][]byte{
				"objectGUID":                   {staffGUID},
				"mail":                         vals("u@example.com"),
				"userCertificate;range=0-1":    vals("c0", "c1"),
				"userSMIMECertificate;binary":  vals("blob"),
				"userPrincipalName;x-ignored;": vals("u@example.com"),
			})}, pagedDone("")}, nil
		}
		return []fakeResult{pagedDone("")}, nil
	})
	s, _ := newFakeSource(t, Config{BaseDN: StringList{staffOU}, Timeout: 2 * time.Second}, fc)
	dirsync, _ := deltaCookies(t, s)
	nested := false
	s.dial = func(context.Context, string) (conn, error) { return &oneSearchConn{fakeConn: fc, nested: &nested}, nil }
	got, _, err := readPass(t, s, dirsync)
	if err != nil || nested {
		t.Fatalf("err %v, nested search %v", err, nested)
	}
	if len(got) != 1 || got[0].Deleted || len(got[0].UserCertificate) != 3 || string(got[0].UserCertificate[2]) != "c2" {
		t.Fatalf("delta %+v, want the entry with its 3 certificates", got)
	}
}

func TestFormatID(t *testing.T) {
	s, _ := newFakeSource(t, Config{IDAttribute: "mS-DS-ConsistencyGuid"}, &fakeConn{})
	ps := &pass{s: s, plan: &plan{idAttr: "mS-DS-ConsistencyGuid"}}
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{[]byte("E1234"), "E1234"},
		{[]byte("Jürgen-16-bytes!"), "Jürgen-16-bytes!"},
		{[]byte("1234567890123456"), "1234567890123456"}, // 16 bytes of text stay text
		{staffGUID, "44332211-6655-8877-99aa-bbccddeeff00"},
		{[]byte{0x30, 0x00, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e}, "42410030-4443-4645-4748-494a4b4c4d4e"},
		{[]byte{0xff, 0xfe, 0x01}, "fffe01"},
		{[]byte("tab\there"), "7461620968657265"},
	} {
		if got := ps.formatID("CN=x", tc.in); got != tc.want {
			t.Errorf("formatID(%x) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// hangConn is a fake whose Modify blocks until the connection is closed.
type hangConn struct {
	*fakeConn
	once   sync.Once
	closed chan struct{}
}

func (c *hangConn) Modify(*ldap.ModifyRequest) error {
	<-c.closed
	return ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection closed"))
}

func (c *hangConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// TestPruneBounded: a Modify the server never answers ends at
// Config.Timeout or when the context ends, and the next Prune redials.
func TestPruneBounded(t *testing.T) {
	fc := &fakeConn{}
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		return nil, nil
	}
	no := false
	e := &directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "CN=A,DC=example,DC=com"}
	dials := 0
	for name, tc := range map[string]struct {
		timeout time.Duration
		cancel  bool
		want    error
	}{
		"timeout": {timeout: 50 * time.Millisecond, want: ErrTimeout},
		"context": {timeout: time.Hour, cancel: true, want: context.Canceled},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := newFakeSource(t, Config{Timeout: tc.timeout, Prune: PruneConfig{BackupDir: t.TempDir(), DryRun: &no}}, fc)
			s.dial = func(context.Context, string) (conn, error) {
				dials++
				return &hangConn{fakeConn: fc, closed: make(chan struct{})}, nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			done := make(chan error, 1)
			go func() { done <- s.Prune(ctx, e, "userCertificate", vals("v1")) }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Errorf("err %v, want %v", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Prune still waits for a server that does not answer")
			}
			before := dials
			s.cfg.Timeout = 10 * time.Millisecond
			go func() { done <- s.Prune(context.Background(), e, "userCertificate", vals("v1")) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("second Prune hangs")
			}
			if dials != before+1 {
				t.Errorf("%d dials for the second Prune, want 1: the closed connection was reused", dials-before)
			}
		})
	}
}

// TestPruneBackupDurable: the backup directory is synced before the
// values are removed; a custom binary ID attribute does not address the
// entry by GUID.
func TestPruneBackupDurable(t *testing.T) {
	fc := &fakeConn{}
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		return nil, nil
	}
	dir := t.TempDir()
	var synced []string
	orig := syncDir
	syncDir = func(d string) error {
		if len(fc.modifies) != 0 {
			t.Error("directory synced after the modify")
		}
		synced = append(synced, d)
		return orig(d)
	}
	defer func() { syncDir = orig }()
	no := false
	s, _ := newFakeSource(t, Config{IDAttribute: "mS-DS-ConsistencyGuid", Prune: PruneConfig{BackupDir: dir, DryRun: &no}}, fc)
	e := &directory.Entry{ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", DN: "CN=A,DC=example,DC=com"}
	if err := s.Prune(context.Background(), e, "userCertificate", vals("v1")); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 1 || synced[0] != dir {
		t.Errorf("synced %v, want [%s]", synced, dir)
	}
	if len(fc.modifies) != 1 || fc.modifies[0].DN != e.DN {
		t.Errorf("modifies %+v: want one addressed by DN", fc.modifies)
	}
}
