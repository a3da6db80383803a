package ldapsource

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/smimesync/go-smimesync/directory"
)

func TestCookieDecode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" when usable
	}{
		{`{"v":1,"kind":"dirsync","scope":"s","dirsync":"AAE="}`, ""},
		{`{"v":1,"kind":"usn","scope":"s","usn":12}`, ""},
		{`{"v":1,"kind":"syncrepl","scope":"s","syncrepl":[{"base":"dc=x","cookie":"cmlk"}]}`, ""},
		{`not json`, "not an ldapsource cookie"},
		{`{"v":2,"kind":"usn","usn":1}`, "version 2"},
		{`{"v":1,"kind":"dirsync"}`, "without DirSync state"},
		{`{"v":1,"kind":"usn"}`, "without a USN"},
		{`{"v":1,"kind":"syncrepl"}`, "without content-sync state"},
		{`{"v":1,"kind":"changelog"}`, "unknown kind"},
	} {
		_, err := decodeCookie([]byte(tc.in))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("decodeCookie(%s) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestCookieMismatch: a cookie of another scope, kind or DC, or older than
// FullPassEvery, gives a logged full pass.
func TestCookieMismatch(t *testing.T) {
	fc := &fakeConn{}
	fc.serve = adDeltaServe(func(*ldap.SearchRequest) ([]fakeResult, error) {
		return []fakeResult{pagedDone("")}, nil
	})
	s, logs := newFakeSource(t, Config{FullPassEvery: time.Hour}, fc)
	res, err := s.Read(context.Background(), directory.Pass{}, func(*directory.Entry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	good, err := decodeCookie(res.Cookie)
	if err != nil || good.Kind != DeltaDirSync || good.Server != "00000000-0000-0000-0000-000000000000" {
		t.Fatalf("cookie %s: %v", res.Cookie, err)
	}
	for _, tc := range []struct {
		name string
		mod  func(c *cookie)
		why  string
	}{
		{"scope", func(c *cookie) { c.Scope = "other" }, "scope"},
		{"kind", func(c *cookie) { c.Kind, c.Syncrepl = DeltaSyncrepl, []syncCookie{{"x", []byte("y")}} }, "cookie is for syncrepl deltas"},
		{"server", func(c *cookie) { c.Server = "11111111-1111-1111-1111-111111111111" }, "invocationId"},
		{"age", func(c *cookie) { c.Full = c.Full.Add(-2 * time.Hour) }, "older than 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *good
			tc.mod(&c)
			b, _ := c.encode()
			logs.Reset()
			res, err := s.Read(context.Background(), directory.Pass{Cookie: b}, func(*directory.Entry) error { return nil })
			if err != nil || !res.Full {
				t.Fatalf("Full %v, err %v", res.Full, err)
			}
			if !strings.Contains(logs.String(), "full pass") || !strings.Contains(logs.String(), tc.why) {
				t.Errorf("log does not give the reason %q:\n%s", tc.why, logs)
			}
		})
	}
}
