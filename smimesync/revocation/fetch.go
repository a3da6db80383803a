package revocation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// fetch sends one request and returns the body of a 200 answer, reading at
// most limit bytes. body nil means GET, otherwise POST with contentType.
//
// The URL goes through checkURL first. The request is bounded by Timeout
// and by what is left of the budgets in ctx; with a budget spent it is not
// sent at all (ErrBudgetExhausted), and the time it takes is charged to
// every budget in ctx.
func (c *Checker) fetch(ctx context.Context, rawURL string, body []byte, contentType, accept string, limit int64) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefusedDestination, err)
	}
	if err := c.checkURL(u); err != nil {
		c.warnRefused(err)
		return nil, err
	}
	timeout, cut := c.timeout(), false
	bs := budgets(ctx)
	for _, b := range bs {
		left := b.remaining()
		if left <= 0 {
			return nil, ErrBudgetExhausted
		}
		if left < timeout {
			timeout, cut = left, true
		}
	}
	start := time.Now()
	defer func() {
		spent := time.Since(start)
		for _, b := range bs {
			b.charge(spent)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := c.do(ctx, rawURL, body, contentType, accept, limit)
	c.warnRefused(err)
	if err != nil && cut && errors.Is(err, context.DeadlineExceeded) {
		// The request was cut short by the budget, not by Timeout: the
		// source may be fine, and is not remembered as failed.
		return nil, fmt.Errorf("%w: %w", ErrBudgetExhausted, err)
	}
	return b, err
}

func (c *Checker) do(ctx context.Context, rawURL string, body []byte, contentType, accept string, limit int64) ([]byte, error) {
	method := http.MethodGet
	var rd io.Reader
	if body != nil {
		method = http.MethodPost
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", accept)
	resp, err := c.client().Do(req)
	if err != nil {
		if errors.Is(err, ErrRefusedDestination) || errors.Is(err, ErrRedirect) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %w: %s", ErrUnreachable, ErrHTTPStatus, resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d bytes", ErrTooLarge, resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %w", ErrUnreachable, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: answer exceeds %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// warnRefused logs a refused destination at warning level: the admin
// may need to list it in AllowHosts.
func (c *Checker) warnRefused(err error) {
	var de *DestinationError
	if errors.As(err, &de) {
		c.log.Warn("revocation: refused to contact a non-public destination; list it in AllowHosts if it is your CA's",
			"host", de.Host, "address", de.Addr, "kind", de.Kind)
	}
}

// isBudget tells whether err is a budget refusal, which is not remembered
// as the source's failure.
func isBudget(err error) bool { return errors.Is(err, ErrBudgetExhausted) }
