package exchangetest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
)

// strictEnv is an emulator in its default (strict) settings, or as cfg
// says, with a token for it.
func strictEnv(t *testing.T, cfg exchangetest.Config) (*exchangetest.Server, func(body string, hdr map[string]string) (int, []byte, http.Header)) {
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	cfg.Tokens, cfg.TenantID = tokens, tenant
	exo := exchangetest.NewServer(cfg)
	t.Cleanup(exo.Close)
	exo.Add(exchangetest.Recipient{Guid: "0a000000-0000-0000-0000-000000000001", PrimarySmtpAddress: "alice@contoso.com"})
	now := time.Now()
	tok := tokens.Issue(azauthtest.Claims{Audience: exo.URL, TenantID: tenant, AppID: "app", IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	client := exo.Client()
	return exo, func(body string, hdr map[string]string) (int, []byte, http.Header) {
		req, _ := http.NewRequest(http.MethodPost, exo.URL+"/adminapi/beta/"+tenant+"/InvokeCommand", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-AnchorMailbox", exchangetest.AnchorPrefix+tenant)
		req.Header.Set("client-request-id", "00000000-0000-4000-8000-000000000001")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
}

const typedNull = `{"CmdletInput":{"CmdletName":"Set-Mailbox","Parameters":{"Identity":"alice@contoso.com","UserCertificate@odata.type":"#Collection(Exchange.ByteArrayType)","UserCertificate":null}}}`

// TestStrictNullRule: an annotated null is refused by default and
// accepted with AllowTypedNull; a plain null is always accepted.
func TestStrictNullRule(t *testing.T) {
	_, post := strictEnv(t, exchangetest.Config{})
	if st, b, _ := post(typedNull, nil); st != http.StatusBadRequest || !strings.Contains(string(b), "null") {
		t.Errorf("annotated null: %d %s, want 400", st, b)
	}
	if st, b, _ := post(strings.Replace(typedNull, `"UserCertificate@odata.type":"#Collection(Exchange.ByteArrayType)",`, "", 1), nil); st != 200 {
		t.Errorf("plain null: %d %s, want 200", st, b)
	}
	_, lenient := strictEnv(t, exchangetest.Config{AllowTypedNull: true})
	if st, b, _ := lenient(typedNull, nil); st != 200 {
		t.Errorf("annotated null with AllowTypedNull: %d %s, want 200", st, b)
	}
}

// TestCLIXMLAndWarningsAndRateLimitHeaders: a per-type cmdlet asked for in
// CLIXML at level Partial answers CLIXML with <BA> elements; a write that
// changes nothing carries @adminapi.warnings; writes carry Rate-Limit-*.
func TestCLIXMLAndWarningsAndRateLimitHeaders(t *testing.T) {
	_, post := strictEnv(t, exchangetest.Config{})
	set := `{"CmdletInput":{"CmdletName":"Set-Mailbox","Parameters":{"Identity":"alice@contoso.com","UserCertificate@odata.type":"#Collection(Exchange.ByteArrayType)","UserCertificate":[{"Data":[48,3,2,1,1]}]}}}`
	for i, wantWarn := range []bool{false, true} {
		st, b, h := post(set, nil)
		var a struct {
			Warnings []string `json:"@adminapi.warnings"`
		}
		_ = json.Unmarshal(b, &a)
		if st != 200 || (len(a.Warnings) > 0) != wantWarn {
			t.Errorf("write %d: %d %s, want warnings %v", i, st, b, wantWarn)
		}
		if h.Get("Rate-Limit-Remaining") == "" || h.Get("Rate-Limit-Reset") == "" || h.Get("Rate-Limit-Limit") == "" {
			t.Errorf("write %d: no Rate-Limit-* headers: %v", i, h)
		}
	}
	get := `{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{"Identity":"alice@contoso.com"}}}`
	for _, tc := range []struct {
		level, want string
	}{{"Partial", "<BA>MAMCAQE=</BA>"}, {"", "<S>System.Byte[]</S>"}} {
		_, b, _ := post(get, map[string]string{"X-ResponseFormat": "clixml", "X-SerializationLevel": tc.level})
		var a struct {
			Value []string `json:"value"`
		}
		if err := json.Unmarshal(b, &a); err != nil || len(a.Value) != 1 || !strings.HasPrefix(a.Value[0], "<Objs ") || !strings.Contains(a.Value[0], tc.want) {
			t.Errorf("level %q: %s, want a CLIXML document holding %s", tc.level, b, tc.want)
		}
	}
	_, b, _ := post(get, nil)
	if !strings.Contains(string(b), `"UserCertificate":["System.Byte[]"]`) {
		t.Errorf("JSON: %s, want the certificate as \"System.Byte[]\"", b)
	}
}
