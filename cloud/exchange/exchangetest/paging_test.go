package exchangetest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
)

// pager sends listing requests to an emulator, as a sink does.
type pager struct {
	t      *testing.T
	exo    *exchangetest.Server
	client *http.Client
	token  string
}

func newPager(t *testing.T, cfg exchangetest.Config) *pager {
	t.Helper()
	tokens := azauthtest.NewServer()
	t.Cleanup(tokens.Close)
	cfg.Tokens, cfg.TenantID = tokens, tenant
	exo := exchangetest.NewServer(cfg)
	t.Cleanup(exo.Close)
	now := time.Now()
	token := tokens.Issue(azauthtest.Claims{Audience: exo.URL, TenantID: tenant, AppID: "app", IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	return &pager{t: t, exo: exo, client: exo.Client(), token: token}
}

// pagingGuid is the Guid of recipient i: in the order of i.
func pagingGuid(i int) string { return fmt.Sprintf("0b%06d-0000-0000-0000-000000000000", i) }

// seed adds the recipients of the given numbers: every fourth a mail user.
func (p *pager) seed(is ...int) {
	var rs []exchangetest.Recipient
	for _, i := range is {
		r := exchangetest.Recipient{Guid: pagingGuid(i), PrimarySmtpAddress: fmt.Sprintf("user%d@contoso.com", i)}
		if i%4 == 1 {
			r.RecipientTypeDetails = "MailUser"
		}
		rs = append(rs, r)
	}
	p.exo.Add(rs...)
}

// page asks url (the first page when empty) for cmdlet's listing with
// params, and returns the Guids listed and the next link; a status other
// than 200 returns its error message as next.
func (p *pager) page(url, cmdlet, params string, maxPage int) (guids []string, next string, status int) {
	p.t.Helper()
	if url == "" {
		url = p.exo.URL + "/adminapi/beta/" + tenant + "/InvokeCommand"
	}
	body := `{"CmdletInput":{"CmdletName":"` + cmdlet + `","Parameters":{` + params + `}}}`
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("X-AnchorMailbox", exchangetest.AnchorPrefix+tenant)
	req.Header.Set("client-request-id", "00000000-0000-4000-8000-000000000002")
	if maxPage > 0 {
		req.Header.Set("Prefer", fmt.Sprintf("odata.maxpagesize=%d", maxPage))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Details []struct {
					Message string `json:"message"`
				} `json:"details"`
			} `json:"error"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || len(e.Error.Details) == 0 {
			p.t.Fatalf("status %d: %s is not an OData error", resp.StatusCode, raw)
		}
		return nil, e.Error.Details[0].Message, resp.StatusCode
	}
	var out struct {
		Value []struct {
			Guid string `json:"Guid"`
		} `json:"value"`
		Next string `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		p.t.Fatalf("%s: %v", raw, err)
	}
	for _, v := range out.Value {
		guids = append(guids, v.Guid)
	}
	return guids, out.Next, resp.StatusCode
}

// list follows the listing to its end, and returns the sizes of its pages
// and every Guid listed.
func (p *pager) list(cmdlet, params string, maxPage int) (sizes []int, guids []string) {
	p.t.Helper()
	url := ""
	for {
		g, next, status := p.page(url, cmdlet, params, maxPage)
		if status != http.StatusOK {
			p.t.Fatalf("%s page %d: %d %s", cmdlet, len(sizes)+1, status, next)
		}
		sizes, guids = append(sizes, len(g)), append(guids, g...)
		if next == "" {
			return sizes, guids
		}
		url = next
	}
}

func guidsOf(is ...int) []string {
	var out []string
	for _, i := range is {
		out = append(out, pagingGuid(i))
	}
	return out
}

func numbers(from, to int, keep func(int) bool) []int {
	var out []int
	for i := from; i < to; i++ {
		if keep == nil || keep(i) {
			out = append(out, i)
		}
	}
	return out
}

// TestPaging: a listing comes in pages of the size asked for (capped by
// MaxPageSize), in Guid order, each recipient once, stopping at ResultSize,
// and filtered by cmdlet and RecipientType.
func TestPaging(t *testing.T) {
	p := newPager(t, exchangetest.Config{MaxPageSize: 7})
	p.seed(numbers(0, 25, nil)...)
	all := guidsOf(numbers(0, 25, nil)...)
	mailUsers := guidsOf(numbers(0, 25, func(i int) bool { return i%4 == 1 })...)
	mailboxes := guidsOf(numbers(0, 25, func(i int) bool { return i%4 != 1 })...)
	tests := []struct {
		name, cmdlet, params string
		maxPage              int
		sizes                []int
		guids                []string
	}{
		{"pages of 10 capped at 7", "Get-Recipient", `"ResultSize":"Unlimited"`, 10, []int{7, 7, 7, 4}, all},
		{"pages of 5", "Get-Recipient", ``, 5, []int{5, 5, 5, 5, 5}, all},
		{"ResultSize 12", "Get-Recipient", `"ResultSize":12`, 5, []int{5, 5, 2}, all[:12]},
		{"ResultSize 10, a page's worth", "Get-Recipient", `"ResultSize":10`, 5, []int{5, 5}, all[:10]},
		{"mail users", "Get-MailUser", ``, 2, []int{2, 2, 2}, mailUsers},
		{"RecipientType", "Get-Recipient", `"RecipientType":["MailUser"]`, 4, []int{4, 2}, mailUsers},
		{"mailboxes", "Get-Mailbox", ``, 6, []int{6, 6, 6, 1}, mailboxes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.t = t
			sizes, guids := p.list(tt.cmdlet, tt.params, tt.maxPage)
			if !slices.Equal(sizes, tt.sizes) || !slices.Equal(guids, tt.guids) {
				t.Errorf("pages %v of %q, want %v of %q", sizes, guids, tt.sizes, tt.guids)
			}
		})
	}
}

