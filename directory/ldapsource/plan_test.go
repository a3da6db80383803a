package ldapsource

import (
	"fmt"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestHelpers(t *testing.T) {
	if got := fmt.Sprint(filterAttrs("(&(objectCategory=person)(|(mail=*)(proxyAddresses~=x))(!(department>=5))(memberOf:1.2.840.113556.1.4.1941:=CN=G))")); got != "[objectCategory mail proxyAddresses department memberOf]" {
		t.Errorf("filterAttrs = %s", got)
	}
	for _, tc := range [][3]string{{`CORP\svc`, "", "CORP svc"}, {"svc@corp.example", "", "corp.example svc"}, {"svc", "CORP", "CORP svc"}} {
		d, u := ntlmUser(tc[0], tc[1])
		if d+" "+u != tc[2] {
			t.Errorf("ntlmUser(%q, %q) = %q %q", tc[0], tc[1], d, u)
		}
	}
	s, _ := newFakeSource(t, Config{BaseDN: StringList{"OU=A,DC=x", "ou=b,dc=X", "OU=Deep,OU=A,DC=x"}, ExcludeOU: StringList{"OU=Gone,OU=A,DC=x"}}, &fakeConn{})
	p, err := s.makePlan(&serverInfo{kind: ServerAD, controls: map[string]bool{}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.baseStrs) != "[OU=A,DC=x ou=b,dc=X]" {
		t.Errorf("bases %v: a base inside another must be dropped", p.baseStrs)
	}
	for dn, want := range map[string]bool{
		"CN=u,OU=A,DC=x": true, "cn=u,ou=a,dc=x": true, "CN=u,OU=B,DC=X": true, "CN=u,OU=Gone,OU=A,DC=x": false,
		"OU=Gone,OU=A,DC=x": false, "CN=u,OU=C,DC=x": false, "not a dn": true,
	} {
		if p.inScope(dn) != want {
			t.Errorf("inScope(%q) = %v", dn, !want)
		}
	}
	if p.delta != DeltaDirSync || p.idAttr != "objectGUID" || p.filter != DefaultFilter(ServerAD) {
		t.Errorf("AD plan: delta %s, id %s, filter %s", p.delta, p.idAttr, p.filter)
	}
	p, _ = s.makePlan(&serverInfo{kind: ServerOpenLDAP, controls: map[string]bool{}})
	if p.delta != DeltaNone || p.idAttr != "entryUUID" {
		t.Errorf("OpenLDAP plan without syncprov: delta %s, id %s", p.delta, p.idAttr)
	}
	p, _ = s.makePlan(&serverInfo{kind: ServerOpenLDAP, controls: map[string]bool{ldap.ControlTypeSyncRequest: true}})
	if p.delta != DeltaSyncrepl {
		t.Errorf("OpenLDAP plan with syncprov: delta %s", p.delta)
	}
	s.cfg.IDAttribute = "employeeID"
	p, _ = s.makePlan(&serverInfo{kind: ServerAD, controls: map[string]bool{}})
	if p.delta != DeltaNone || p.idAttr != "employeeID" {
		t.Errorf("AD plan with a custom ID: delta %s, id %s", p.delta, p.idAttr)
	}
}
