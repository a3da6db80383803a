package graphtest_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
)

// TestPatchAcceptsMicrosoftsValues: the emulator takes every value
// Microsoft's Entra PowerShell module computes for its test certificate
// (../testdata/entra-powershell), upper-case SKI and SHA1-PUKEY included,
// and another user's copy of one of them in the other case is the same
// value (uniqueness ignores case: the emulator's choice).
func TestPatchAcceptsMicrosoftsValues(t *testing.T) {
	file, err := os.Open(filepath.Join("..", "testdata", "entra-powershell", "expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var values []string
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			_, v, _ := strings.Cut(line, " ")
			values = append(values, v)
		}
	}
	if len(values) != 6 {
		t.Fatalf("read %d values, want 6", len(values))
	}
	f := newFixture(t, graphtest.Config{Users: []graphtest.User{
		{ID: "u1", UserPrincipalName: "contoso@microsoft.com"},
		{ID: "u2", UserPrincipalName: "other@contoso.com"},
	}})
	if resp := f.call(t, "PATCH", "/v1.0/users/u1", patchBody(values...), nil, nil); resp.StatusCode != 204 {
		t.Fatalf("PATCH of Microsoft's values: %d", resp.StatusCode)
	}
	if u, _ := f.srv.User("u1"); strings.Join(u.CertificateUserIDs, "\n") != strings.Join(values, "\n") {
		t.Fatalf("u1 holds %q", u.CertificateUserIDs)
	}
	var ski string
	for _, v := range values {
		if strings.HasPrefix(v, "X509:<SKI>") {
			ski = v
		}
	}
	if ski == "" || strings.ToLower(ski) == ski {
		t.Fatalf("no upper-case SKI value among %q", values)
	}
	var e graphErr
	if resp := f.call(t, "PATCH", "/v1.0/users/u2", patchBody("X509:<SKI>"+strings.ToLower(strings.TrimPrefix(ski, "X509:<SKI>"))), nil, &e); resp.StatusCode != 400 || !strings.Contains(e.Error.Message, "same value") {
		t.Fatalf("lower-case copy on another user: %d %+v, want 400 (same value)", resp.StatusCode, e)
	}
}
