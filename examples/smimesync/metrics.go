package main

import "net/http"

// httpClient is the HTTP client the cloud sinks (and their token
// credential) should be given: nil, meaning each one's default, unless
// `smimesync run` set c.metrics or --trace set c.trace, in which case a
// client whose transport counts the traffic (see instrument) and records
// it (see httplog.Log.Transport). startTrace and run set it as
// c.HTTPClient, which the sinks are built with.
func (c *Config) httpClient() *http.Client {
	if c.metrics == nil && c.trace == nil {
		return nil
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	// The sinks keep many calls in flight: without idle connections to
	// reuse, every request would pay a TLS handshake.
	base.MaxIdleConnsPerHost = 64
	var rt http.RoundTripper = base
	if c.metrics != nil {
		rt = c.metrics.Transport(rt)
	}
	return &http.Client{Transport: c.trace.Transport(rt)}
}
