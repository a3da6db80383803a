package exchange_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.yaml.in/yaml/v3"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
)

const (
	tenant   = "00000000-0000-0000-0000-00000000c0de"
	org      = "contoso.onmicrosoft.com"
	clientID = "11111111-1111-1111-1111-111111111111"
	secret   = "s3cret"
)

type env struct {
	tokens *azauthtest.Server
	exo    *exchangetest.Server
	sink   *exchange.Sink
}

// newEnv starts a token server and an Exchange emulator and builds a sink
// against them through the real azidentity client.
func newEnv(t testing.TB, ecfg exchangetest.Config, mod func(*exchange.Config)) *env {
	t.Helper()
	return newEnvLog(t, ecfg, mod, nil)
}

// newEnvLog is newEnv with a logger for the sink. An emulator with host
// names (Config.Host, RegionalHost) is reached through a transport routed
// to it (exchangetest.Server.Route): nothing leaves the machine.
func newEnvLog(t testing.TB, ecfg exchangetest.Config, mod func(*exchange.Config), logger *slog.Logger) *env {
	t.Helper()
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	tokens.AddSecretApp(tenant, clientID, secret)
	ecfg.Tokens = tokens
	ecfg.TenantID = tenant
	ecfg.Organization = org
	exo := exchangetest.NewServer(ecfg)
	t.Cleanup(exo.Close)
	t.Setenv("TEST_EXCHANGE_SECRET", secret)
	client := tokens.Client() // trusts both emulators: they share httptest's certificate
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 16
	if ecfg.Host != "" || ecfg.RegionalHost != "" || ecfg.NextLinkHost != "" {
		exo.Route(client.Transport.(*http.Transport))
	}
	cfg := exchange.Config{
		Config: azauth.Config{
			TenantID:  tenant,
			ClientID:  clientID,
			Auth:      azauth.Auth{Method: azauth.ClientSecret, SecretEnv: "TEST_EXCHANGE_SECRET"},
			Endpoints: azauth.Endpoints{Login: tokens.URL, Exchange: exo.URL},
		},
		Organization:   org,
		HTTPClient:     client,
		RequestTimeout: 2 * time.Second,
		Retry:          exchange.RetryPolicy{Base: time.Millisecond, Cap: 10 * time.Millisecond, MaxTries: 5},
	}
	if mod != nil {
		mod(&cfg)
	}
	cfg.Logger = logger
	sink, err := exchange.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{tokens: tokens, exo: exo, sink: sink}
}

