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

const tenant = "contoso.onmicrosoft.com"

// TestContract sends raw requests and checks the emulator holds the
// contract a sink must meet.
func TestContract(t *testing.T) {
	tokens := azauthtest.NewServer()
	defer tokens.Close()
	exo := exchangetest.NewServer(exchangetest.Config{Tokens: tokens, TenantID: tenant})
	defer exo.Close()
	exo.Add(exchangetest.Recipient{Guid: "0a000000-0000-0000-0000-000000000001", PrimarySmtpAddress: "alice@contoso.com"})
	now := time.Now()
	good := tokens.Issue(azauthtest.Claims{Audience: exo.URL, TenantID: tenant, AppID: "app", IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	graph := tokens.Issue(azauthtest.Claims{Audience: "https://graph.microsoft.com", TenantID: tenant, AppID: "app", IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	other := tokens.Issue(azauthtest.Claims{Audience: exo.URL, TenantID: "fabrikam.example", AppID: "app", IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	set := func(params string) string {
		return `{"CmdletInput":{"CmdletName":"Set-Mailbox","Parameters":{"Identity":"alice@contoso.com",` + params + `}}}`
	}
	tests := []struct {
		name    string
		token   string
		anchor  string
		tenant  string
		body    string
		status  int
		message string
	}{
		{"ok", good, "", "", set(`"UserCertificate@odata.type":"#Collection(Exchange.ByteArrayType)","UserCertificate":[{"Data":[48,0]}]`), 200, ""},
		{"null clears", good, "", "", set(`"UserCertificate":null`), 200, ""},
		{"no token", "", "", "", set(`"UserCertificate":null`), 401, "missing"},
		{"wrong audience", graph, "", "", set(`"UserCertificate":null`), 401, "audience"},
		{"other tenant's token", other, "", "", set(`"UserCertificate":null`), 401, "tenant"},
		{"unknown tenant in URL", good, "", "fabrikam.example", set(`"UserCertificate":null`), 404, "not served"},
		{"no anchor mailbox", good, "-", "", set(`"UserCertificate":null`), 400, "X-AnchorMailbox"},
		{"base64 instead of bytes", good, "", "", set(`"UserCertificate":["MAA="]`), 400, "argument transformation"},
		{"byte out of range", good, "", "", set(`"UserCertificate":[{"Data":[300]}]`), 400, "not 0..255"},
		{"wrong annotation", good, "", "", set(`"UserCertificate@odata.type":"#Collection(String)","UserCertificate":null`), 400, "ByteArrayType"},
		{"unknown parameter", good, "", "", set(`"Certificate":null`), 400, "parameter name"},
		{"unknown cmdlet", good, "", "", `{"CmdletInput":{"CmdletName":"Remove-Mailbox","Parameters":{"Identity":"alice@contoso.com"}}}`, 403, "not recognized"},
		{"missing object", good, "", "", `{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{"Identity":"nobody@contoso.com"}}}`, 404, "couldn't be found"},
		{"wrong type", good, "", "", `{"CmdletInput":{"CmdletName":"Get-MailUser","Parameters":{"Identity":"alice@contoso.com"}}}`, 404, "couldn't be found"},
		{"not a cmdlet body", good, "", "", `{"Set-Mailbox":{}}`, 400, "CmdletInput"},
	}
	client := exo.Client()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := tenant
			if tt.tenant != "" {
				tn = tt.tenant
			}
			req, _ := http.NewRequest(http.MethodPost, exo.URL+"/adminapi/beta/"+tn+"/InvokeCommand", strings.NewReader(tt.body))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.anchor != "-" {
				req.Header.Set("X-AnchorMailbox", exchangetest.AnchorPrefix+tenant)
			}
			req.Header.Set("client-request-id", "00000000-0000-4000-8000-000000000001")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b, tt.status)
			}
			if tt.status != 200 {
				var e struct {
					Error struct {
						Code    string `json:"code"`
						Details []struct {
							Message string `json:"message"`
						} `json:"details"`
					} `json:"error"`
				}
				if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || len(e.Error.Details) == 0 {
					t.Fatalf("error body %s is not the OData error shape", b)
				}
				if !strings.Contains(e.Error.Details[0].Message, tt.message) {
					t.Errorf("message %q does not contain %q", e.Error.Details[0].Message, tt.message)
				}
			}
		})
	}
	if r, _ := exo.Recipient("alice@contoso.com"); r.UserCertificate != nil || exo.Writes("alice@contoso.com") != 2 {
		t.Errorf("alice: %d values after %d writes; want none after 2 (set, then cleared)", len(r.UserCertificate), exo.Writes("alice@contoso.com"))
	}
}
