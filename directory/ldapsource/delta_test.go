package ldapsource_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

func cookieKind(t testing.TB, c []byte) string {
	t.Helper()
	var v struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(c, &v); err != nil {
		t.Fatalf("cookie %q: %v", c, err)
	}
	return v.Kind
}

type change struct {
	name    string
	deleted bool
	certs   [][]byte // for a live entry: the certificates expected
}

// checkDelta asserts that got holds exactly the expected entries among
// ids (ID → name), each once.
func checkDelta(t *testing.T, got map[string]*directory.Entry, ids map[string]string, want []change) {
	t.Helper()
	seen := map[string]*directory.Entry{}
	for id, e := range got {
		if name, ok := ids[strings.ToLower(id)]; ok {
			seen[name] = e
		}
	}
	for _, w := range want {
		e, ok := seen[w.name]
		if !ok {
			t.Errorf("%s: not in the delta", w.name)
			continue
		}
		delete(seen, w.name)
		if e.Deleted != w.deleted {
			t.Errorf("%s: Deleted = %v, want %v", w.name, e.Deleted, w.deleted)
		}
		if !w.deleted && !sameValues(e.UserCertificate, w.certs) {
			t.Errorf("%s: %d certificates, want %d (byte-equal)", w.name, len(e.UserCertificate), len(w.certs))
		}
	}
	for name, e := range seen {
		t.Errorf("%s: unexpected in the delta (ID %s, DN %s, Deleted %v)", name, e.ID, e.DN, e.Deleted)
	}
}

// TestDelta: add, modify, delete and leaving the filter are each seen in
// the next delta exactly once, then not again; the cookie works in a new
// Source (a process restart).
func TestDelta(t *testing.T) {
	for _, server := range servers() {
		t.Run(server.name, func(t *testing.T) {
			srv := server.start(t)
			ou := srv.NewOU(t)
			users := makeUsers(t, "d", 6)
			dns := srv.AddUsers(t, ou, users[:5])
			cfg := adminConfig(srv, ou)
			s, _ := newSource(t, cfg)
			full, res := readAll(t, s, nil)
			if len(full) != 5 || !res.Full || res.Cookie == nil {
				t.Fatalf("full pass: %d entries, Full %v, cookie %q", len(full), res.Full, res.Cookie)
			}
			wantKind := map[string]string{"samba": "dirsync", "slapd": "syncrepl"}[server.name]
			if k := cookieKind(t, res.Cookie); k != wantKind {
				t.Fatalf("cookie kind %q, want %q", k, wantKind)
			}
			ids := map[string]string{}
			for id, e := range full {
				ids[strings.ToLower(id)] = strings.SplitN(strings.SplitN(e.DN, ",", 2)[0], "=", 2)[1]
			}

			// Nothing changed: an empty delta.
			got, res2 := readAll(t, s, res.Cookie)
			checkDelta(t, got, ids, nil)
			if res2.Full {
				t.Error("empty delta reported Full")
			}

			// add d00005; new certificates for d00000; delete d00002;
			// d00003 loses its mail (leaves the filter).
			newDNs := srv.AddUsers(t, ou, users[5:6])
			fresh, err := ldaptest.UserCerts("d00000@smimesync.test", 1)
			if err != nil {
				t.Fatal(err)
			}
			srv.SetCertificates(t, dns[0], fresh)
			srv.Delete(t, dns[2])
			m := ldap.NewModifyRequest(dns[3], nil)
			m.Delete("mail", nil)
			if err := srv.Dial(t).Modify(m); err != nil {
				t.Fatal(err)
			}
			got, res3 := readAll(t, s, res2.Cookie)
			if res3.Full {
				t.Error("delta reported Full")
			}
			for id, e := range got {
				if strings.EqualFold(e.DN, newDNs[0]) {
					ids[strings.ToLower(id)] = users[5].Name
				}
			}
			checkDelta(t, got, ids, []change{
				{name: users[5].Name, certs: users[5].UserCertificate},
				{name: users[0].Name, certs: fresh},
				{name: users[2].Name, deleted: true},
				{name: users[3].Name, deleted: true},
			})

			// Exactly once: the next delta has none of them.
			got, res4 := readAll(t, s, res3.Cookie)
			checkDelta(t, got, ids, nil)

			// A new Source (a restarted process) continues from the cookie.
			srv.SetCertificates(t, dns[1], fresh)
			s2, _ := newSource(t, cfg)
			got, _ = readAll(t, s2, res4.Cookie)
			checkDelta(t, got, ids, []change{{name: users[1].Name, certs: fresh}})
		})
	}
}

