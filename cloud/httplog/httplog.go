// Package httplog records HTTP exchanges as JSON lines with the secrets
// taken out: an [http.RoundTripper] wrapper for tracing what a program says
// to login.microsoftonline.com, Exchange Online and Microsoft Graph without
// writing down a client secret, a token or a certificate's bytes (see
// [Redact]). It never changes what is sent or received.
package httplog

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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

// MaxBody bounds each body a record keeps (after redaction); the rest is
// counted, not kept.
const MaxBody = 64 << 10

// margin is how much more than MaxBody is read before redacting, so that a
// token or certificate crossing the bound is still recognised whole, and
// redacted, before the body is cut.
const margin = 32 << 10

// Log writes one [Record] per HTTP exchange, as a JSON line, to its writer.
// It is safe for concurrent use. A nil *Log records nothing: its Transport
// returns the transport it is given and its Close does nothing.
type Log struct {
	mu   sync.Mutex
	w    io.Writer // nil once closed
	name string
	err  error // the first write error, reported by Close
}

// New returns a Log writing to w. Close closes w if it is an [io.Closer].
func New(w io.Writer) *Log {
	return &Log{w: w, name: "log"}
}

// Create creates (or truncates) the file at path, readable by its owner
// only (even redacted, a log names the tenant's recipients), and returns a
// Log writing to it. The error is the one [os.OpenFile] returns.
func Create(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return &Log{w: f, name: path}, nil
}

// Close stops the log and closes its writer. It returns the first error
// met writing or closing, naming the file; records after Close are
// dropped.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		if c, ok := l.w.(io.Closer); ok {
			if err := c.Close(); err != nil && l.err == nil {
				l.err = err
			}
		}
		l.w = nil
	}
	if l.err != nil {
		return fmt.Errorf("httplog %s: %w", l.name, l.err)
	}
	return nil
}

func (l *Log) write(r *Record) {
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return
	}
	if _, err := l.w.Write(append(b, '\n')); err != nil && l.err == nil {
		l.err = err
	}
}

