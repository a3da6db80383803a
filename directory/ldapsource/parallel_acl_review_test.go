package ldapsource_test

import (
	"encoding/binary"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// sidString renders a binary objectSid as S-1-….
func sidString(b []byte) string {
	auth := uint64(0)
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	s := fmt.Sprintf("S-%d-%d", b[0], auth)
	for i := 0; i < int(b[1]); i++ {
		s += fmt.Sprintf("-%d", binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return s
}

// TestParallelFullReadUnreadableUSNCreated: an account that may read the
// users' mail and certificates but not their uSNCreated (an ACE denying
// it, as a hardened domain may have) reads every user through one
// connection; through two, the uSNCreated ranges match nothing it cannot
// read, and the full pass must not silently lose those users (a full
// pass that misses users makes the engine treat them as gone).
func TestParallelFullReadUnreadableUSNCreated(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	reader := ldaptest.UserSpec{Name: fmt.Sprintf("ru%d", time.Now().UnixNano()%1e12), Password: "Reader#Passw0rd1"}
	srv.AddUsers(t, ou, []ldaptest.UserSpec{reader})
	users := makeUsers(t, "acl", 6)
	srv.AddUsers(t, ou, users)

	c := srv.Dial(t)
	res, err := c.Search(ldap.NewSearchRequest(srv.UserDN(ou, reader), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"objectSid"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("read the reader's objectSid: %v", err)
	}
	sid := sidString(res.Entries[0].GetRawAttributeValue("objectSid"))
	// Deny reading uSNCreated (schemaIDGUID bf967a70-…) to the reader on
	// the OU and everything under it.
	sddl := fmt.Sprintf("(OD;CI;RP;bf967a70-0de6-11d0-a285-00aa003049e2;;%s)", sid)
	out, err := exec.Command("samba-tool", "dsacl", "set", "--objectdn="+ou, "--sddl="+sddl,
		"-H", filepath.Join(srv.Dir, "private", "sam.ldb"), "-s", filepath.Join(srv.Dir, "etc", "smb.conf")).CombinedOutput()
	if err != nil {
		t.Skipf("samba-tool dsacl set: %v\n%s", err, out)
	}

	read := func(conns int) int {
		cfg := adminConfig(srv, ou)
		cfg.Bind = ldapsource.Bind{User: srv.BindName(ou, reader), Password: reader.Password}
		cfg.ReadConnections = conns
		s, _ := newSource(t, cfg)
		got, _ := readAll(t, s, nil)
		return len(got)
	}
	one := read(1)
	if one != len(users) {
		t.Fatalf("one connection: %d users, want %d (the ACE should not hide them)", one, len(users))
	}
	if two := read(2); two != one {
		t.Errorf("two connections: %d users, one connection: %d: users whose uSNCreated the account cannot read are lost silently", two, one)
	}
}
