package exchange_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

var testCerts = cloud.Certificates{
	UserCertificate:      [][]byte{{0x30, 0x03, 0x02, 0x01, 0x01}, bytes.Repeat([]byte{0x30, 0x82, 0x00, 0xff}, 64)},
	UserSMIMECertificate: [][]byte{{0x30, 0x80, 0x06, 0x09, 0x00, 0x00}},
}

func sameCerts(a, b cloud.Certificates) bool {
	return slices.EqualFunc(a.UserCertificate, b.UserCertificate, bytes.Equal) &&
		slices.EqualFunc(a.UserSMIMECertificate, b.UserSMIMECertificate, bytes.Equal)
}

func findAddr(t *testing.T, e *env, addr string) *cloud.Recipient {
	t.Helper()
	r, err := e.sink.Find(ctx(t), &directory.Entry{DN: "cn=" + addr, Mail: addr})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestClearIsAPlainNull: clearing writes "UserCertificate": null without
// an @odata.type annotation, which the strict emulator (the default)
// accepts; it refuses an annotated null (see exchangetest's
// TestContract).
func TestClearIsAPlainNull(t *testing.T) {
	e := newEnv(t, exchangetest.Config{}, nil)
	e.exo.Add(seed()...)
	r := findAddr(t, e, "alice@contoso.com")
	if err := e.sink.Write(ctx(t), r, testCerts); err != nil {
		t.Fatal(err)
	}
	if err := e.sink.Write(ctx(t), r, cloud.Certificates{}); err != nil {
		t.Fatalf("clearing: %v", err)
	}
	if got, _ := e.exo.Recipient("alice@contoso.com"); len(got.UserCertificate)+len(got.UserSMimeCertificate) != 0 {
		t.Errorf("after clearing the service holds %d/%d values", len(got.UserCertificate), len(got.UserSMimeCertificate))
	}
}

// TestReadBackDecodesCLIXML: with the service's JSON rendering
// "System.Byte[]", Current reads the real bytes from the CLIXML answer
// (base64 <BA> elements), for every kind of recipient.
func TestReadBackDecodesCLIXML(t *testing.T) {
	e := newEnv(t, exchangetest.Config{ReadBack: exchangetest.ReadBackPlaceholder}, nil)
	e.exo.Add(seed()...)
	for _, addr := range []string{"alice@contoso.com", "bob@contoso.com", "carol@partner.example"} {
		r := findAddr(t, e, addr)
		if err := e.sink.Write(ctx(t), r, testCerts); err != nil {
			t.Fatal(err)
		}
		got, err := e.sink.Current(ctx(t), r)
		if err != nil || !sameCerts(got, testCerts) {
			t.Errorf("%s: Current = %d/%d values, %v; want what was written", addr, len(got.UserCertificate), len(got.UserSMIMECertificate), err)
		}
	}
	for _, q := range e.exo.Log() {
		if strings.HasPrefix(q.Cmdlet, "Get-Mail") && (q.Header.Get("X-ResponseFormat") != "clixml" || q.Header.Get("X-SerializationLevel") != "Partial") {
			t.Errorf("%s asked for %q at level %q, want clixml at Partial", q.Cmdlet, q.Header.Get("X-ResponseFormat"), q.Header.Get("X-SerializationLevel"))
		}
	}
}

// TestReadBackFallsBackToTheEntity: when CLIXML carries no bytes either,
// a mailbox is read from the Mailbox entity ({"Data":[…]}).
func TestReadBackFallsBackToTheEntity(t *testing.T) {
	e := newEnv(t, exchangetest.Config{CLIXML: exchangetest.CLIXMLPlaceholder}, nil)
	e.exo.Add(seed()...)
	r := findAddr(t, e, "alice@contoso.com")
	if err := e.sink.Write(ctx(t), r, testCerts); err != nil {
		t.Fatal(err)
	}
	got, err := e.sink.Current(ctx(t), r)
	if err != nil || !sameCerts(got, testCerts) {
		t.Fatalf("Current = %d/%d values, %v; want what was written", len(got.UserCertificate), len(got.UserSMIMECertificate), err)
	}
	if e.exo.Requests("GET Mailbox") == 0 {
		t.Error("the Mailbox entity was never asked")
	}
}

// TestReadBackUndecodableIsNotTrusted: when no answer carries bytes,
// Current says ErrUnreadable (the Syncer relies on its state) and writes
// are not confirmed, nor refused.
func TestReadBackUndecodableIsNotTrusted(t *testing.T) {
	e := newEnv(t, exchangetest.Config{CLIXML: exchangetest.CLIXMLPlaceholder, EntityPlaceholder: true}, nil)
	e.exo.Add(seed()...)
	r := findAddr(t, e, "alice@contoso.com")
	if err := e.sink.Write(ctx(t), r, testCerts); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sink.Current(ctx(t), r); !errors.Is(err, cloud.ErrUnreadable) {
		t.Fatalf("Current = %v, want ErrUnreadable", err)
	}
	if n := e.sink.Stats().Confirmed; n != 0 {
		t.Errorf("Confirmed = %d, want 0", n)
	}
}

// TestWrongByteEncodingFoundAtFirstWrite: a service that stores other
// bytes than the sink meant is caught at the first write, with a
// *ReadBackMismatchError naming the recipient, and no second write is sent.
func TestWrongByteEncodingFoundAtFirstWrite(t *testing.T) {
	// The service takes each value as the text of its base64.
	e := newEnv(t, exchangetest.Config{Misread: func(v []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(v)) }}, nil)
	e.exo.Add(e2eSeed...)
	st := &smimesync.MemoryState{}
	rep, err := e.syncer(e2eLDIF, st).Run(ctx(t))
	t.Logf("run: %v; %+v; errors %q", err, rep.Summary, rep.Errors)
	sets := e.exo.Requests("Set-Mailbox") + e.exo.Requests("Set-MailUser") + e.exo.Requests("Set-MailContact")
	if sets != 1 {
		t.Errorf("%d writes reached the service, want 1: the first one's read-back stops the rest", sets)
	}
	if rep.Summary.Written != 0 {
		t.Errorf("written %d, want 0", rep.Summary.Written)
	}
	if len(rep.Errors) == 0 || !strings.Contains(rep.Errors[0], "reads back as") {
		t.Errorf("errors %q, want the read-back mismatch", rep.Errors)
	}
	// Directly: the typed error, and every later write refused unsent.
	r := findAddr(t, e, "alice@contoso.com")
	err = e.sink.Write(ctx(t), r, testCerts)
	var m *exchange.ReadBackMismatchError
	if !errors.As(err, &m) || !errors.Is(err, exchange.ErrReadBackMismatch) || m.Recipient == "" || m.Attribute == "" {
		t.Fatalf("Write = %v, want a *ReadBackMismatchError", err)
	}
	if n := e.exo.Requests("Set-Mailbox") + e.exo.Requests("Set-MailUser") + e.exo.Requests("Set-MailContact"); n != sets {
		t.Errorf("a write was sent after the mismatch")
	}
}

