package exchange

import (
	"bytes"
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
	// Base is the first backoff (default 1 s).
	Base time.Duration `yaml:"base"`
	// Cap bounds each backoff (default 60 s).
	Cap time.Duration `yaml:"cap"`
	// MaxTries bounds the attempts of one call, the first included
	// (default 10).
	MaxTries int `yaml:"max_tries"`
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Base <= 0 {
		p.Base = time.Second
	}
	if p.Cap <= 0 {
		p.Cap = time.Minute
	}
	if p.Cap < p.Base {
		p.Cap = p.Base
	}
	if p.MaxTries <= 0 {
		p.MaxTries = 10
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

// answer is one decoded page of an InvokeCommand answer.
type answer struct {
	Value       []json.RawMessage `json:"value"`
	NextLink    string            `json:"@odata.nextLink"`
	AdminErrors json.RawMessage   `json:"@adminapi.errors"`
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

// invoke runs cmdlet with params, following @odata.nextLink, and hands each
// page's values to page. Each HTTP call is retried on its own; a page's
// call keeps its client-request-id across retries.
func (s *Sink) invoke(ctx context.Context, cmdlet string, params map[string]any, write bool, page func([]json.RawMessage) error) error {
	body, err := json.Marshal(map[string]any{"CmdletInput": map[string]any{"CmdletName": cmdlet, "Parameters": params}})
	if err != nil {
		return fmt.Errorf("exchange: %s: encoding parameters: %w", cmdlet, err)
	}
	identity, _ := params["Identity"].(string)
	url := s.invokeURL
	for url != "" {
		a, err := s.call(ctx, url, cmdlet, identity, body, write)
		if err != nil {
			return err
		}
		if err := page(a.Value); err != nil {
			return err
		}
		if a.NextLink == "" {
			break
		}
		// The next page is asked with the token: only of the host the
		// token is meant for, whatever the answer names.
		call := strings.TrimSpace(cmdlet + " " + identity)
		next, err := neturl.Parse(a.NextLink)
		if err != nil {
			return fmt.Errorf("exchange: %s: @odata.nextLink is not a URL: %w", call, err)
		}
		if err := s.hosts.Check(next, "@odata.nextLink"); err != nil {
			return fmt.Errorf("exchange: %s: not following the next page: %w", call, err)
		}
		url = a.NextLink
	}
	return nil
}

// call sends one request, retrying as the policy says.
func (s *Sink) call(ctx context.Context, url, cmdlet, identity string, body []byte, write bool) (*answer, error) {
	reqID := newRequestID()
	g := &s.readGate
	if write {
		g = &s.writeGate
	}
	var last error
	for try := 1; ; try++ {
		if err := s.acquire(ctx, g); err != nil {
			return nil, s.ctxErr(cmdlet, identity, err)
		}
		a, retryAfter, again, err := s.once(ctx, url, cmdlet, identity, reqID, body)
		<-s.sem
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil {
			return nil, s.ctxErr(cmdlet, identity, ctx.Err())
		}
		last = err
		if !again {
			return nil, err
		}
		if try >= s.retry.MaxTries || retry.Unreachable(err) && try >= retry.DialTries {
			err := fmt.Errorf("exchange: %s %s: %w after %d tries: %w", cmdlet, identity, ErrRetriesExhausted, try, last)
			if retry.Unreachable(last) {
				// Nothing listens at the endpoint: no other call will fare better.
				return nil, cloud.Unavailable(err)
			}
			return nil, err
		}
		wait := s.retry.backoff(try)
		if retryAfter > 0 {
			// Obey the service, with up to 10% more so that the workers it
			// paused do not all come back in the same instant.
			wait = retryAfter + time.Duration(mrand.Float64()*0.1*float64(retryAfter))
			g.Hold(time.Now().Add(retryAfter))
		}
		s.stats.retries.Add(1)
		s.log.Warn("exchange: call failed, retrying", "cmdlet", cmdlet, "identity", identity, "attempt", try, "of", s.retry.MaxTries,
			"wait", wait.Round(time.Millisecond), "status", statusOf(err), "client-request-id", reqID, "cause", err)
		if err := retry.Sleep(ctx, wait); err != nil {
			return nil, s.ctxErr(cmdlet, identity, err)
		}
	}
}

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

// once sends one HTTP request; the caller holds a slot of s.sem. retryAfter is the service's Retry-After (0
// when absent); again says whether the failure may be retried.
func (s *Sink) once(ctx context.Context, url, cmdlet, identity, reqID string, body []byte) (a *answer, retryAfter time.Duration, again bool, err error) {
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	if err != nil {
		return nil, 0, false, s.tokenError(ctx, err)
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, false, fmt.Errorf("exchange: %s: %w", cmdlet, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-AnchorMailbox", s.anchor)
	req.Header.Set("X-CmdletName", cmdlet)
	req.Header.Set("X-ResponseFormat", "json")
	req.Header.Set("X-ClientApplication", "smimesync")
	req.Header.Set("client-request-id", reqID)
	req.Header.Set("Prefer", "odata.maxpagesize="+strconv.Itoa(s.pageSize))

	s.stats.requests.Add(1)
	resp, err := s.http.Do(req)
	if err != nil {
		// Dropped connection, refused connection, or the per-request
		// timeout: retried. A certificate that does not verify or a host
		// that does not exist: not.
		return nil, 0, !permanent(err), fmt.Errorf("exchange: %s %s: %w", cmdlet, identity, err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	resp.Body.Close()
	if err != nil {
		return nil, 0, true, fmt.Errorf("exchange: %s %s: reading answer: %w", cmdlet, identity, err)
	}
	retryAfter, _ = retry.After(resp.Header.Get("Retry-After"))
	if resp.StatusCode == http.StatusTooManyRequests {
		s.stats.throttled.Add(1)
	}
	if resp.StatusCode/100 == 2 {
		a = &answer{}
		if err := json.Unmarshal(data, a); err != nil {
			return nil, 0, false, fmt.Errorf("exchange: %s %s: answer is not JSON: %w", cmdlet, identity, err)
		}
		if msg := adminErrors(a.AdminErrors); msg != "" {
			ce := &CmdletError{Cmdlet: cmdlet, Identity: identity, Status: resp.StatusCode, Code: "AdminApiError", Message: msg, RequestID: reqID}
			splitDetail(ce, msg)
			return nil, 0, strings.Contains(msg, concurrencyText), ce
		}
		return a, 0, false, nil
	}
	ce := &CmdletError{Cmdlet: cmdlet, Identity: identity, Status: resp.StatusCode, RequestID: reqID}
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
		return nil, retryAfter, true, ce
	case http.StatusUnauthorized:
		return nil, 0, false, fmt.Errorf("%w: %w", ErrUnauthorized, ce)
	}
	if strings.Contains(ce.Message, concurrencyText) {
		return nil, retryAfter, true, ce
	}
	return nil, 0, false, ce
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
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "[]" {
		return ""
	}
	var items []map[string]any
	if json.Unmarshal(raw, &items) == nil {
		var msgs []string
		for _, it := range items {
			for _, k := range []string{"message", "Message", "ErrorMessage"} {
				if m, ok := it[k].(string); ok && m != "" {
					msgs = append(msgs, m)
					break
				}
			}
		}
		if len(msgs) > 0 {
			return strings.Join(msgs, "; ")
		}
		if len(items) == 0 {
			return ""
		}
	}
	return string(raw)
}