func seed() []exchangetest.Recipient {
	return []exchangetest.Recipient{
		{Guid: "0a000000-0000-0000-0000-000000000001", PrimarySmtpAddress: "alice@contoso.com", EmailAddresses: []string{"smtp:a.liddell@contoso.com"}},
		{Guid: "0a000000-0000-0000-0000-000000000002", PrimarySmtpAddress: "bob@contoso.com", RecipientTypeDetails: "MailUser"},
		{Guid: "0a000000-0000-0000-0000-000000000003", PrimarySmtpAddress: "carol@partner.example", RecipientTypeDetails: "MailContact"},
		{Guid: "0a000000-0000-0000-0000-000000000004", PrimarySmtpAddress: "dave@contoso.com", IsDirSynced: true},
		{Guid: "0a000000-0000-0000-0000-000000000005", PrimarySmtpAddress: "shared@contoso.com", RecipientTypeDetails: "SharedMailbox"},
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestFind(t *testing.T) {
	for _, lookup := range []exchange.LookupMode{exchange.LookupPreload, exchange.LookupPerEntry} {
		t.Run(string(lookup), func(t *testing.T) {
			e := newEnv(t, exchangetest.Config{}, func(c *exchange.Config) { c.Lookup = lookup; c.PageSize = 2 })
			e.exo.Add(seed()...)
			tests := []struct {
				name     string
				entry    directory.Entry
				id       string
				kind     string
				readOnly bool
			}{
				{"mail", directory.Entry{DN: "cn=alice", Mail: "Alice@Contoso.com"}, "0a000000-0000-0000-0000-000000000001", "UserMailbox", false},
				{"proxy alias", directory.Entry{DN: "cn=alice2", ProxyAddresses: []string{"X500:/o=x", "smtp:a.liddell@contoso.com"}}, "0a000000-0000-0000-0000-000000000001", "UserMailbox", false},
				{"upn", directory.Entry{DN: "cn=bob", UserPrincipalName: "bob@contoso.com"}, "0a000000-0000-0000-0000-000000000002", "MailUser", false},
				{"contact", directory.Entry{DN: "cn=carol", Mail: "carol@partner.example"}, "0a000000-0000-0000-0000-000000000003", "MailContact", false},
				{"synced", directory.Entry{DN: "cn=dave", Mail: "dave@contoso.com"}, "0a000000-0000-0000-0000-000000000004", "UserMailbox", true},
				{"shared mailbox", directory.Entry{DN: "cn=shared", Mail: "shared@contoso.com"}, "0a000000-0000-0000-0000-000000000005", "SharedMailbox", false},
				{"second address matches", directory.Entry{DN: "cn=x", Mail: "nobody@contoso.com", ProxyAddresses: []string{"SMTP:bob@contoso.com"}}, "0a000000-0000-0000-0000-000000000002", "MailUser", false},
			}
			for _, tt := range tests {
				r, err := e.sink.Find(ctx(t), &tt.entry)
				if err != nil {
					t.Errorf("%s: %v", tt.name, err)
					continue
				}
				if r.ID != tt.id || r.Kind != tt.kind || (r.ReadOnly != "") != tt.readOnly {
					t.Errorf("%s: got %+v, want id %s kind %s readOnly %v", tt.name, r, tt.id, tt.kind, tt.readOnly)
				}
			}
			for _, missing := range []directory.Entry{{DN: "cn=nobody", Mail: "nobody@contoso.com"}, {DN: "cn=empty"}} {
				if r, err := e.sink.Find(ctx(t), &missing); !errors.Is(err, cloud.ErrNotFound) {
					t.Errorf("%s: got %+v, %v; want ErrNotFound", missing.DN, r, err)
				}
			}
			if lookup == exchange.LookupPreload {
				// 5 recipients, 2 a page: 3 pages, loaded once for all the finds.
				if got := e.exo.Requests("Get-Recipient"); got != 3 {
					t.Errorf("Get-Recipient requests = %d, want 3 (one paged load)", got)
				}
			}
		})
	}
}

func TestWriteAndReadBack(t *testing.T) {
	cert1 := bytes.Repeat([]byte{0x30, 0x82, 0x01, 0xff}, 100)
	cert2 := []byte{0x30, 0x03, 0x02, 0x01, 0x00}
	blob := []byte{0x30, 0x80, 0x06, 0x09, 0x00, 0x00}
	want := cloud.Certificates{UserCertificate: [][]byte{cert1, cert2}, UserSMIMECertificate: [][]byte{blob}}
	modes := []struct {
		name     string
		cfg      exchangetest.Config
		readable bool
	}{
		// Neither CLIXML nor the entity carries bytes, and JSON renders
		// "System.Byte[]".
		{"placeholder", exchangetest.Config{ReadBack: exchangetest.ReadBackPlaceholder, CLIXML: exchangetest.CLIXMLPlaceholder, EntityPlaceholder: true}, false},
		// The service ignores X-ResponseFormat and answers JSON.
		{"json base64", exchangetest.Config{ReadBack: exchangetest.ReadBackBase64, CLIXML: exchangetest.CLIXMLIgnored}, true},
		{"json byte array", exchangetest.Config{ReadBack: exchangetest.ReadBackByteArray, CLIXML: exchangetest.CLIXMLIgnored}, true},
		// The emulator's default: CLIXML with <BA> elements.
		{"clixml", exchangetest.Config{}, true},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t, m.cfg, nil)
			e.exo.Add(seed()...)
			for _, addr := range []string{"alice@contoso.com", "bob@contoso.com", "carol@partner.example"} {
				r, err := e.sink.Find(ctx(t), &directory.Entry{DN: "cn=" + addr, Mail: addr})
				if err != nil {
					t.Fatal(err)
				}
				if err := e.sink.Write(ctx(t), r, want); err != nil {
					t.Fatalf("%s: %v", addr, err)
				}
				got, _ := e.exo.Recipient(addr)
				if !slices.EqualFunc(got.UserCertificate, want.UserCertificate, bytes.Equal) || !slices.EqualFunc(got.UserSMimeCertificate, want.UserSMIMECertificate, bytes.Equal) {
					t.Errorf("%s: service holds %d/%d values, not what was written", addr, len(got.UserCertificate), len(got.UserSMimeCertificate))
				}
				c, err := e.sink.Current(ctx(t), r)
				if !m.readable {
					if !errors.Is(err, cloud.ErrUnreadable) {
						t.Errorf("%s: Current = %v, want ErrUnreadable", addr, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", addr, err)
				}
				if !slices.EqualFunc(c.UserCertificate, want.UserCertificate, bytes.Equal) || !slices.EqualFunc(c.UserSMIMECertificate, want.UserSMIMECertificate, bytes.Equal) {
					t.Errorf("%s: read back %d/%d values, not what was written", addr, len(c.UserCertificate), len(c.UserSMIMECertificate))
				}
				// Clearing: no values writes null.
				if err := e.sink.Write(ctx(t), r, cloud.Certificates{}); err != nil {
					t.Fatal(err)
				}
				if c, err := e.sink.Current(ctx(t), r); err != nil || c.Len() != 0 {
					t.Errorf("%s: after clearing: %d values, %v", addr, c.Len(), err)
				}
			}
			// Each type's own cmdlets were used; once the service answered
			// without bytes (alice's mailbox), the sink stopped asking.
			asked := []string{"Set-Mailbox", "Set-MailUser", "Set-MailContact", "Get-Mailbox", "Get-MailUser", "Get-MailContact"}
			if !m.readable {
				asked = asked[:4]
				for _, cmd := range []string{"Get-MailUser", "Get-MailContact"} {
					if n := e.exo.Requests(cmd); n != 0 {
						t.Errorf("%s called %d times after the service was seen not to return bytes", cmd, n)
					}
				}
			}
			for _, cmd := range asked {
				if e.exo.Requests(cmd) == 0 {
					t.Errorf("%s never called", cmd)
				}
			}
		})
	}
}

func TestReadBackNever(t *testing.T) {
	e := newEnv(t, exchangetest.Config{ReadBack: exchangetest.ReadBackByteArray}, func(c *exchange.Config) { c.ReadBack = exchange.ReadBackNever })
	e.exo.Add(seed()...)
	r, err := e.sink.Find(ctx(t), &directory.Entry{Mail: "alice@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	before := e.exo.Requests("")
	if _, err := e.sink.Current(ctx(t), r); !errors.Is(err, cloud.ErrUnreadable) {
		t.Errorf("Current = %v, want ErrUnreadable", err)
	}
	if n := e.exo.Requests("") - before; n != 0 {
		t.Errorf("Current sent %d requests, want 0", n)
	}
}

func TestNotWritable(t *testing.T) {
	e := newEnv(t, exchangetest.Config{}, nil)
	e.exo.Add(seed()...)
	r, err := e.sink.Find(ctx(t), &directory.Entry{Mail: "dave@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ReadOnly == "" {
		t.Fatal("synced recipient found without ReadOnly")
	}
	c := cloud.Certificates{UserCertificate: [][]byte{{0x30, 0x00}}}
	var nw *cloud.NotWritableError
	// Known read-only: refused without a request.
	if err := e.sink.Write(ctx(t), r, c); !errors.As(err, &nw) || !errors.Is(err, cloud.ErrNotWritable) {
		t.Errorf("Write to ReadOnly recipient = %v, want *NotWritableError", err)
	}
	if n := e.exo.Requests("Set-Mailbox"); n != 0 {
		t.Errorf("%d Set-Mailbox sent for a ReadOnly recipient", n)
	}
	// Not known as read-only (stale index): the service refuses, once, and
	// the refusal is reported with its text.
	r.ReadOnly = ""
	err = e.sink.Write(ctx(t), r, c)
	if !errors.As(err, &nw) || !bytes.Contains([]byte(nw.Reason), []byte("write scope")) {
		t.Errorf("Write = %v, want *NotWritableError with the service's reason", err)
	}
	if n := e.exo.Requests("Set-Mailbox"); n != 1 {
		t.Errorf("Set-Mailbox sent %d times, want 1 (no retry)", n)
	}
	if got, _ := e.exo.Recipient("dave@contoso.com"); len(got.UserCertificate) != 0 {
		t.Error("synced recipient was changed")
	}
}

func TestLimits(t *testing.T) {
	e := newEnv(t, exchangetest.Config{MaxValues: 2, MaxValueSize: 64}, nil)
	e.exo.Add(seed()...)
	r, err := e.sink.Find(ctx(t), &directory.Entry{Mail: "alice@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	v := func(n int) []byte { return bytes.Repeat([]byte{0x30}, n) }
	many := make([][]byte, exchange.MaxValues+1)
	for i := range many {
		many[i] = v(10)
	}
	tests := []struct {
		name    string
		c       cloud.Certificates
		limit   bool // refused by the sink, nothing sent
		service bool // refused by the service
	}{
		{"over the sink's value limit", cloud.Certificates{UserCertificate: many}, true, false},
		{"over the sink's size limit", cloud.Certificates{UserSMIMECertificate: [][]byte{v(exchange.MaxValueSize + 1)}}, true, false},
		{"over the service's value limit", cloud.Certificates{UserCertificate: [][]byte{v(1), v(2), v(3)}}, false, true},
		{"over the service's size limit", cloud.Certificates{UserSMIMECertificate: [][]byte{v(65)}}, false, true},
		{"within", cloud.Certificates{UserCertificate: [][]byte{v(1), v(2)}, UserSMIMECertificate: [][]byte{v(64)}}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.exo.Requests("Set-Mailbox")
			err := e.sink.Write(ctx(t), r, tt.c)
			sent := e.exo.Requests("Set-Mailbox") - before
			var le *exchange.LimitError
			var ce *exchange.CmdletError
			switch {
			case tt.limit:
				if !errors.As(err, &le) || !errors.Is(err, exchange.ErrLimit) || sent != 0 {
					t.Errorf("err %v, %d sent; want *LimitError and nothing sent", err, sent)
				}
			case tt.service:
				if !errors.As(err, &ce) || ce.Status != 400 || sent != 1 {
					t.Errorf("err %v, %d sent; want a 400 CmdletError after one request", err, sent)
				}
			default:
				if err != nil || sent != 1 {
					t.Errorf("err %v, %d sent; want success after one request", err, sent)
				}
			}
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		fault    exchangetest.Fault
		ok       bool
		requests int
		timeout  time.Duration
	}{
		{"500 then success", exchangetest.Fault{Kind: exchangetest.FaultStatus}, true, 2, 0},
		{"502 twice", exchangetest.Fault{Kind: exchangetest.FaultStatus, Status: 502, Times: 2}, true, 3, 0},
		{"503 with Retry-After", exchangetest.Fault{Kind: exchangetest.FaultUnavailable, RetryAfter: 20 * time.Millisecond}, true, 2, 0},
		{"429 concurrency", exchangetest.Fault{Kind: exchangetest.FaultThrottle, RetryAfter: 15 * time.Millisecond, Times: 3}, true, 4, 0},
		{"dropped connection", exchangetest.Fault{Kind: exchangetest.FaultDrop}, true, 2, 0},
		{"a 200 whose JSON stops short", exchangetest.Fault{Kind: exchangetest.FaultCutBody}, true, 2, 0},
		{"timeout", exchangetest.Fault{Kind: exchangetest.FaultTimeout}, true, 2, 100 * time.Millisecond},
		{"slow but in time", exchangetest.Fault{Kind: exchangetest.FaultSlow, Delay: 30 * time.Millisecond}, true, 1, 0},
		{"slower than the timeout", exchangetest.Fault{Kind: exchangetest.FaultSlow, Delay: 300 * time.Millisecond}, true, 2, 100 * time.Millisecond},
		{"@adminapi.errors in a 200", exchangetest.Fault{Kind: exchangetest.FaultAdminAPIError}, false, 1, 0},
		{"400 is not retried", exchangetest.Fault{Kind: exchangetest.FaultStatus, Status: 400}, false, 1, 0},
		{"500 for ever", exchangetest.Fault{Kind: exchangetest.FaultStatus, Times: 100}, false, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, exchangetest.Config{}, func(c *exchange.Config) {
				if tt.timeout > 0 {
					c.RequestTimeout = tt.timeout
				}
			})
			e.exo.Add(seed()...)
			r, err := e.sink.Find(ctx(t), &directory.Entry{Mail: "bob@contoso.com"})
			if err != nil {
				t.Fatal(err)
			}
			tt.fault.Cmdlet = "Set-MailUser"
			e.exo.Fail(tt.fault)
			want := cloud.Certificates{UserCertificate: [][]byte{{0x30, 0x01, 0x00}}}
			err = e.sink.Write(ctx(t), r, want)
			if (err == nil) != tt.ok {
				t.Fatalf("Write = %v, want ok=%v", err, tt.ok)
			}
			var ids = map[string]bool{}
			n := 0
			for _, q := range e.exo.Log() {
				if q.Cmdlet == "Set-MailUser" {
					n++
					ids[q.ClientRequestID] = true
				}
			}
			if n != tt.requests {
				t.Errorf("Set-MailUser sent %d times, want %d", n, tt.requests)
			}
			if len(ids) != 1 {
				t.Errorf("retries used %d client-request-ids, want the same one", len(ids))
			}
			wantWrites := 0
			if tt.ok {
				wantWrites = 1
			}
			if w := e.exo.Writes("bob@contoso.com"); w != wantWrites {
				t.Errorf("applied %d writes, want %d", w, wantWrites)
			}
			if !tt.ok {
				var ce *exchange.CmdletError
				if !errors.As(err, &ce) || ce.Cmdlet != "Set-MailUser" || ce.RequestID == "" {
					t.Errorf("error %v: want a *CmdletError naming the cmdlet and request id", err)
				}
			}
		})
	}
}

func TestThrottledWritesAppliedOnce(t *testing.T) {
	// A budget of 10 writes per 2 s of service time, with the clock 20x
	// faster: 100 ms windows. 60 recipients need 6 windows.
	// Without Rate-Limit-* headers, so that the 429 path is what is tested
	// (pacing on them: TestRateLimitPacesBefore429).
	e := newEnv(t, exchangetest.Config{Budget: 10, Window: 2 * time.Second, TimeScale: 20, NoRateLimitHeaders: true}, func(c *exchange.Config) {
		c.Retry.MaxTries = 20
	})
	var rs []exchangetest.Recipient
	for i := range 60 {
		rs = append(rs, exchangetest.Recipient{Guid: fmt.Sprintf("1b000000-0000-0000-0000-%012d", i), PrimarySmtpAddress: fmt.Sprintf("user%d@contoso.com", i)})
	}
	e.exo.Add(rs...)
	var wg sync.WaitGroup
	errs := make(chan error, len(rs))
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.sink.Find(ctx(t), &directory.Entry{Mail: rs[i].PrimarySmtpAddress})
			if err == nil {
				err = e.sink.Write(ctx(t), r, cloud.Certificates{UserCertificate: [][]byte{{0x30, byte(i)}}})
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	counts := e.exo.WriteCounts()
	for _, r := range rs {
		if counts[r.Guid] != 1 {
			t.Errorf("%s written %d times, want 1", r.PrimarySmtpAddress, counts[r.Guid])
		}
	}
	if e.exo.Throttled() == 0 {
		t.Error("the budget never throttled: the test does not test throttling")
	}
	st := e.sink.Stats()
	t.Logf("60 writes: %d Set-Mailbox requests, %d throttled, sink stats %+v", e.exo.Requests("Set-Mailbox"), e.exo.Throttled(), st)
}

func TestWrongAudience(t *testing.T) {
	e := newEnv(t, exchangetest.Config{}, nil)
	e.exo.Add(seed()...)
	e.tokens.SetAudience(tenant, clientID, "https://graph.microsoft.com")
	_, err := e.sink.Find(ctx(t), &directory.Entry{Mail: "alice@contoso.com"})
	if !errors.Is(err, exchange.ErrUnauthorized) {
		t.Fatalf("Find = %v, want ErrUnauthorized", err)
	}
	log := e.exo.Log()
	if len(log) != 1 || log[0].Status != 401 {
		t.Errorf("service log %+v, want one request refused with 401", log)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, exchangetest.Config{}, func(c *exchange.Config) { c.RequestTimeout = time.Minute })
	e.exo.Add(seed()...)
	r, err := e.sink.Find(ctx(t), &directory.Entry{Mail: "alice@contoso.com"})
	if err != nil {
		t.Fatal(err)
	}
	e.exo.Fail(exchangetest.Fault{Cmdlet: "Set-Mailbox", Kind: exchangetest.FaultTimeout})
	c, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	err = e.sink.Write(c, r, cloud.Certificates{UserCertificate: [][]byte{{0x30, 0x00}}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Write = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled Write returned after %v", d)
	}
}

func TestConfigYAML(t *testing.T) {
	b, err := os.ReadFile("testdata/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sink struct {
			Exchange exchange.Config `yaml:"exchange"`
		} `yaml:"sink"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	c := doc.Sink.Exchange
	if c.TenantID != "00000000-0000-0000-0000-000000000000" || c.Organization != org || c.ClientID != clientID ||
		c.Auth.Method != azauth.ClientSecret || c.Auth.SecretEnv != "SMIMESYNC_CLIENT_SECRET" || c.Cloud != azauth.USGovHigh ||
		c.Concurrency != 4 || c.RequestTimeout != 30*time.Second || c.Retry != (exchange.RetryPolicy{Base: 500 * time.Millisecond, Cap: 30 * time.Second, MaxTries: 6}) ||
		c.Lookup != exchange.LookupPerEntry || c.ReadBack != exchange.ReadBackNever {
		t.Errorf("decoded %+v", c)
	}
	t.Setenv("SMIMESYNC_CLIENT_SECRET", "x")
	if _, err := exchange.New(c); err != nil {
		t.Errorf("New: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	base := exchange.Config{Config: azauth.Config{TenantID: tenant, ClientID: clientID, Auth: azauth.Auth{SecretEnv: "TEST_NEW_SECRET"}}}
	t.Setenv("TEST_NEW_SECRET", "x")
	tests := []struct {
		name string
		mod  func(*exchange.Config)
	}{
		{"no tenant", func(c *exchange.Config) { c.TenantID = "" }},
		{"bad organization", func(c *exchange.Config) { c.Organization = "contoso.com/../x" }},
		{"bad lookup", func(c *exchange.Config) { c.Lookup = "guess" }},
		{"bad read_back", func(c *exchange.Config) { c.ReadBack = "sometimes" }},
		{"bad cloud", func(c *exchange.Config) { c.Cloud = "mars" }},
	}
	for _, tt := range tests {
		c := base
		tt.mod(&c)
		if _, err := exchange.New(c); !errors.Is(err, exchange.ErrConfig) {
			t.Errorf("%s: New = %v, want ErrConfig", tt.name, err)
		}
	}
}

// staticCred hands out a fixed token without signing in.
type staticCred struct{}

func (staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestPermanentTransportErrorsNotRetried: a server certificate that does not
// verify and a host DNS says does not exist fail at once; a DNS failure that
// may pass is retried.
func TestPermanentTransportErrorsNotRetried(t *testing.T) {
	dnsDial := func(notFound bool) *http.Client {
		return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, &net.DNSError{Err: "no such host", Name: "outlook.example", IsNotFound: notFound, IsTemporary: !notFound}
		}}}
	}
	tests := []struct {
		name     string
		client   *http.Client
		requests int64
		check    func(error) bool
	}{
		{"untrusted certificate", &http.Client{Transport: &http.Transport{}}, 1, func(err error) bool {
			var cve *tls.CertificateVerificationError
			return errors.As(err, &cve)
		}},
		{"no such host", dnsDial(true), 1, func(err error) bool {
			var de *net.DNSError
			return errors.As(err, &de) && de.IsNotFound
		}},
		{"temporary DNS failure", dnsDial(false), 5, func(err error) bool { return errors.Is(err, exchange.ErrRetriesExhausted) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, exchangetest.Config{}, func(c *exchange.Config) {
				c.Credential = staticCred{}
				c.HTTPClient = tt.client
				c.Lookup = exchange.LookupPerEntry
			})
			_, err := e.sink.Find(ctx(t), &directory.Entry{DN: "cn=alice", Mail: "alice@contoso.com"})
			if err == nil || !tt.check(err) {
				t.Fatalf("Find = %v", err)
			}
			if st := e.sink.Stats(); st.Requests != tt.requests || st.Retries != tt.requests-1 {
				t.Fatalf("stats %+v, want %d requests", st, tt.requests)
			}
		})
	}
}

// TestFailedIndexLoadIsRemembered: a failed index load answers the next
// Finds with its error instead of being repeated for each.
func TestFailedIndexLoadIsRemembered(t *testing.T) {
	e := newEnv(t, exchangetest.Config{}, nil)
	e.exo.Add(seed()...)
	e.exo.Fail(exchangetest.Fault{Cmdlet: "Get-Recipient", Kind: exchangetest.FaultStatus, Status: 403, Times: 10})
	for _, mail := range []string{"alice@contoso.com", "bob@contoso.com", "carol@partner.example"} {
		_, err := e.sink.Find(ctx(t), &directory.Entry{DN: "cn=" + mail, Mail: mail})
		var ce *exchange.CmdletError
		if !errors.As(err, &ce) || ce.Status != 403 {
			t.Fatalf("Find %s = %v, want the 403", mail, err)
		}
	}
	if n := e.exo.Requests("Get-Recipient"); n != 1 {
		t.Fatalf("%d Get-Recipient requests for 3 finds, want 1", n)
	}
}
