package exchange

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/smimesync/go-smimesync/internal/retry"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// RetryPolicy says how a failed call is retried. Calls are retried on 429,
// 408, 500, 502, 503 and 504, on the service's "maximum number of
// concurrent requests" refusal, on per-request timeouts and on dropped
// connections; never on other 4xx answers, nor on failures another try
// cannot mend (a server certificate that does not verify, a host name
// that does not exist). A Retry-After header is obeyed;
// otherwise the wait is jittered exponential: a random time between half
// and all of min(Cap, Base·2^(try-1)).
type RetryPolicy struct {
	// Base is the first backoff (default DefaultRetryBase).
	Base time.Duration `yaml:"base"`
	// Cap bounds each backoff (default DefaultRetryCap).
	Cap time.Duration `yaml:"cap"`
	// MaxTries bounds the attempts of one call, the first included
	// (default DefaultRetryMaxTries).
	MaxTries int `yaml:"max_tries"`
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Base <= 0 {
		p.Base = DefaultRetryBase
	}
	if p.Cap <= 0 {
		p.Cap = DefaultRetryCap
	}
	if p.Cap < p.Base {
		p.Cap = p.Base
	}
	if p.MaxTries <= 0 {
		p.MaxTries = DefaultRetryMaxTries
	}
	return p
}

// backoff returns the wait before try+1 after try failures without a
// Retry-After.
func (p RetryPolicy) backoff(try int) time.Duration {
	return retry.Backoff(p.Base, p.Cap, try)
}

// acquire takes a slot among the requests in flight once g is open. A
// caller that got its slot while g closed (another worker was throttled
// meanwhile) gives it back and waits again, so that requests queued behind
// the concurrency limit do not all run into the same 429.
func (s *Sink) acquire(ctx context.Context, g *retry.Gate) error {
	for {
		if err := g.Wait(ctx); err != nil {
			return err
		}
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if g.Remaining(time.Now()) <= 0 {
			return nil
		}
		<-s.sem
	}
}

// anchorMailbox is the X-AnchorMailbox header of an app-only caller
// (FACTS.md: seen in public callers).
func anchorMailbox(tenant string) string {
	return "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@" + tenant
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// answer is one decoded answer of the endpoint: a page of an InvokeCommand
// answer, or an entity (whose own properties stay in Raw).
type answer struct {
	Value       []json.RawMessage `json:"value"`
	NextLink    string            `json:"@odata.nextLink"`
	AdminErrors json.RawMessage   `json:"@adminapi.errors"`
	Warnings    json.RawMessage   `json:"@adminapi.warnings"`
	// Raw is the whole body.
	Raw []byte `json:"-"`
}

type odataError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"details"`
		InnerError struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"innererror"`
	} `json:"error"`
}

// concurrencyText is the refusal the module retries although it is not a
// retryable status (FACTS.md).
const concurrencyText = "maximum number of concurrent requests per tenant"

// Response formats the sink asks for with X-ResponseFormat.
const (
	formatJSON   = "json"
	formatCLIXML = "clixml"
)

// request is one call to the endpoint, sent (and retried, and redirected)
// by [Sink.call].
type request struct {
	method   string // POST (InvokeCommand) or GET (an entity)
	url      string
	cmdlet   string // for the X-CmdletName header and errors
	identity string // for errors and logs
	body     []byte // nil for GET
	format   string // X-ResponseFormat of an InvokeCommand call
	write    bool   // runs under the write gate
}

func (q *request) name() string { return strings.TrimSpace(q.cmdlet + " " + q.identity) }

// invoke runs cmdlet with params, following @odata.nextLink, and hands each
// page's values to page. Each HTTP call is retried on its own; a page's
// call keeps its client-request-id across retries and redirects.
func (s *Sink) invoke(ctx context.Context, cmdlet string, params map[string]any, write bool, page func([]json.RawMessage) error) error {
	return s.invokeAs(ctx, formatJSON, cmdlet, params, write, func(a *answer) error { return page(a.Value) })
}

