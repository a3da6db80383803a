package ldapsource_test

import (
	"strings"
	"testing"
)

// TestFullReadByteEqual writes users with certificates through LDAP and
// reads them back: every value byte-equal, nothing more, nothing less.
func TestFullReadByteEqual(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	for _, server := range servers() {
		t.Run(server.name, func(t *testing.T) {
			srv := server.start(t)
			ou := srv.NewOU(t)
			users := makeUsers(t, "u", n)
			srv.AddUsers(t, ou, users)
			s, _ := newSource(t, adminConfig(srv, ou))
			got, res := readAll(t, s, nil)
			if !res.Full {
				t.Error("first pass not Full")
			}
			if len(got) != len(users) {
				t.Fatalf("read %d entries, wrote %d", len(got), len(users))
			}
			byMail := map[string]bool{}
			for _, e := range got {
				byMail[strings.ToLower(e.Mail)] = true
			}
			want := map[string]int{}
			for i, u := range users {
				want[u.Mail] = i
			}
			for _, e := range got {
				i, ok := want[e.Mail]
				if !ok {
					t.Fatalf("unexpected entry %s (%s)", e.DN, e.Mail)
				}
				u := users[i]
				if !sameValues(e.UserCertificate, u.UserCertificate) {
					t.Errorf("%s: userCertificate differs (%d values, want %d)", e.DN, len(e.UserCertificate), len(u.UserCertificate))
				}
				if !sameValues(e.UserSMIMECertificate, u.UserSMIMECertificate) {
					t.Errorf("%s: userSMIMECertificate differs", e.DN)
				}
				if e.ID == "" || e.ID == e.DN {
					t.Errorf("%s: no stable ID (%q)", e.DN, e.ID)
				}
			}
		})
	}
}