// TestFirstWritesConfirmed: the first three writes are read back; later
// ones are not.
func TestFirstWritesConfirmed(t *testing.T) {
	e := newEnv(t, exchangetest.Config{}, nil)
	e.exo.Add(seed()...)
	for _, addr := range []string{"alice@contoso.com", "bob@contoso.com", "carol@partner.example", "shared@contoso.com"} {
		if err := e.sink.Write(ctx(t), findAddr(t, e, addr), testCerts); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.sink.Stats().Confirmed; n != 3 {
		t.Errorf("Confirmed = %d, want 3", n)
	}
	if n := e.exo.Requests("Get-Mailbox"); n != 1 {
		t.Errorf("Get-Mailbox sent %d times, want 1 (alice confirmed, the shared mailbox not)", n)
	}
}

// TestModuleHeaders: every request carries X-SerializationLevel: Partial,
// Accept-Charset: UTF-8 and one connection-id (a UUID) for the process.
func TestModuleHeaders(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	conns := map[string]bool{}
	for range 2 { // two sinks, one process
		e := newEnv(t, exchangetest.Config{}, nil)
		e.exo.Add(seed()...)
		r := findAddr(t, e, "alice@contoso.com")
		if err := e.sink.Write(ctx(t), r, testCerts); err != nil {
			t.Fatal(err)
		}
		for _, q := range e.exo.Log() {
			h := q.Header
			if h.Get("X-SerializationLevel") != "Partial" || h.Get("Accept-Charset") != "UTF-8" || !uuid.MatchString(h.Get("connection-id")) {
				t.Errorf("%s %s: X-SerializationLevel %q, Accept-Charset %q, connection-id %q", q.Method, q.Cmdlet,
					h.Get("X-SerializationLevel"), h.Get("Accept-Charset"), h.Get("connection-id"))
			}
			conns[h.Get("connection-id")] = true
		}
	}
	if len(conns) != 1 {
		t.Errorf("%d connection-ids, want one for the process", len(conns))
	}
}

// syncBuffer is a bytes.Buffer safe for a logger used by several
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWarningsLogged: @adminapi.warnings are logged at warn level, naming
// the cmdlet and recipient, and counted.
func TestWarningsLogged(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e := newEnvLog(t, exchangetest.Config{}, nil, logger)
	e.exo.Add(seed()...)
	r := findAddr(t, e, "alice@contoso.com")
	for range 2 { // the second write changes nothing: the service warns
		if err := e.sink.Write(ctx(t), r, testCerts); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	t.Log(out)
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "cmdlet=Set-Mailbox") || !strings.Contains(out, r.ID) || !strings.Contains(out, "no settings") {
		t.Errorf("log %q lacks the warning with its cmdlet and recipient", out)
	}
	if n := e.sink.Stats().Warnings; n != 1 {
		t.Errorf("Stats.Warnings = %d, want 1", n)
	}
}

// TestRateLimitPacesBefore429: when Rate-Limit-Remaining reaches 0 the
// sink waits for Rate-Limit-Reset instead of running into a 429.
func TestRateLimitPacesBefore429(t *testing.T) {
	e := newEnv(t, exchangetest.Config{Budget: 3, Window: 300 * time.Millisecond}, func(c *exchange.Config) { c.ReadBack = exchange.ReadBackNever })
	e.exo.Add(seed()...)
	r := findAddr(t, e, "alice@contoso.com")
	for i := range 7 {
		if err := e.sink.Write(ctx(t), r, cloud.Certificates{UserCertificate: [][]byte{{0x30, byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	st := e.sink.Stats()
	t.Logf("stats %+v, service 429s %d", st, e.exo.Throttled())
	if e.exo.Throttled() != 0 || st.Throttled != 0 {
		t.Errorf("the service answered 429 %d times, want 0: the sink should pace on Rate-Limit-Remaining", e.exo.Throttled())
	}
	if st.Paced < 2 || st.RateLimited != 7 || st.RateLimitRemaining < 0 {
		t.Errorf("stats %+v, want Paced ≥ 2, RateLimited 7 and the last Remaining", st)
	}
}