// Transport returns rt (nil: [http.DefaultTransport]) recording into l.
// A request is recorded with its answer once the answer's body is read to
// its end or closed, or at once when the round trip fails. A nil l returns
// rt unchanged.
func (l *Log) Transport(rt http.RoundTripper) http.RoundTripper {
	if l == nil {
		return rt
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &transport{next: rt, t: l}
}

// Record is one line of a log.
type Record struct {
	Time       time.Time `json:"time"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	Path       string    `json:"path"`
	Query      string    `json:"query,omitempty"` // redacted
	Status     int       `json:"status,omitempty"`
	DurationMS float64   `json:"duration_ms"`
	Error      string    `json:"error,omitempty"` // redacted
	Request    Message   `json:"request"`
	Response   *Message  `json:"response,omitempty"`
}

// Message is a request's or response's headers and body, redacted.
type Message struct {
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the first MaxBody bytes of the body (gzip undone).
	Body string `json:"body,omitempty"`
	// Bytes is the body's length on the wire.
	Bytes     int64 `json:"bytes"`
	Truncated bool  `json:"truncated,omitempty"`
}

type transport struct {
	next http.RoundTripper
	t    *Log
}

// RoundTrip sends req and records it with its answer once the answer's
// body is read to its end or closed.
func (tt *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := &Record{Time: time.Now().UTC(), Method: req.Method, Host: req.URL.Host, Path: req.URL.Path,
		Query: Redact(req.URL.RawQuery)}
	out := req
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		out = req.Clone(req.Context())
		out.Body = io.NopCloser(bytes.NewReader(b))
		rec.Request = messageOf(req.Header, b, int64(len(b)))
	} else {
		rec.Request = messageOf(req.Header, nil, 0)
	}
	start := time.Now()
	resp, err := tt.next.RoundTrip(out)
	rec.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		rec.Error = Redact(err.Error())
		tt.t.write(rec)
		return resp, err
	}
	rec.Status = resp.StatusCode
	resp.Body = &loggedBody{rc: resp.Body, header: resp.Header, rec: rec, t: tt.t}
	return resp, nil
}

// loggedBody passes a response body through, keeping its first bytes, and
// writes the record at the end of the body or when it is closed.
type loggedBody struct {
	rc     io.ReadCloser
	header http.Header
	rec    *Record
	t      *Log
	buf    bytes.Buffer
	n      int64
	once   sync.Once
}

func (b *loggedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if room := MaxBody + margin - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(n, room)])
	}
	if err != nil {
		b.done()
	}
	return n, err
}

func (b *loggedBody) Close() error {
	err := b.rc.Close()
	b.done()
	return err
}

func (b *loggedBody) done() {
	b.once.Do(func() {
		body := messageOf(b.header, b.buf.Bytes(), b.n)
		b.rec.Response = &body
		b.t.write(b.rec)
	})
}

// messageOf redacts a message's headers and the first bytes of its
// body (n bytes in all).
func messageOf(h http.Header, body []byte, n int64) Message {
	tb := Message{Headers: redactHeaders(h), Bytes: n}
	if len(body) == 0 {
		return tb
	}
	if strings.EqualFold(h.Get("Content-Encoding"), "gzip") {
		if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
			if plain, err := io.ReadAll(io.LimitReader(zr, MaxBody+margin)); len(plain) > 0 {
				body = plain
				_ = err // a gzip stream cut by the bound ends early: what was read stands
			}
		}
	}
	s := Redact(string(body))
	if len(s) > MaxBody || int64(len(body)) < n {
		tb.Truncated = true
		if len(s) > MaxBody {
			s = s[:MaxBody]
		}
		s = redactPartial(s)
	}
	tb.Body = strings.ToValidUTF8(s, "\uFFFD")
	return tb
}

// Redacted stands for a value taken out of a record.
const Redacted = "[REDACTED]"

// secretHeaders are the headers whose values never reach a record.
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Identity-Header", "Secret", "Metadata"}

// redactHeaders returns h as one string per header, secrets taken out.
func redactHeaders(h http.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		if slices.ContainsFunc(secretHeaders, func(s string) bool { return strings.EqualFold(s, k) }) {
			out[k] = Redacted
			continue
		}
		out[k] = Redact(strings.Join(v, ", "))
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

// Redact takes secrets and certificate bytes out of a body, a query
// string or an error text: the values of client_secret=,
// client_assertion= and tokens in forms and JSON; every JWT-looking
// string; and certificate bytes (CLIXML <BA> elements, {"Data":[…]}
// arrays, base64 runs that decode to DER), each replaced by its SHA-256
// fingerprint and length.
func Redact(s string) string {
	s = formSecret.ReplaceAllString(s, "$1="+Redacted)
	s = jsonSecret.ReplaceAllString(s, `$1"`+Redacted+`"`)
	s = jwt.ReplaceAllString(s, Redacted)
	s = clixmlBytes.ReplaceAllStringFunc(s, func(m string) string {
		g := clixmlBytes.FindStringSubmatch(m)
		b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(strings.Join(strings.Fields(g[2]), ""), `\/`, "/"))
		if err != nil {
			return g[1] + Redacted + g[3]
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
				return g[1] + `"` + Redacted + `"`
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
	s = jwtStart.ReplaceAllString(s, Redacted)
	s = digitsTail.ReplaceAllString(s, `$1"`+Redacted+`"`)
	if i := strings.LastIndex(s, "<BA"); i >= 0 && !strings.Contains(s[i:], "</BA>") {
		s = s[:i] + "<BA>" + Redacted
	}
	return s
}

// fingerprintText names bytes by their SHA-256 fingerprint.
func fingerprintText(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:]) + " (" + strconv.Itoa(len(b)) + " bytes)"
}
