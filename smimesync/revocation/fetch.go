package revocation

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// fetch sends one request and returns the body of a 200 answer, reading at
// most limit bytes. body nil means GET, otherwise POST with contentType.
func (c *Checker) fetch(ctx context.Context, url string, body []byte, contentType, accept string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	method := http.MethodGet
	var rd io.Reader
	if body != nil {
		method = http.MethodPost
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", accept)
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP status %s", ErrUnreachable, resp.Status)
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
