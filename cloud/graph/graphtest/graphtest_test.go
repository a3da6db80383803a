package graphtest_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/graph/graphtest"
)

type fixture struct {
	tokens *azauthtest.Server
	srv    *graphtest.Server
	token  string
}

func newFixture(t *testing.T, cfg graphtest.Config) *fixture {
	t.Helper()
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	cfg.Tokens = tokens
	srv := graphtest.NewServer(cfg)
	t.Cleanup(srv.Close)
	tok := tokens.Issue(azauthtest.Claims{Audience: srv.URL, TenantID: "t1", AppID: "a1", Expires: time.Now().Add(time.Hour).Unix()})
	return &fixture{tokens: tokens, srv: srv, token: tok}
}

// call sends a request and decodes a JSON answer into out (when not nil).
func (f *fixture) call(t *testing.T, method, path string, body any, hdr map[string]string, out any) *http.Response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %d, decoding: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp
}

type graphErr struct {
	Error struct{ Code, Message string } `json:"error"`
}

func patchBody(values ...string) map[string]any {
	return map[string]any{"authorizationInfo": map[string]any{"certificateUserIds": values}}
}

func seed() []graphtest.User {
	return []graphtest.User{
		{ID: "u1", UserPrincipalName: "alice@contoso.com", Mail: "alice@contoso.com", ProxyAddresses: []string{"SMTP:alice@contoso.com", "smtp:a@contoso.com"}},
		{ID: "u2", UserPrincipalName: "bob@contoso.com", OnPremisesImmutableID: "AAEC", OnPremisesSyncEnabled: true},
		{ID: "u3", UserPrincipalName: "o'neil@contoso.com", CertificateUserIDs: []string{"X509:<PN>oneil"}},
	}
}

func TestTokens(t *testing.T) {
	f := newFixture(t, graphtest.Config{Users: seed()})
	for _, tc := range []struct {
		name, auth string
	}{
		{"none", ""},
		{"not a JWT", "Bearer nonsense"},
		{"wrong audience", "Bearer " + f.tokens.Issue(azauthtest.Claims{Audience: "https://outlook.office365.com", Expires: time.Now().Add(time.Hour).Unix()})},
		{"expired", "Bearer " + f.tokens.Issue(azauthtest.Claims{Audience: f.srv.URL, Expires: time.Now().Add(-time.Minute).Unix()})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", f.srv.URL+"/v1.0/users", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
		})
	}
	if got := f.srv.Stats().Unauthorized; got != 4 {
		t.Errorf("Unauthorized = %d, want 4", got)
	}
	// No verifier at all: refused too.
	bare := graphtest.NewServer(graphtest.Config{})
	defer bare.Close()
	req, _ := http.NewRequest("GET", bare.URL+"/v1.0/users", nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := bare.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("server without verifier: %d", resp.StatusCode)
	}
}