// TestUSNFallback: an account without DirSync rights gets uSNChanged
// deltas; it cannot see deletions, so a full pass comes when the last is
// older than a day.
func TestUSNFallback(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	reader := ldaptest.UserSpec{Name: fmt.Sprintf("rd%d", time.Now().UnixNano()%1e12), Password: "Reader#Passw0rd1"}
	srv.AddUsers(t, ou, []ldaptest.UserSpec{reader})
	users := makeUsers(t, "n", 4)
	dns := srv.AddUsers(t, ou, users[:3])
	cfg := adminConfig(srv, ou)
	cfg.Bind = ldapsource.Bind{User: srv.BindName(ou, reader), Password: reader.Password}
	s, logs := newSource(t, cfg)
	now := time.Now()
	ldapsource.SetNow(s, func() time.Time { return now })
	full, res := readAll(t, s, nil)
	if len(full) != 3 {
		t.Fatalf("full pass read %d entries, want 3", len(full))
	}
	if k := cookieKind(t, res.Cookie); k != "usn" {
		t.Fatalf("cookie kind %q, want usn", k)
	}
	if !strings.Contains(logs.String(), "DirSync refused") {
		t.Error("no log of the DirSync refusal")
	}
	ids := map[string]string{}
	for id, e := range full {
		ids[strings.ToLower(id)] = e.Mail
	}
	newDNs := srv.AddUsers(t, ou, users[3:])
	fresh, err := ldaptest.UserCerts(users[0].Mail, 1)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetCertificates(t, dns[0], fresh)
	got, res2 := readAll(t, s, res.Cookie)
	if res2.Full {
		t.Error("usn delta reported Full")
	}
	for id, e := range got {
		if strings.EqualFold(e.DN, newDNs[0]) {
			ids[strings.ToLower(id)] = users[3].Mail
		}
	}
	mine := map[string]*directory.Entry{}
	for id, e := range got {
		if name, ok := ids[strings.ToLower(id)]; ok {
			mine[name] = e
		}
	}
	if e := mine[users[3].Mail]; e == nil || e.Deleted || !sameValues(e.UserCertificate, users[3].UserCertificate) {
		t.Errorf("added user: %+v", e)
	}
	if e := mine[users[0].Mail]; e == nil || e.Deleted || !sameValues(e.UserCertificate, fresh) {
		t.Errorf("modified user: %+v", e)
	}
	if len(mine) != 2 {
		t.Errorf("delta holds %d of our entries, want 2", len(mine))
	}
	// A deletion is invisible to this account: the delta says nothing,
	// and warns; a day later the pass is full and the user is gone.
	srv.Delete(t, dns[1])
	got, res3 := readAll(t, s, res2.Cookie)
	for id := range got {
		if ids[strings.ToLower(id)] == users[1].Mail {
			t.Errorf("deleted user seen by a non-admin usn delta: tombstones visible?")
		}
	}
	if !strings.Contains(logs.String(), "cannot see deleted objects") {
		t.Error("no warning that deletions are invisible")
	}
	now = now.Add(25 * time.Hour)
	got, res4 := readAll(t, s, res3.Cookie)
	if !res4.Full {
		t.Fatal("pass a day later is not Full")
	}
	if len(got) != 3 {
		t.Errorf("full pass read %d entries, want 3", len(got))
	}
}
