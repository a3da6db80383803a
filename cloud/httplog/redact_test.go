package httplog

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
)

// TestRedactBody: each kind of secret and certificate bytes, on its own.
func TestRedactBody(t *testing.T) {
	cert := []byte{0x30, 0x82, 0x01, 0x0a}
	for i := 0; i < 100; i++ {
		cert = append(cert, byte(i))
	}
	fp := fingerprintText(cert)
	b64 := base64.StdEncoding.EncodeToString(cert)
	for _, tc := range []struct{ in, want string }{
		{"grant_type=client_credentials&client_secret=abc%2Bdef&scope=x", "grant_type=client_credentials&client_secret=" + Redacted + "&scope=x"},
		{"client_assertion_type=jwt-bearer&client_assertion=eyJhbGciOi.eyJzdWIi.c2ln", "client_assertion_type=jwt-bearer&client_assertion=" + Redacted},
		{`{"token_type":"Bearer","access_token":"opaque-token","refresh_token":"r"}`, `{"token_type":"Bearer","access_token":"` + Redacted + `","refresh_token":"` + Redacted + `"}`},
		{`Bearer eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.sig-_nature`, `Bearer ` + Redacted},
		{`<Obj><BA N="x">` + b64 + `</BA></Obj>`, `<Obj><BA N="x">` + fp + `</BA></Obj>`},
		{`{"Data":[` + decimal(cert) + `]}`, `{"Data":"` + fp + `"}`},
		{`{"value":["\u003cObjs\u003e\u003cBA\u003e` + b64 + `\u003c/BA\u003e"]}`, `{"value":["\u003cObjs\u003e\u003cBA\u003e` + fp + `\u003c/BA\u003e"]}`},
		{`x\n` + b64, `x\n` + fp},
		{`{"UserCertificate":["` + b64 + `"]}`, `{"UserCertificate":["` + fp + `"]}`},
		{`{"Name":"alice","Guid":"e0000000-0000-4000-8000-000000000001"}`, `{"Name":"alice","Guid":"e0000000-0000-4000-8000-000000000001"}`},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%.60q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	// A body cut by the bound keeps no part of a token or byte array.
	if got := redactPartial(`{"x":1} eyJhbGciOiJIUzI1NiJ9.eyJhdWQ`); strings.Contains(got, "eyJ") {
		t.Errorf("a cut token survives: %q", got)
	}
	if got := redactPartial(`{"Data":[48,130,1,10,0,1,2`); strings.Contains(got, "130") {
		t.Errorf("a cut byte array survives: %q", got)
	}
}

func decimal(b []byte) string {
	var s []string
	for _, x := range b {
		s = append(s, strconv.Itoa(int(x)))
	}
	return strings.Join(s, ",")
}