func TestListAndFilter(t *testing.T) {
	f := newFixture(t, graphtest.Config{Users: seed()})
	for _, tc := range []struct {
		filter string
		want   []string
		status int
	}{
		{"", []string{"u1", "u2", "u3"}, 200},
		{"userPrincipalName eq 'ALICE@contoso.com'", []string{"u1"}, 200},
		{"mail eq 'alice@contoso.com' or onPremisesImmutableId eq 'AAEC'", []string{"u1", "u2"}, 200},
		{"proxyAddresses/any(x:x eq 'smtp:A@contoso.com')", []string{"u1"}, 200},
		{"userPrincipalName eq 'o''neil@contoso.com'", []string{"u3"}, 200},
		{"id eq 'nobody'", nil, 200},
		{"startswith(mail,'a')", nil, 400},
		{"displayName eq 'x'", nil, 400},
		{"mail ne 'x'", nil, 400},
		{"proxyAddresses/any(x:y eq 'a')", nil, 400},
		{"mail eq 'x' and id eq 'y'", nil, 400},
		{"mail eq 'open", nil, 400},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			q := url.Values{"$select": {"id,mail"}}
			if tc.filter != "" {
				q.Set("$filter", tc.filter)
			}
			var page struct {
				Value []map[string]any `json:"value"`
			}
			resp := f.call(t, "GET", "/v1.0/users?"+q.Encode(), nil, nil, &page)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			var got []string
			for _, u := range page.Value {
				got = append(got, u["id"].(string))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSelectAndPaging(t *testing.T) {
	var users []graphtest.User
	for i := range 7 {
		users = append(users, graphtest.User{UserPrincipalName: fmt.Sprintf("u%d@contoso.com", i), CertificateUserIDs: []string{fmt.Sprintf("X509:<PN>u%d", i)}})
	}
	f := newFixture(t, graphtest.Config{Users: users})
	// Without $select, authorizationInfo does not come.
	var page map[string]any
	f.call(t, "GET", "/v1.0/users?$top=3", nil, nil, &page)
	if v := page["value"].([]any)[0].(map[string]any); v["authorizationInfo"] != nil || v["id"] == nil {
		t.Fatalf("default properties: %v", v)
	}
	// Paging with $select.
	next := "/v1.0/users?$top=3&$select=id,authorizationInfo"
	var n, pages int
	for next != "" {
		var p struct {
			Value []struct {
				AuthorizationInfo struct{ CertificateUserIDs []string } `json:"authorizationInfo"`
			} `json:"value"`
			Next string `json:"@odata.nextLink"`
		}
		f.call(t, "GET", next, nil, nil, &p)
		pages++
		for _, u := range p.Value {
			if len(u.AuthorizationInfo.CertificateUserIDs) != 1 {
				t.Fatalf("user without its value: %+v", u)
			}
			n++
		}
		next = strings.TrimPrefix(p.Next, f.srv.URL)
	}
	if n != 7 || pages != 3 {
		t.Fatalf("%d users in %d pages, want 7 in 3", n, pages)
	}
	for _, bad := range []string{"$top=1000", "$top=0", "$select=id,nonsense", "$skiptoken=%25%25"} {
		var e graphErr
		if resp := f.call(t, "GET", "/v1.0/users?"+bad, nil, nil, &e); resp.StatusCode != 400 || e.Error.Message == "" {
			t.Errorf("%s: %d %+v, want 400", bad, resp.StatusCode, e)
		}
	}
}

func TestPatchContract(t *testing.T) {
	f := newFixture(t, graphtest.Config{Users: seed()})
	long := "X509:<SKI>" + strings.Repeat("A", 1015)
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = fmt.Sprintf("X509:<SKI>%02d", i)
	}
	for _, tc := range []struct {
		name   string
		user   string
		body   any
		status int
		msg    string
	}{
		{"ok", "u1", patchBody("X509:<SKI>01", "X509:<PN>alice"), 204, ""},
		{"by UPN", "alice@contoso.com", patchBody("X509:<SKI>02"), 204, ""},
		{"empty list", "u1", patchBody(), 204, ""},
		{"ten is fine", "u1", patchBody(eleven[:10]...), 204, ""},
		{"eleven", "u1", patchBody(eleven...), 400, "at most 10"},
		{"1025 characters", "u1", patchBody(long), 400, "1025 characters"},
		{"twice in the list", "u1", patchBody("X509:<SKI>01", "x509:<ski>01"), 400, "appears twice"},
		{"held by another user", "u1", patchBody("X509:<PN>ONEIL"), 400, "same value"},
		{"synced", "u2", patchBody("X509:<SKI>03"), 400, "on-premises mastered"},
		{"missing user", "nobody", patchBody("X509:<SKI>04"), 404, "does not exist"},
		{"other property", "u1", map[string]any{"displayName": "x"}, 400, "authorizationInfo only"},
		{"not JSON", "u1", []byte("{"), 400, "JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e graphErr
			var out any
			if tc.status != 204 {
				out = &e
			}
			resp := f.call(t, "PATCH", "/v1.0/users/"+url.PathEscape(tc.user), tc.body, nil, out)
			if resp.StatusCode != tc.status || !strings.Contains(e.Error.Message, tc.msg) {
				t.Fatalf("%d %+v, want %d %q", resp.StatusCode, e, tc.status, tc.msg)
			}
		})
	}
	if u, _ := f.srv.User("u1"); len(u.CertificateUserIDs) != 10 {
		t.Fatalf("u1 holds %q", u.CertificateUserIDs)
	}
	if st := f.srv.Stats(); st.Writes != 4 || st.Refused != 8 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGzip(t *testing.T) {
	f := newFixture(t, graphtest.Config{Users: seed()})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_ = json.NewEncoder(zw).Encode(patchBody("X509:<SKI>01"))
	zw.Close()
	if resp := f.call(t, "PATCH", "/v1.0/users/u1", buf.Bytes(), map[string]string{"Content-Encoding": "gzip"}, nil); resp.StatusCode != 204 {
		t.Fatalf("gzip body: %d", resp.StatusCode)
	}
	var e graphErr
	resp := f.call(t, "PATCH", "/v1.0/users/u1", patchBody("X509:<SKI>02"), map[string]string{"Content-Encoding": "gzip"}, &e)
	if resp.StatusCode != 400 || !strings.Contains(e.Error.Message, "not gzip") {
		t.Fatalf("plain body labelled gzip: %d %+v", resp.StatusCode, e)
	}
}

type batchAnswer struct {
	Responses []struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"responses"`
}

func item(id, method, u string, body any) map[string]any {
	m := map[string]any{"id": id, "method": method, "url": u}
	if body != nil {
		m["body"] = body
		m["headers"] = map[string]string{"Content-Type": "application/json"}
	}
	return m
}

func TestBatch(t *testing.T) {
	f := newFixture(t, graphtest.Config{Users: seed()})
	var ans batchAnswer
	resp := f.call(t, "POST", "/v1.0/$batch", map[string]any{"requests": []any{
		item("1", "GET", "/users/u1?$select=id,mail", nil),
		item("2", "PATCH", "/users/u1", patchBody("X509:<SKI>01")),
		item("3", "PATCH", "users/u2", patchBody("X509:<SKI>02")),
		item("4", "GET", "https://graph.microsoft.com/v1.0/users/u1", nil),
		map[string]any{"id": "5", "method": "PATCH", "url": "/users/u1", "body": patchBody("X509:<SKI>05")},
		map[string]any{"id": "6", "method": "GET", "url": "/users/u1", "dependsOn": []string{"3"}},
	}}, nil, &ans)
	if resp.StatusCode != 200 || len(ans.Responses) != 6 {
		t.Fatalf("%d %+v", resp.StatusCode, ans)
	}
	want := map[string]int{"1": 200, "2": 204, "3": 400, "4": 400, "5": 400, "6": 424}
	for _, r := range ans.Responses {
		if r.Status != want[r.ID] {
			t.Errorf("item %s: %d %s, want %d", r.ID, r.Status, r.Body, want[r.ID])
		}
	}
	// 21 requests: the whole batch is refused.
	var reqs []any
	for i := range 21 {
		reqs = append(reqs, item(fmt.Sprint(i), "GET", "/users/u1", nil))
	}
	var e graphErr
	if resp := f.call(t, "POST", "/v1.0/$batch", map[string]any{"requests": reqs}, nil, &e); resp.StatusCode != 400 || !strings.Contains(e.Error.Message, "20") {
		t.Fatalf("21 requests: %d %+v", resp.StatusCode, e)
	}
	// Duplicate ids.
	if resp := f.call(t, "POST", "/v1.0/$batch", map[string]any{"requests": []any{item("a", "GET", "/users/u1", nil), item("a", "GET", "/users/u1", nil)}}, nil, &e); resp.StatusCode != 400 {
		t.Fatalf("duplicate ids: %d", resp.StatusCode)
	}
}

// TestThrottling: 5 writes per emulated 10 s, the clock 100 times faster
// (0.1 s a window); the sixth write inside a window gets 429 with a
// Retry-After that, once waited, lets it through. Batch items are
// throttled one by one.
func TestThrottling(t *testing.T) {
	f := newFixture(t, graphtest.Config{Users: seed(), WriteBudget: 5, WriteWindow: 10 * time.Second, TimeScale: 100})
	var reqs []any
	for i := range 7 {
		reqs = append(reqs, item(fmt.Sprint(i), "PATCH", "/users/u1", patchBody(fmt.Sprintf("X509:<SKI>%02d", i))))
	}
	var ans batchAnswer
	f.call(t, "POST", "/v1.0/$batch", map[string]any{"requests": reqs}, nil, &ans)
	var ok, throttled int
	var ra time.Duration
	for _, r := range ans.Responses {
		switch r.Status {
		case 204:
			ok++
		case 429:
			throttled++
			var secs float64
			if _, err := fmt.Sscan(r.Headers["Retry-After"], &secs); err != nil || secs <= 0 || secs > 0.1 {
				t.Fatalf("Retry-After %q", r.Headers["Retry-After"])
			}
			ra = time.Duration(secs * float64(time.Second))
		}
	}
	if ok != 5 || throttled != 2 {
		t.Fatalf("%d written, %d throttled; want 5 and 2", ok, throttled)
	}
	var e graphErr
	resp := f.call(t, "PATCH", "/v1.0/users/u1", patchBody("X509:<SKI>07"), nil, &e)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || e.Error.Code != "TooManyRequests" {
		t.Fatalf("plain PATCH over budget: %d %+v", resp.StatusCode, e)
	}
	time.Sleep(ra + 5*time.Millisecond)
	if resp := f.call(t, "PATCH", "/v1.0/users/u1", patchBody("X509:<SKI>08"), nil, nil); resp.StatusCode != 204 {
		t.Fatalf("after Retry-After: %d", resp.StatusCode)
	}
	// Reads are not throttled.
	if resp := f.call(t, "GET", "/v1.0/users/u1", nil, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("read: %d", resp.StatusCode)
	}
	if st := f.srv.Stats(); st.Throttled != 3 || st.Writes != 6 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnscaledRetryAfterIsWholeSeconds(t *testing.T) {
	f := newFixture(t, graphtest.Config{Users: seed(), WriteBudget: 1})
	f.call(t, "PATCH", "/v1.0/users/u1", patchBody("X509:<SKI>01"), nil, nil)
	resp := f.call(t, "PATCH", "/v1.0/users/u1", patchBody("X509:<SKI>02"), nil, nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "150" {
		t.Fatalf("%d Retry-After %q, want 429 and 150", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestFaults(t *testing.T) {
	f := newFixture(t, graphtest.Config{Users: seed()})
	f.srv.Inject(
		graphtest.Fault{Method: "GET", Path: "/users", Status: 503, RetryAfter: "2", Times: 2},
		graphtest.Fault{InBatch: true, Method: "PATCH", Status: 500},
	)
	for range 2 {
		resp := f.call(t, "GET", "/v1.0/users/u1", nil, nil, nil)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("fault: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if resp := f.call(t, "GET", "/v1.0/users/u1", nil, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("after the faults: %d", resp.StatusCode)
	}
	var ans batchAnswer
	f.call(t, "POST", "/v1.0/$batch", map[string]any{"requests": []any{
		item("1", "GET", "/users/u1", nil),
		item("2", "PATCH", "/users/u1", patchBody("X509:<SKI>01")),
		item("3", "PATCH", "/users/u1", patchBody("X509:<SKI>02")),
	}}, nil, &ans)
	if s := []int{ans.Responses[0].Status, ans.Responses[1].Status, ans.Responses[2].Status}; fmt.Sprint(s) != "[200 500 204]" {
		t.Fatalf("batch statuses %v", s)
	}
	// A dropped connection, then a slow answer.
	f.srv.Inject(graphtest.Fault{Drop: true}, graphtest.Fault{Delay: 50 * time.Millisecond})
	// (a PATCH: net/http would resend a GET on a fresh connection itself)
	req, _ := http.NewRequest("PATCH", f.srv.URL+"/v1.0/users/u1", strings.NewReader(`{"authorizationInfo":{"certificateUserIds":[]}}`))
	req.Header.Set("Authorization", "Bearer "+f.token)
	if _, err := f.srv.Client().Do(req); err == nil {
		t.Fatal("dropped connection: no error")
	}
	start := time.Now()
	if resp := f.call(t, "GET", "/v1.0/users/u1", nil, nil, nil); resp.StatusCode != 200 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("slow answer: %d after %v", resp.StatusCode, time.Since(start))
	}
	if f.srv.PendingFaults() != 0 || f.srv.Stats().Faults != 5 {
		t.Fatalf("faults left %d, fired %d", f.srv.PendingFaults(), f.srv.Stats().Faults)
	}
}
