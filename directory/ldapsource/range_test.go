package ldapsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
)

func TestAttrName(t *testing.T) {
	for _, tc := range []struct {
		in       string
		name     string
		lo, hi   int
		ranged   bool
		wantsErr bool
	}{
		{in: "userCertificate", name: "userCertificate"},
		{in: "userCertificate;binary", name: "userCertificate"},
		{in: "USERCERTIFICATE;Binary", name: "USERCERTIFICATE"},
		{in: "member;range=0-1499", name: "member", lo: 0, hi: 1499, ranged: true},
		{in: "userCertificate;binary;range=1500-*", name: "userCertificate", lo: 1500, hi: -1, ranged: true},
		{in: "x;RANGE=7-*", name: "x", lo: 7, hi: -1, ranged: true},
		{in: "x;range=7-6", name: "x", lo: 7, hi: 6, ranged: true}, // an empty last slice
		{in: "x;range=a-*", name: "x", wantsErr: true},
		{in: "x;range=5", name: "x", wantsErr: true},
		{in: "x;range=-1-*", name: "x", wantsErr: true},
		{in: "x;range=9-3", name: "x", wantsErr: true},
	} {
		name, lo, hi, ranged, err := attrName(tc.in)
		if (err != nil) != tc.wantsErr || name != tc.name || (err == nil && (lo != tc.lo || hi != tc.hi || ranged != tc.ranged)) {
			t.Errorf("attrName(%q) = %q %d %d %v %v", tc.in, name, lo, hi, ranged, err)
		}
	}
}

// TestRangeSlicesAD follows Active Directory's slicing of a long value
// list (MaxValRange 1,500): the first answer carries
// userCertificate;range=0-1499, the source asks for 1500-* and gets
// 1500-2999, then 3000-* and gets the last slice 3000-*.
func TestRangeSlicesAD(t *testing.T) {
	all := make([][]byte, 3200)
	for i := range all {
		all[i] = []byte(fmt.Sprintf("cert-%04d", i))
	}
	dn := "CN=Many,OU=Staff,DC=example,DC=com"
	guid := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	fc := &fakeConn{}
	fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
		if r, ok := adRootDSE(req); ok {
			return r, nil
		}
		if req.Scope == ldap.ScopeBaseObject && req.BaseDN == dn {
			switch req.Attributes[0] {
			case "userCertificate;range=1500-*":
				return []fakeResult{{entry: entry(dn, map[string][][]byte{"userCertificate;range=1500-2999": all[1500:3000]})}}, nil
			case "userCertificate;range=3000-*":
				return []fakeResult{{entry: entry(dn, map[string][][]byte{"userCertificate;range=3000-*": all[3000:]})}}, nil
			}
			return nil, fmt.Errorf("unexpected base search for %v", req.Attributes)
		}
		return []fakeResult{
			{referral: "ldap://other.example.com/DC=other,DC=example,DC=com"},
			{entry: entry(dn, map[string][][]byte{
				"objectGUID":                     {guid},
				"MAIL":                           vals("many@example.com"),
				"proxyAddresses":                 vals("SMTP:many@example.com", "smtp:m@example.com"),
				"userCertificate;range=0-1499":   all[:1500],
				"userSMIMECertificate;binary":    vals("blob"),
				"userPrincipalName":              vals("many@example.com"),
				"someOtherAttribute;range=0-*":   vals("ignored"),
				"userCertificate;x-unknown-opt;": nil,
			})},
			pagedDone(""),
		}, nil
	}
	s, logs := newFakeSource(t, Config{Delta: "none", BaseDN: StringList{"OU=Staff,DC=example,DC=com"}}, fc)
	var got []*directory.Entry
	res, err := s.Read(context.Background(), directory.Pass{}, func(e *directory.Entry) error { got = append(got, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !res.Full || res.Cookie != nil {
		t.Errorf("delta none: Full %v, cookie %q", res.Full, res.Cookie)
	}
	if len(got) != 1 {
		t.Fatalf("%d entries", len(got))
	}
	e := got[0]
	if len(e.UserCertificate) != len(all) {
		t.Fatalf("%d values, want %d", len(e.UserCertificate), len(all))
	}
	for i := range all {
		if !bytes.Equal(e.UserCertificate[i], all[i]) {
			t.Fatalf("value %d = %q, want %q", i, e.UserCertificate[i], all[i])
		}
	}
	if e.ID != "04030201-0605-0807-090a-0b0c0d0e0f10" || e.Mail != "many@example.com" || len(e.ProxyAddresses) != 2 ||
		e.UserPrincipalName != "many@example.com" || string(e.UserSMIMECertificate[0]) != "blob" {
		t.Errorf("entry %+v", e)
	}
	if !strings.Contains(logs.String(), "skipping referral") {
		t.Error("referral not logged")
	}
}

func TestRangeErrors(t *testing.T) {
	dn := "CN=X,DC=example,DC=com"
	for name, answer := range map[string][]fakeResult{
		"no slice":    nil,
		"wrong start": {{entry: entry(dn, map[string][][]byte{"userCertificate;range=5-*": vals("a")})}},
		"no progress": {{entry: entry(dn, map[string][][]byte{"userCertificate;range=2-1": nil})}},
		"bad range":   {{entry: entry(dn, map[string][][]byte{"userCertificate;range=x": vals("a")})}},
		"other attr":  {{entry: entry(dn, map[string][][]byte{"mail": vals("a")})}},
	} {
		t.Run(name, func(t *testing.T) {
			fc := &fakeConn{}
			fc.serve = func(req *ldap.SearchRequest) ([]fakeResult, error) {
				if r, ok := adRootDSE(req); ok {
					return r, nil
				}
				if req.Scope == ldap.ScopeBaseObject {
					return answer, nil
				}
				return []fakeResult{{entry: entry(dn, map[string][][]byte{"userCertificate;range=0-1": vals("a", "b")})}, pagedDone("")}, nil
			}
			s, _ := newFakeSource(t, Config{Delta: "none"}, fc)
			_, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { return nil })
			var ee *EntryError
			if !errors.As(err, &ee) || ee.DN != dn {
				t.Errorf("err %v, want an EntryError for %s", err, dn)
			}
		})
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
