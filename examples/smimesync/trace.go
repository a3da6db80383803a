package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxTraceBody bounds each body a trace keeps (after redaction); the
// rest is counted, not kept.
const maxTraceBody = 64 << 10

// traceMargin is how much more than maxTraceBody is read before
// redacting, so that a token or certificate crossing the bound is still
// recognised whole, and redacted, before the body is cut.
const traceMargin = 32 << 10

// tracer records every HTTP exchange of the cloud sinks and their sign-in
// (login, Exchange, Graph) as JSON lines, with the secrets taken out: see
// redactBody and redactHeaders. It wraps the transport of the one HTTP
// client the binary gives them (Config.httpClient), and never changes
// what is sent or received.
type tracer struct {
	mu   sync.Mutex
	f    *os.File
	path string
	err  error // the first write error, reported by close
}

// traceRecord is one line of a trace file.
type traceRecord struct {
	Time       time.Time  `json:"time"`
	Method     string     `json:"method"`
	Host       string     `json:"host"`
	Path       string     `json:"path"`
	Query      string     `json:"query,omitempty"`
	Status     int        `json:"status,omitempty"`
	DurationMS float64    `json:"duration_ms"`
	Error      string     `json:"error,omitempty"`
	Request    traceBody  `json:"request"`
	Response   *traceBody `json:"response,omitempty"`
}

// traceBody is a message's headers and body, redacted.
type traceBody struct {
	Headers   map[string]string `json:"headers,omitempty"`
	Body      string            `json:"body,omitempty"`
	Bytes     int64             `json:"bytes"`
	Truncated bool              `json:"truncated,omitempty"`
}

// openTrace creates (or truncates) the trace file, readable by its owner
// only: even redacted, it names the tenant's recipients.
func openTrace(path string) (*tracer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, usagef("--trace: %v", err)
	}
	return &tracer{f: f, path: path}, nil
}

// close closes the file; it returns the first error met writing it.
func (t *tracer) close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return t.err
	}
	if err := t.f.Close(); err != nil && t.err == nil {
		t.err = err
	}
	t.f = nil
	if t.err != nil {
		return fmt.Errorf("--trace %s: %w", t.path, t.err)
	}
	return nil
}

func (t *tracer) write(r *traceRecord) {
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return
	}
	if _, err := t.f.Write(append(b, '\n')); err != nil && t.err == nil {
		t.err = err
	}
}

// wrap returns rt (nil: http.DefaultTransport) recording into t; a nil t
// returns rt unchanged.
func (t *tracer) wrap(rt http.RoundTripper) http.RoundTripper {
	if t == nil {
		return rt
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &traceTransport{next: rt, t: t}
}

type traceTransport struct {
	next http.RoundTripper
	t    *tracer
}

// RoundTrip sends req and records it with its answer once the answer's
// body is read to its end or closed.
func (tt *traceTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := &traceRecord{Time: time.Now().UTC(), Method: req.Method, Host: req.URL.Host, Path: req.URL.Path,
		Query: redactBody(req.URL.RawQuery)}
	out := req
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		out = req.Clone(req.Context())
		out.Body = io.NopCloser(bytes.NewReader(b))
		rec.Request = traceBodyOf(req.Header, b, int64(len(b)))
	} else {
		rec.Request = traceBodyOf(req.Header, nil, 0)
	}
	start := time.Now()
	resp, err := tt.next.RoundTrip(out)
	rec.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		rec.Error = redactBody(err.Error())
		tt.t.write(rec)
		return resp, err
	}
	rec.Status = resp.StatusCode
	resp.Body = &tracedBody{rc: resp.Body, header: resp.Header, rec: rec, t: tt.t}
	return resp, nil
}

// tracedBody passes a response body through, keeping its first bytes, and
// writes the record at the end of the body or when it is closed.
type tracedBody struct {
	rc     io.ReadCloser
	header http.Header
	rec    *traceRecord
	t      *tracer
	buf    bytes.Buffer
	n      int64
	once   sync.Once
}

func (b *tracedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if room := maxTraceBody + traceMargin - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(n, room)])
	}
	if err != nil {
		b.done()
	}
	return n, err
}

func (b *tracedBody) Close() error {
	err := b.rc.Close()
	b.done()
	return err
}

func (b *tracedBody) done() {
	b.once.Do(func() {
		body := traceBodyOf(b.header, b.buf.Bytes(), b.n)
		b.rec.Response = &body
		b.t.write(b.rec)
	})
}

// traceBodyOf redacts a message's headers and the first bytes of its
// body (n bytes in all).
func traceBodyOf(h http.Header, body []byte, n int64) traceBody {
	tb := traceBody{Headers: redactHeaders(h), Bytes: n}
	if len(body) == 0 {
		return tb
	}
	if strings.EqualFold(h.Get("Content-Encoding"), "gzip") {
		if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
			if plain, err := io.ReadAll(io.LimitReader(zr, maxTraceBody+traceMargin)); len(plain) > 0 {
				body = plain
				_ = err // a gzip stream cut by the bound ends early: what was read stands
			}
		}
	}
	s := redactBody(string(body))
	if len(s) > maxTraceBody || int64(len(body)) < n {
		tb.Truncated = true
		if len(s) > maxTraceBody {
			s = s[:maxTraceBody]
		}
		s = redactPartial(s)
	}
	tb.Body = strings.ToValidUTF8(s, "\uFFFD")
	return tb
}

// redacted stands for a value taken out of a trace.
const redacted = "[REDACTED]"