// invokeAs is invoke asking for the response format format, handing each
// whole page to page.
func (s *Sink) invokeAs(ctx context.Context, format, cmdlet string, params map[string]any, write bool, page func(*answer) error) error {
	body, err := json.Marshal(map[string]any{"CmdletInput": map[string]any{"CmdletName": cmdlet, "Parameters": params}})
	if err != nil {
		return fmt.Errorf("exchange: %s: encoding parameters: %w", cmdlet, err)
	}
	identity, _ := params["Identity"].(string)
	q := &request{method: http.MethodPost, url: s.endpoint() + s.invokePath, cmdlet: cmdlet, identity: identity, body: body, format: format, write: write}
	for {
		a, err := s.call(ctx, q)
		if err != nil {
			return err
		}
		if err := page(a); err != nil {
			return err
		}
		if a.NextLink == "" {
			return nil
		}
		// The next page is asked with the token: only of a host the token
		// may go to (the endpoint, or a host of its cloud; see
		// azauth.TokenHosts.Learn), whatever the answer names.
		next, err := neturl.Parse(a.NextLink)
		if err != nil {
			return fmt.Errorf("exchange: %s: @odata.nextLink is not a URL: %w", q.name(), err)
		}
		if err := s.hosts.Learn(next, "@odata.nextLink"); err != nil {
			return fmt.Errorf("exchange: %s: not following the next page: %w", q.name(), err)
		}
		q.url = a.NextLink
	}
}

// endpoint returns the scheme://host:port the sink sends its calls to: the
// configured Exchange endpoint, or the host it was redirected to.
func (s *Sink) endpoint() string { return *s.base.Load() }

// maxRedirects bounds the redirects one call follows.
const maxRedirects = 5

// call sends one request, retrying as the policy says and following
// redirects inside the cloud.
func (s *Sink) call(ctx context.Context, q *request) (*answer, error) {
	reqID := newRequestID()
	g := &s.readGate
	if q.write {
		g = &s.writeGate
	}
	var last error
	redirects := 0
	for try := 1; ; try++ {
		if err := s.acquire(ctx, g); err != nil {
			return nil, s.ctxErr(q.cmdlet, q.identity, err)
		}
		r := s.once(ctx, q, reqID, g)
		<-s.sem
		if r.redirect != nil {
			if redirects++; redirects > maxRedirects {
				return nil, fmt.Errorf("exchange: %s: %w: more than %d redirects (last to %s)", q.name(), ErrRedirect, maxRedirects, r.redirect.Host)
			}
			s.follow(q, r.redirect)
			try-- // a redirect is not a failure
			continue
		}
		if r.err == nil {
			return r.a, nil
		}
		if ctx.Err() != nil {
			return nil, s.ctxErr(q.cmdlet, q.identity, ctx.Err())
		}
		last = r.err
		if !r.again {
			return nil, r.err
		}
		if try >= s.retry.MaxTries || retry.Unreachable(r.err) && try >= retry.DialTries {
			err := fmt.Errorf("exchange: %s %s: %w after %d tries: %w", q.cmdlet, q.identity, ErrRetriesExhausted, try, last)
			if retry.Unreachable(last) {
				// Nothing listens at the endpoint: no other call will fare better.
				return nil, cloud.Unavailable(err)
			}
			return nil, err
		}
		wait := s.retry.backoff(try)
		if r.retryAfter > 0 {
			// Obey the service, with up to 10% more so that the workers it
			// paused do not all come back in the same instant.
			wait = r.retryAfter + time.Duration(mrand.Float64()*0.1*float64(r.retryAfter))
			g.Hold(time.Now().Add(r.retryAfter))
		}
		s.stats.retries.Add(1)
		s.log.Warn("exchange: call failed, retrying", "cmdlet", q.cmdlet, "identity", q.identity, "attempt", try, "of", s.retry.MaxTries,
			"wait", wait.Round(time.Millisecond), "status", statusOf(r.err), "client-request-id", reqID, "cause", r.err)
		if err := retry.Sleep(ctx, wait); err != nil {
			return nil, s.ctxErr(q.cmdlet, q.identity, err)
		}
	}
}

