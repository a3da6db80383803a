package httplog

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTransportRecords: one exchange is one JSON line once the answer's
// body is closed; the Authorization header and a form secret are redacted,
// and what the server receives is unchanged. A nil Log adds nothing.
func TestTransportRecords(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		io.WriteString(w, `{"access_token":"tok-123"}`)
	}))
	defer srv.Close()

	var buf bytes.Buffer
	l := New(&buf)
	c := &http.Client{Transport: l.Transport(nil)}
	req, _ := http.NewRequest("POST", srv.URL+"/token", strings.NewReader("client_secret=s3cret&x=1"))
	req.Header.Set("Authorization", "Bearer abc")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got != "client_secret=s3cret&x=1" {
		t.Errorf("server received %q", got)
	}
	var rec Record
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &rec); err != nil {
		t.Fatalf("%v: %q", err, buf.String())
	}
	if rec.Status != 200 || rec.Path != "/token" || rec.Response == nil ||
		rec.Request.Headers["Authorization"] != Redacted ||
		rec.Request.Body != "client_secret="+Redacted+"&x=1" ||
		strings.Contains(buf.String(), "tok-123") || strings.Contains(buf.String(), "s3cret") {
		t.Errorf("record %s", buf.String())
	}

	var nilLog *Log
	if rt := nilLog.Transport(http.DefaultTransport); rt != http.DefaultTransport {
		t.Errorf("a nil Log wrapped the transport")
	}
	if err := nilLog.Close(); err != nil {
		t.Error(err)
	}
}