// secretHeaders are the headers whose values never reach a trace.
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Identity-Header", "Secret", "Metadata"}

// redactHeaders returns h as one string per header, secrets taken out.
func redactHeaders(h http.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		if slices.ContainsFunc(secretHeaders, func(s string) bool { return strings.EqualFold(s, k) }) {
			out[k] = redacted
			continue
		}
		out[k] = redactBody(strings.Join(v, ", "))
	}
	return out
}

var (
	// formSecret is a secret in a form body or query string: the sign-in's
	// client secret, client assertion, or a token.
	formSecret = regexp.MustCompile(`(?i)\b(client_secret|client_assertion|assertion|access_token|refresh_token|id_token|password)=[^&\s"]*`)
	// jsonSecret is a secret in a JSON body: a token answer's tokens, or a
	// secret.
	jsonSecret = regexp.MustCompile(`(?i)("(?:access_token|refresh_token|id_token|client_secret|client_assertion|password)"\s*:\s*)"(?:[^"\\]|\\.)*"`)
	// jwt is a JSON Web Token (or JWS) anywhere: header.payload.signature,
	// the header starting with {" in base64url.
	jwt = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`)
	// jwtStart is what is left of a JWT a bound cut.
	jwtStart = regexp.MustCompile(`eyJ[A-Za-z0-9_.-]{8,}$`)
	// clixmlBytes is a CLIXML byte array: base64 in a <BA> element, the
	// markup as is or escaped in a JSON string (\u003cBA\u003e).
	clixmlBytes = regexp.MustCompile(`((?:<|\\u003[cC])BA(?:\s[^>\\]*)?(?:>|\\u003[eE]))([A-Za-z0-9+/=\s]*|(?:[A-Za-z0-9+=\s]|\\/)*)((?:<|\\u003[cC])/BA(?:>|\\u003[eE]))`)
	// byteArray is the Exchange admin API's byte array: {"Data":[48,130,…]}.
	byteArray = regexp.MustCompile(`("Data"\s*:\s*)\[([0-9,\s]*)\]`)
	// base64Run is a long base64 string (a certificate in a JSON answer,
	// a CMS blob): taken out when it decodes to DER.
	base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{64,}={0,2}`)
	// digitsTail is what is left of a byte array a bound cut.
	digitsTail = regexp.MustCompile(`("Data"\s*:\s*)\[[0-9,\s]*$`)
)

// redactBody takes secrets and certificate bytes out of a body, a query
// string or an error text: the values of client_secret=,
// client_assertion= and tokens in forms and JSON; every JWT-looking
// string; and certificate bytes (CLIXML <BA> elements, {"Data":[…]}
// arrays, base64 runs that decode to DER), each replaced by its SHA-256
// fingerprint and length.
func redactBody(s string) string {
	s = formSecret.ReplaceAllString(s, "$1="+redacted)
	s = jsonSecret.ReplaceAllString(s, `$1"`+redacted+`"`)
	s = jwt.ReplaceAllString(s, redacted)
	s = clixmlBytes.ReplaceAllStringFunc(s, func(m string) string {
		g := clixmlBytes.FindStringSubmatch(m)
		b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(strings.Join(strings.Fields(g[2]), ""), `\/`, "/"))
		if err != nil {
			return g[1] + redacted + g[3]
		}
		return g[1] + fingerprintText(b) + g[3]
	})
	s = byteArray.ReplaceAllStringFunc(s, func(m string) string {
		g := byteArray.FindStringSubmatch(m)
		var b []byte
		for f := range strings.SplitSeq(g[2], ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || v < 0 || v > 255 {
				if strings.TrimSpace(f) == "" {
					continue
				}
				return g[1] + `"` + redacted + `"`
			}
			b = append(b, byte(v))
		}
		return g[1] + `"` + fingerprintText(b) + `"`
	})
	s = base64Run.ReplaceAllStringFunc(s, func(m string) string {
		// The run may start with letters that are not its own (the
		// "u003e" of an escaped ">", the "n" of "\n"): try a few starts.
		for i := 0; i <= 6 && len(m)-i >= 64; i++ {
			b, err := base64.StdEncoding.DecodeString(m[i:])
			if err == nil && len(b) >= 2 && b[0] == 0x30 {
				return m[:i] + fingerprintText(b)
			}
		}
		return m
	})
	return s
}

// redactPartial takes out what a bound may have left of a token or a
// byte array at the end of a cut body.
func redactPartial(s string) string {
	s = jwtStart.ReplaceAllString(s, redacted)
	s = digitsTail.ReplaceAllString(s, `$1"`+redacted+`"`)
	if i := strings.LastIndex(s, "<BA"); i >= 0 && !strings.Contains(s[i:], "</BA>") {
		s = s[:i] + "<BA>" + redacted
	}
	return s
}

// fingerprintText names bytes by their SHA-256 fingerprint.
func fingerprintText(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:]) + " (" + strconv.Itoa(len(b)) + " bytes)"
}

// traceFlag adds --trace to fs.
func traceFlag(fs *flag.FlagSet) *string {
	return fs.String("trace", "", "record the HTTP exchanges with login, Exchange and Graph in this file (JSON lines, secrets redacted)")
}

// startTrace opens the trace file path names (nothing when it is empty)
// for the sinks c builds from now on; the caller defers c.trace.close().
func (c *Config) startTrace(path string) error {
	if path == "" {
		return nil
	}
	t, err := openTrace(path)
	if err != nil {
		return err
	}
	c.trace = t
	return nil
}