// follow points q at a redirect's target (already allowed by s.hosts) and,
// when q was sent to the sink's endpoint, makes the target's origin the
// endpoint of every later call: the tenant lives there.
func (s *Sink) follow(q *request, to *neturl.URL) {
	from, _ := neturl.Parse(q.url)
	q.url = to.String()
	s.stats.redirects.Add(1)
	cur := s.base.Load()
	if from == nil || originOf(from) != *cur {
		return
	}
	target := originOf(to)
	if target != *cur && s.base.CompareAndSwap(cur, &target) {
		s.log.Info("exchange: the tenant is served by another host; sending every later call there", "from", *cur, "to", target, "cmdlet", q.cmdlet)
	}
}

// originOf returns u's scheme://host[:port] as the sink builds its URLs.
func originOf(u *neturl.URL) string { return u.Scheme + "://" + u.Host }

// statusOf is the HTTP status of a failed call, 0 when none came back.
func statusOf(err error) int {
	var ce *CmdletError
	if errors.As(err, &ce) {
		return ce.Status
	}
	return 0
}

func (s *Sink) ctxErr(cmdlet, identity string, err error) error {
	return fmt.Errorf("exchange: %s %s: %w", cmdlet, identity, err)
}

// result is what one HTTP exchange gave: an answer, a redirect to follow,
// or a failure (retried when again, after retryAfter when the service
// named a time).
type result struct {
	a          *answer
	redirect   *neturl.URL
	retryAfter time.Duration
	again      bool
	err        error
}

// isRedirect reports whether status is a redirect the sink re-sends the
// same request for (303 See Other asks for a GET elsewhere: not followed).
func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirectTarget returns where a redirect's Location points, resolved
// against the request's URL.
//
// Unconfirmed (FACTS.md): a public client that follows Exchange Online's
// regional 302 itself rewrites port 446 in the Location to 443; so does
// this function, the only place that knows it.
func redirectTarget(req *neturl.URL, location string) (*neturl.URL, error) {
	if location == "" {
		return nil, errors.New("redirect without a Location")
	}
	u, err := req.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("redirect Location %.80q is not a URL: %w", location, err)
	}
	if u.Port() == "446" {
		u.Host = u.Hostname()
		if strings.Contains(u.Host, ":") {
			u.Host = "[" + u.Host + "]"
		}
	}
	return u, nil
}

// connectionID is the connection-id header: one per process, as the module
// sends one per connection (FACTS.md).
var connectionID = sync.OnceValue(newRequestID)

