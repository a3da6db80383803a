package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/smimesync/go-smimesync/internal/retry"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	kiotaazure "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// clientOptions name this client in Graph's SdkVersion header.
var clientOptions = msgraphcore.GraphClientOptions{GraphServiceLibraryVersion: "smimesync"}

// newAdapter builds the Graph request adapter: azidentity tokens for the
// configured Graph endpoint (its host the only one tokens are sent to),
// JSON serialisation, and an explicit middleware pipeline in a fixed order
// — telemetry (which sets client-request-id once per call, so retries of
// one call share it), query-parameter name decoding, user agent, and this
// package's retry handler — with no compression handler. kiota-http-go's
// default pipeline is built from a map, so its order is not fixed, and its
// compression handler can gzip a body that a retry then resends
// uncompressed but still labelled gzip; its retry handler also truncates a
// fractional Retry-After to whole seconds. The adapter's base URL is set
// before any request builder is made, so $batch items get relative URLs.
//
// The token goes only to the configured endpoint: kiota's allowed hosts
// hold exactly its host name, and, since kiota ignores the port and lets a
// loopback host have plain http, hosts (the endpoint's scheme, host and
// port) guards the transport below every middleware as well.
func newAdapter(cfg Config, g *retry.Gate, hosts *azauth.TokenHosts) (*msgraphcore.GraphRequestAdapterBase, error) {
	u, err := url.Parse(cfg.Endpoints.Graph)
	if err != nil {
		return nil, &ConfigError{Field: "endpoints.graph", Reason: err.Error()}
	}
	auth, err := kiotaazure.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(
		cfg.Credential, []string{cfg.Endpoints.GraphScope()}, []string{u.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("graph: authentication provider: %w", err)
	}
	var parent http.RoundTripper
	if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
		parent = cfg.HTTPClient.Transport
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 2 * cfg.Concurrency
		if t.MaxIdleConnsPerHost < 16 {
			t.MaxIdleConnsPerHost = 16
		}
		parent = t
	}
	parent = hosts.Transport(parent)
	client := &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(parent,
			msgraphcore.NewGraphTelemetryHandler(&clientOptions),
			khttp.NewParametersNameDecodingHandler(),
			khttp.NewUserAgentHandler(),
			&retryHandler{policy: cfg.Retry, timeout: cfg.RequestTimeout, gate: g, log: cfg.Logger},
		),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	parse := absser.NewParseNodeFactoryRegistry()
	parse.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonParseNodeFactory()
	write := absser.NewSerializationWriterFactoryRegistry()
	write.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonSerializationWriterFactory()
	adapter, err := msgraphcore.NewGraphRequestAdapterBaseWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, clientOptions, parse, write, client)
	if err != nil {
		return nil, fmt.Errorf("graph: request adapter: %w", err)
	}
	adapter.SetBaseUrl(cfg.Endpoints.Graph + "/v1.0")
	return adapter, nil
}

// backoff returns the jittered exponential wait before attempt n (1 for
// the first retry): between half and all of min(Cap, Base·2^(n-1)).
func (p RetryPolicy) backoff(n int) time.Duration {
	return retry.Backoff(p.Base, p.Cap, n)
}

// wait returns how long to wait before attempt n (1 for the first retry):
// the answer's Retry-After value when it has one, else the backoff.
func (p RetryPolicy) wait(retryAfter string, n int) time.Duration {
	if w, ok := retry.After(retryAfter); ok {
		return w
	}
	return p.backoff(n)
}

// transient reports whether an HTTP status is worth another try.
func transient(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryHandler is the kiota middleware that retries one HTTP request: 429
// after its Retry-After (and shuts the sink's gate for that long, since the
// budget is shared), transient statuses and transport errors (a dropped
// connection, an attempt past RequestTimeout) after Retry-After or a
// jittered backoff. Every request this package sends is safe to repeat: a
// GET, or a PATCH that sets the whole certificateUserIds list, or a $batch
// of those. Each attempt has its own timeout; the caller's context bounds
// them all.
type retryHandler struct {
	policy  RetryPolicy
	timeout time.Duration
	gate    *retry.Gate
	log     *slog.Logger
}

// Intercept implements khttp.Middleware.
func (h *retryHandler) Intercept(p khttp.Pipeline, idx int, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		// kiota hands over a reader that cannot be rewound: keep the
		// bytes so every attempt sends the same body.
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("graph: reading request body: %w", err)
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		req.ContentLength = int64(len(b))
	}
	tries, throttled := 0, 0
	for {
		if err := h.gate.Wait(ctx); err != nil {
			return nil, err
		}
		attempt := req
		if tries+throttled > 0 {
			attempt = req.Clone(ctx)
			attempt.Header.Set("Retry-Attempt", strconv.Itoa(tries+throttled))
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, fmt.Errorf("graph: rewinding request body: %w", err)
				}
				attempt.Body = body
			}
		}
		actx, cancel := context.WithTimeout(ctx, h.timeout)
		resp, err := p.Next(attempt.WithContext(actx), idx)
		if ctx.Err() != nil {
			cancel()
			if resp != nil {
				resp.Body.Close()
			}
			return nil, ctx.Err()
		}
		var wait time.Duration
		switch {
		case errors.Is(err, azauth.ErrTokenHost):
			// Refused before it left; another try would be refused too.
			cancel()
			return nil, err
		case err != nil:
			cancel()
			tries++
			if tries >= h.policy.MaxTries || retry.Unreachable(err) && tries >= retry.DialTries {
				err := fmt.Errorf("graph: %s %s: giving up after %d tries: %w", req.Method, req.URL.Path, tries, err)
				if retry.Unreachable(err) {
					// Nothing listens at the endpoint: no other call will fare better.
					return nil, cloud.Unavailable(err)
				}
				return nil, err
			}
			wait = h.policy.backoff(tries)
			h.log.Warn("graph: request failed, retrying", "method", req.Method, "path", req.URL.Path, "attempt", tries, "of", h.policy.MaxTries,
				"wait", wait.Round(time.Millisecond), "cause", err)
		case resp.StatusCode == http.StatusTooManyRequests:
			throttled++
			if throttled > h.policy.MaxThrottled {
				resp.Body = cancelOnClose{resp.Body, cancel}
				return resp, nil
			}
			w := h.policy.wait(resp.Header.Get("Retry-After"), throttled)
			wait = w
			h.gate.Hold(time.Now().Add(w))
			drain(resp)
			cancel()
			h.log.Warn("graph: throttled, retrying", "method", req.Method, "path", req.URL.Path, "attempt", throttled, "of", h.policy.MaxThrottled,
				"wait", w.Round(time.Millisecond), "status", http.StatusTooManyRequests)
		case transient(resp.StatusCode):
			tries++
			if tries >= h.policy.MaxTries {
				resp.Body = cancelOnClose{resp.Body, cancel}
				return resp, nil
			}
			wait = h.policy.wait(resp.Header.Get("Retry-After"), tries)
			drain(resp)
			cancel()
			h.log.Warn("graph: request failed, retrying", "method", req.Method, "path", req.URL.Path, "attempt", tries, "of", h.policy.MaxTries,
				"wait", wait.Round(time.Millisecond), "status", resp.StatusCode)
		default:
			resp.Body = cancelOnClose{resp.Body, cancel}
			return resp, nil
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// cancelOnClose ends an attempt's context when its body is closed, so the
// per-attempt timeout does not cut the caller's read short.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
