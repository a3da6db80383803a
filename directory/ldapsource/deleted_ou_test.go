package ldapsource_test

import (
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// TestDeletedWithOU: users deleted together with their OU (a subtree
// delete) are reported deleted by dirsync and usn deltas, although their
// lastKnownParent is then the OU's tombstone, outside the scope.
func TestDeletedWithOU(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	sub := srv.NewOUNamed(t, "sub", ou)
	users := makeUsers(t, "od", 2)
	srv.AddUsers(t, sub, users)
	cookies := map[string][]byte{}
	sources := map[string]*ldapsource.Source{}
	var ids []string
	for _, delta := range []string{"dirsync", "usn"} {
		cfg := adminConfig(srv, ou)
		cfg.Delta = ldapsource.DeltaMode(delta)
		s, _ := newSource(t, cfg)
		full, res := readAll(t, s, nil)
		if len(full) != 2 || cookieKind(t, res.Cookie) != delta {
			t.Fatalf("%s full pass: %d entries, cookie %s", delta, len(full), res.Cookie)
		}
		if ids == nil {
			for id := range full {
				ids = append(ids, strings.ToLower(id))
			}
		}
		cookies[delta], sources[delta] = res.Cookie, s
	}
	if err := srv.Dial(t).Del(ldap.NewDelRequest(sub, []ldap.Control{ldap.NewControlSubtreeDelete()})); err != nil {
		t.Fatal(err)
	}
	for _, delta := range []string{"dirsync", "usn"} {
		got, res := readAll(t, sources[delta], cookies[delta])
		if res.Full {
			t.Errorf("%s: the delta became a full pass", delta)
		}
		for _, id := range ids {
			var seen bool
			for gid, e := range got {
				if strings.EqualFold(gid, id) && e.Deleted {
					seen = true
				}
			}
			if !seen {
				t.Errorf("%s: deletion of %s not reported (delta: %d entries)", delta, id, len(got))
			}
		}
	}
}