// TestPagingWhileAdding: recipients added while a listing pages (before
// the page reached, among the pages to come) do not make it list a
// recipient twice or miss one it held throughout; those added after the
// page reached are listed.
func TestPagingWhileAdding(t *testing.T) {
	p := newPager(t, exchangetest.Config{})
	p.seed(numbers(0, 40, func(i int) bool { return i%2 == 0 })...) // 0, 2, …, 38
	first, next, _ := p.page("", "Get-Recipient", ``, 5)
	if !slices.Equal(first, guidsOf(0, 2, 4, 6, 8)) || next == "" {
		t.Fatalf("first page %q, next %q", first, next)
	}
	p.seed(1, 3, 5, 7, 11, 21) // three before the cursor, three after
	got := first
	for next != "" {
		var g []string
		var status int
		g, next, status = p.page(next, "Get-Recipient", ``, 5)
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, next)
		}
		got = append(got, g...)
	}
	want := guidsOf(append(numbers(0, 40, func(i int) bool { return i%2 == 0 }), 11, 21)...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
}

// TestPagingSkipToken: a skip token serves once, for the same request,
// until it expires; any other is refused with an OData error.
func TestPagingSkipToken(t *testing.T) {
	p := newPager(t, exchangetest.Config{})
	p.seed(numbers(0, 10, nil)...)
	const invalid = "The skip token is invalid or has expired."
	_, next, _ := p.page("", "Get-Recipient", ``, 3)
	if _, msg, status := p.page(next, "Get-Mailbox", ``, 3); status != http.StatusBadRequest || msg != invalid {
		t.Errorf("the token for another cmdlet: %d %q", status, msg)
	}
	_, next, _ = p.page("", "Get-Recipient", ``, 3)
	if _, msg, status := p.page(next, "Get-Recipient", `"ResultSize":5`, 3); status != http.StatusBadRequest || msg != invalid {
		t.Errorf("the token for other parameters: %d %q", status, msg)
	}
	_, next, _ = p.page("", "Get-Recipient", ``, 3)
	if g, _, status := p.page(next, "Get-Recipient", ``, 3); status != http.StatusOK || !slices.Equal(g, guidsOf(3, 4, 5)) {
		t.Errorf("the second page: %d %q", status, g)
	}
	if _, msg, status := p.page(next, "Get-Recipient", ``, 3); status != http.StatusBadRequest || msg != invalid {
		t.Errorf("the token again: %d %q", status, msg)
	}
	bad := next[:strings.Index(next, "$skiptoken=")] + "$skiptoken=999-Mw"
	if _, msg, status := p.page(bad, "Get-Recipient", ``, 3); status != http.StatusBadRequest || msg != invalid {
		t.Errorf("a token never given: %d %q", status, msg)
	}

	// Ten minutes of service time last 100 ms here.
	q := newPager(t, exchangetest.Config{TimeScale: 6000})
	q.seed(numbers(0, 10, nil)...)
	_, next, _ = q.page("", "Get-Recipient", ``, 3)
	time.Sleep(200 * time.Millisecond)
	if _, msg, status := q.page(next, "Get-Recipient", ``, 3); status != http.StatusBadRequest || msg != invalid {
		t.Errorf("an expired token: %d %q", status, msg)
	}
}
