package ldapsource

import (
	"context"
	"errors"
	"strings"
	"testing"

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