// once sends one HTTP request; the caller holds a slot of s.sem and g is
// the gate the request went through (held shut when the service says its
// budget is spent).
func (s *Sink) once(ctx context.Context, q *request, reqID string, g *retry.Gate) result {
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	if err != nil {
		return result{err: s.tokenError(ctx, err)}
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var body io.Reader
	if q.body != nil {
		body = bytes.NewReader(q.body)
	}
	req, err := http.NewRequestWithContext(rctx, q.method, q.url, body)
	if err != nil {
		return result{err: fmt.Errorf("exchange: %s: %w", q.name(), err)}
	}
	// The headers the module sends (FACTS.md).
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Accept-Charset", "UTF-8")
	req.Header.Set("X-AnchorMailbox", s.anchor)
	req.Header.Set("X-ClientApplication", "smimesync")
	req.Header.Set("X-SerializationLevel", "Partial")
	req.Header.Set("connection-id", connectionID())
	req.Header.Set("client-request-id", reqID)
	req.Header.Set("Prefer", "odata.maxpagesize="+strconv.Itoa(s.pageSize))
	if q.method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CmdletName", q.cmdlet)
		req.Header.Set("X-ResponseFormat", cmp.Or(q.format, formatJSON))
	}

	s.stats.requests.Add(1)
	resp, err := s.http.Do(req)
	if err != nil {
		// Dropped connection, refused connection, or the per-request
		// timeout: retried. A certificate that does not verify or a host
		// that does not exist: not.
		return result{again: !permanent(err), err: fmt.Errorf("exchange: %s: %w", q.name(), err)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	resp.Body.Close()
	s.pace(resp.Header, g)
	if isRedirect(resp.StatusCode) {
		to, err := redirectTarget(req.URL, resp.Header.Get("Location"))
		if err != nil {
			return result{err: fmt.Errorf("exchange: %s: %w: %w", q.name(), ErrRedirect, err)}
		}
		// The same request goes there with the token: only to a host of
		// the configured cloud (azauth.TokenHosts.Learn).
		if err := s.hosts.Learn(to, "redirect"); err != nil {
			return result{err: fmt.Errorf("exchange: %s: %w: %w", q.name(), ErrRedirect, err)}
		}
		return result{redirect: to}
	}
	if err != nil {
		return result{again: true, err: fmt.Errorf("exchange: %s: reading answer: %w", q.name(), err)}
	}
	retryAfter, _ := retry.After(resp.Header.Get("Retry-After"))
	if resp.StatusCode == http.StatusTooManyRequests {
		s.stats.throttled.Add(1)
	}
	if resp.StatusCode/100 == 2 {
		a := &answer{Raw: data}
		if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '<' { // a bare CLIXML body stays in Raw
			if err := json.Unmarshal(data, a); err != nil {
				// JSON that stops short (or no body at all) is an
				// answer cut on its way, as a dropped connection is:
				// tried again. Anything else is not the service's.
				return result{again: cutShort(data), err: fmt.Errorf("exchange: %s: answer is not JSON: %w", q.name(), err)}
			}
		}
		if msg := adminErrors(a.AdminErrors); msg != "" {
			ce := &CmdletError{Cmdlet: q.cmdlet, Identity: q.identity, Status: resp.StatusCode, Code: "AdminApiError", Message: msg, RequestID: reqID}
			splitDetail(ce, msg)
			return result{again: strings.Contains(msg, concurrencyText), err: ce}
		}
		s.warn(q, a.Warnings)
		return result{a: a}
	}
	ce := &CmdletError{Cmdlet: q.cmdlet, Identity: q.identity, Status: resp.StatusCode, RequestID: reqID}
	var oe odataError
	if json.Unmarshal(data, &oe) == nil && oe.Error.Code != "" {
		ce.Code = oe.Error.Code
		ce.Message = oe.Error.Message
		if len(oe.Error.Details) > 0 {
			splitDetail(ce, oe.Error.Details[0].Message)
		} else if oe.Error.InnerError.Message != "" {
			ce.Message = oe.Error.InnerError.Message
		}
	} else {
		ce.Code = http.StatusText(resp.StatusCode)
		ce.Message = strings.TrimSpace(string(data))
		if len(ce.Message) > 300 {
			ce.Message = ce.Message[:300] + "…"
		}
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return result{retryAfter: retryAfter, again: true, err: ce}
	case http.StatusUnauthorized:
		return result{err: fmt.Errorf("%w: %w", ErrUnauthorized, ce)}
	}
	if strings.Contains(ce.Message, concurrencyText) {
		return result{retryAfter: retryAfter, again: true, err: ce}
	}
	return result{err: ce}
}

// warn logs the service's @adminapi.warnings for q, at warn level.
func (s *Sink) warn(q *request, raw json.RawMessage) {
	for _, w := range adminMessages(raw) {
		s.stats.warnings.Add(1)
		s.log.Warn("exchange: the service warns", "cmdlet", q.cmdlet, "recipient", q.identity, "warning", w)
	}
}

// maxRateLimitReset is the longest Rate-Limit-Reset pace obeys.
const maxRateLimitReset = 10 * time.Minute

// pace reads the service's Rate-Limit-Remaining and Rate-Limit-Reset and,
// when nothing remains, holds g shut until the reset, so that the workers
// wait before a 429 rather than after it.
//
// Unconfirmed (FACTS.md: the headers exist, their limits are not
// published): Rate-Limit-Reset is read as Retry-After is, seconds (a
// fraction allowed) or an HTTP date; a reset longer than maxRateLimitReset
// is taken as a form not understood (a Unix time, say) and ignored. This
// is the only place that reads them.
func (s *Sink) pace(h http.Header, g *retry.Gate) {
	v := h.Get("Rate-Limit-Remaining")
	if v == "" {
		return
	}
	left, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return
	}
	s.stats.rateLimited.Add(1)
	s.stats.remaining.Store(left)
	if left > 0 {
		return
	}
	reset, ok := retry.After(h.Get("Rate-Limit-Reset"))
	if !ok || reset <= 0 || reset > maxRateLimitReset {
		return
	}
	if g.Remaining(time.Now()) < reset {
		s.stats.paced.Add(1)
		s.log.Debug("exchange: the service's budget is spent; pausing", "for", reset, "reason", h.Get("Rate-Limit-Reason"))
	}
	g.Hold(time.Now().Add(reset))
}

// permanent reports whether a failure to get an HTTP answer will happen
// again on the next try: the server's certificate does not verify (wrong
// trust anchor, wrong host, expired), DNS says the host does not exist, or
// the request was refused before it left because the token may not go
// where it pointed (a redirect to another host).
func permanent(err error) bool {
	var (
		cve     *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		dns     *net.DNSError
	)
	switch {
	case errors.Is(err, azauth.ErrTokenHost):
		return true
	case errors.As(err, &cve), errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid):
		return true
	case errors.As(err, &dns):
		return dns.IsNotFound
	}
	return false
}

// splitDetail fills ErrorID, Class and Message from a detail message of the
// form "<ErrorId>|<ExceptionClass>|<text>".
func splitDetail(ce *CmdletError, msg string) {
	parts := strings.SplitN(msg, "|", 3)
	if len(parts) == 3 {
		ce.ErrorID, ce.Class, ce.Message = parts[0], parts[1], parts[2]
		return
	}
	ce.Message = msg
}

// adminErrors returns the text of a non-empty @adminapi.errors annotation.
func adminErrors(raw json.RawMessage) string {
	msgs := adminMessages(raw)
	if len(msgs) == 0 {
		return ""
	}
	return strings.Join(msgs, "; ")
}

// adminMessages returns the messages of an @adminapi.errors or
// @adminapi.warnings annotation: a list of strings, or of objects with a
// message; any other non-empty form is returned whole.
func adminMessages(raw json.RawMessage) []string {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "[]" {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return []string{string(raw)}
	}
	var msgs []string
	for _, it := range items {
		var str string
		if json.Unmarshal(it, &str) == nil {
			if str != "" {
				msgs = append(msgs, str)
			}
			continue
		}
		var obj map[string]any
		if json.Unmarshal(it, &obj) != nil {
			msgs = append(msgs, string(it))
			continue
		}
		found := false
		for _, k := range []string{"message", "Message", "ErrorMessage"} {
			if m, ok := obj[k].(string); ok && m != "" {
				msgs = append(msgs, m)
				found = true
				break
			}
		}
		if !found && len(obj) > 0 {
			msgs = append(msgs, string(it))
		}
	}
	return msgs
}

// cutShort reports whether data stops before its JSON ends: an empty
// body, or a value cut short (a decoder then meets the end of its input).
// A proxy that loses the service mid-answer may end a 200 so, without a
// transport error.
func cutShort(data []byte) bool {
	var v json.RawMessage
	err := json.NewDecoder(bytes.NewReader(data)).Decode(&v)
	return err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)
}
