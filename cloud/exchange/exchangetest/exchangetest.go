// Package exchangetest is an Exchange Online admin endpoint for tests, in
// the spirit of net/http/httptest: a TLS server on loopback that answers
// POST /adminapi/beta/{tenant}/InvokeCommand for the cmdlets smimesync uses
// (Get-Recipient, Get-Mailbox, Get-MailUser, Get-MailContact, Set-Mailbox,
// Set-MailUser, Set-MailContact), over a tenant seeded from Go values.
//
// It enforces the contract FACTS.md documents: a bearer token from the
// azauthtest token server whose audience is this server's URL and whose
// tenant is the server's; the X-AnchorMailbox and client-request-id headers;
// byte arrays as {"Data":[0..255,…]} objects; at most [DefaultMaxValues]
// values of [DefaultMaxValueSize] bytes each; no writes to directory-synced
// objects (with the service's "out of the current user's write scope" text);
// OData errors and paging with @odata.nextLink; and a write budget per app
// and tenant (3,000 Set-* calls per 150 s by default) answered with 429 and
// a fractional Retry-After. Its clock can run faster than the wall clock
// ([Config.TimeScale]) so a 150 s window lasts 1.5 s at scale 100; the
// Retry-After it sends is in wall-clock seconds.
//
// Certificates read back as the string "System.Byte[]" by default in the
// JSON response format, as it is believed to render them (FACTS.md,
// unconfirmed); [Config.ReadBack] switches to base64 strings or
// {"Data":[…]} objects. Asked for with X-ResponseFormat: clixml and
// X-SerializationLevel: Partial, the per-type cmdlets answer CLIXML with
// base64 <BA> elements ([Config.CLIXML]); GET Mailbox('{id}') answers the
// entity with {"Data":[…]} values ([Config.NoEntity],
// [Config.EntityPlaceholder]).
//
// Its defaults are strict, as the service is believed to be: an annotated
// null is refused ([Config.AllowTypedNull]); a write that changes nothing
// carries @adminapi.warnings ([Config.NoWarnings]); writes carry
// Rate-Limit-Limit, -Remaining and -Reset ([Config.NoRateLimitHeaders]).
// [Config.Host] and [Config.RegionalHost] serve it under host names, the
// second behind a redirect from the first, reached through [Server.Route]
// without leaving the machine; [Config.Misread] models a service that
// stores other bytes than the client meant.
//
// Faults are injected on demand with [Server.Fail]; counters ([Server.Requests],
// [Server.Writes], [Server.Log]) let tests assert what reached the service.
package exchangetest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
)

// Defaults of [Config].
const (
	// DefaultBudget is the number of writes allowed per app and tenant in
	// each DefaultWindow (Microsoft's identity-and-access limit, FACTS.md).
	DefaultBudget = 3000
	// DefaultWindow is the length of a throttling window, in service time.
	DefaultWindow = 150 * time.Second
	// DefaultMaxValues is the most values an attribute may hold.
	DefaultMaxValues = 15
	// DefaultMaxValueSize is the largest value, in bytes (rangeUpper of
	// userSMIMECertificate in Active Directory).
	DefaultMaxValueSize = 32768
	// DefaultPageSize is the page size when the client does not ask for one.
	DefaultPageSize = 1000
	// AnchorPrefix starts the X-AnchorMailbox header of an app-only caller.
	AnchorPrefix = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@"
	// Placeholder is what a byte array reads back as in ReadBackPlaceholder mode.
	Placeholder = "System.Byte[]"
)

// ReadBack says how Get-Mailbox, Get-MailUser and Get-MailContact render
// the certificate properties.
type ReadBack int

const (
	// ReadBackPlaceholder renders each value as the string "System.Byte[]"
	// (the default; what the JSON format is believed to do).
	ReadBackPlaceholder ReadBack = iota
	// ReadBackBase64 renders each value as a base64 string.
	ReadBackBase64
	// ReadBackByteArray renders each value as {"Data":[…]}, as it is written.
	ReadBackByteArray
)

// Recipient is a mail-enabled object in the emulated tenant.
type Recipient struct {
	// Guid is the Exchange object GUID; required and unique.
	Guid string
	// Name is the object's name (its Identity in answers).
	Name string
	// PrimarySmtpAddress is the primary address.
	PrimarySmtpAddress string
	// EmailAddresses are proxy addresses ("SMTP:primary", "smtp:alias");
	// the primary address is added when missing.
	EmailAddresses []string
	// RecipientTypeDetails is "UserMailbox" (default), "SharedMailbox",
	// "MailUser", "GuestMailUser" or "MailContact".
	RecipientTypeDetails string
	// IsDirSynced marks an object synchronised from on premises: writes to
	// it are refused.
	IsDirSynced bool
	// ExternalDirectoryObjectId is the Entra object id.
	ExternalDirectoryObjectId string
	// UserCertificate and UserSMimeCertificate are the certificate values.
	UserCertificate      [][]byte
	UserSMimeCertificate [][]byte
}

// RecipientType returns the object's type as Get-Recipient's RecipientType
// says it: "UserMailbox", "MailUser" or "MailContact".
func (r Recipient) RecipientType() string {
	switch r.RecipientTypeDetails {
	case "MailUser", "GuestMailUser":
		return "MailUser"
	case "MailContact":
		return "MailContact"
	default:
		return "UserMailbox"
	}
}

// noun is the cmdlet noun that reads and writes this type.
func (r Recipient) noun() string {
	if t := r.RecipientType(); t != "UserMailbox" {
		return t
	}
	return "Mailbox"
}

// Config configures a [Server]. Tokens is required; the rest has defaults.
type Config struct {
	// Tokens verifies bearer tokens. Required.
	Tokens *azauthtest.Server
	// TenantID is the tenant the server serves: tokens must carry it, and
	// the URL's {tenant} may be it or Organization.
	TenantID string
	// Organization is the tenant's initial domain ("contoso.onmicrosoft.com").
	Organization string
	// Budget is the writes allowed per app and tenant in each Window
	// (default DefaultBudget; negative: unlimited).
	Budget int
	// Window is the throttling window in service time (default DefaultWindow).
	// The first write after a window ends opens the next one.
	Window time.Duration
	// TimeScale makes service time run this many times faster than the
	// wall clock (default 1).
	TimeScale float64
	// MaxValues and MaxValueSize bound what a Set-* may write (defaults
	// DefaultMaxValues and DefaultMaxValueSize).
	MaxValues, MaxValueSize int
	// ReadBack says how certificates are rendered when read.
	ReadBack ReadBack
	// MaxPageSize caps Prefer: odata.maxpagesize (default DefaultPageSize).
	MaxPageSize int
	// NextLinkBase, when set, replaces the server's own URL at the start
	// of every @odata.nextLink it writes: a test of where a client sends
	// its token when an answer names another host.
	NextLinkBase string
	// NextLinkHost, when set, makes every @odata.nextLink name this host
	// at the server's own port (Route reaches it), unless NextLinkBase is
	// set.
	NextLinkHost string

	// Host is the host name the server is reached at, instead of
	// 127.0.0.1: URL becomes https://Host:port (tokens are issued for
	// it). It must be a name the TLS certificate covers: "example.com" or
	// one label under it ("outlook.example.com"). Clients reach it through
	// a transport set up by [Server.Route]; nothing resolves it otherwise.
	Host string
	// RegionalHost, when set, is the tenant's regional host: every request
	// to any other host name is answered RedirectStatus with a Location
	// on RegionalHost (same port, path and query), as Exchange Online
	// redirects some tenants; requests to RegionalHost are served. The
	// same rule as Host applies to the name.
	RegionalHost string
	// RedirectStatus is the status of that redirect (default 302).
	RedirectStatus int

	// AllowTypedNull accepts a clearing null sent with an @odata.type
	// annotation ("UserCertificate@odata.type": …, "UserCertificate":
	// null). By default the server refuses it, as an OData reader may: the
	// module sends a plain null (FACTS.md).
	AllowTypedNull bool
	// CLIXML says how Get-Mailbox, Get-MailUser and Get-MailContact answer
	// a request with X-ResponseFormat: clixml (default CLIXMLBytes).
	CLIXML CLIXMLMode
	// NoEntity removes the Mailbox entity
	// (GET /adminapi/beta/{tenant}/Mailbox('{id}')): it answers 404.
	NoEntity bool
	// EntityPlaceholder makes the Mailbox entity render the certificates
	// as the JSON cmdlets are believed to ("System.Byte[]").
	EntityPlaceholder bool
	// NoWarnings leaves out @adminapi.warnings (by default a Set-* that
	// changes nothing carries one, as the service's does).
	NoWarnings bool
	// NoRateLimitHeaders leaves out the Rate-Limit-* headers (by default
	// every write's answer carries Rate-Limit-Limit, -Remaining and
	// -Reset, from the write budget).
	NoRateLimitHeaders bool
	// Misread, when set, models a service that accepts a write but
	// understands its bytes otherwise than the client meant (a wrong byte
	// encoding): each value written is stored as Misread returns it.
	Misread func(v []byte) []byte
	// RequireRole, when set, refuses a token whose roles claim lacks it
	// (an app without that application permission, as
	// "Exchange.ManageAsApp") with 401 and the service's text for an app
	// it does not authorise. Unconfirmed: the exact status and text the
	// service answers such an app with.
	RequireRole string
}

// CLIXMLMode says how the per-type cmdlets answer in CLIXML.
type CLIXMLMode int

const (
	// CLIXMLBytes answers with the JSON envelope whose "value" holds one
	// CLIXML document per object, certificates as lists of base64 <BA>
	// elements (the default). Without X-SerializationLevel: Partial the
	// certificates are rendered as "System.Byte[]" strings (unconfirmed:
	// the module always sends Partial).
	CLIXMLBytes CLIXMLMode = iota
	// CLIXMLPlaceholder renders each certificate as <S>System.Byte[]</S>.
	CLIXMLPlaceholder
	// CLIXMLIgnored answers in JSON whatever X-ResponseFormat says.
	CLIXMLIgnored
)

// FaultKind is a kind of injected failure.
type FaultKind int

const (
	// FaultStatus answers with Fault.Status (default 500) and an OData error.
	FaultStatus FaultKind = iota
	// FaultUnavailable answers 503 with Retry-After = Fault.RetryAfter.
	FaultUnavailable
	// FaultThrottle answers 429 with Retry-After = Fault.RetryAfter and
	// the text of the per-tenant concurrency limit.
	FaultThrottle
	// FaultTimeout never answers: the handler waits until the client gives up.
	FaultTimeout
	// FaultDrop closes the connection without an answer.
	FaultDrop
	// FaultSlow waits Fault.Delay, then serves the request normally.
	FaultSlow
	// FaultAdminAPIError answers 200 whose body carries @adminapi.errors;
	// nothing is applied.
	FaultAdminAPIError
	// FaultCutBody answers 200 with the start of a JSON body only, ended
	// cleanly (as a proxy that lost the service mid-answer may): the
	// client reads no transport error, only JSON that stops short.
	// Nothing is applied.
	FaultCutBody
)

// Fault is a failure to inject into the next matching requests.
type Fault struct {
	// Cmdlet limits the fault to one cmdlet ("" for any).
	Cmdlet string
	// Kind is what goes wrong.
	Kind FaultKind
	// Times is how many requests the fault hits (default 1).
	Times int
	// Status is the status of FaultStatus (default 500).
	Status int
	// RetryAfter is sent with FaultUnavailable and FaultThrottle (wall
	// clock; default 10 ms).
	RetryAfter time.Duration
	// Delay is FaultSlow's wait.
	Delay time.Duration
}

// Request is one request the server received, as [Server.Log] lists them.
type Request struct {
	// Cmdlet is the cmdlet name from the body ("" when unreadable).
	Cmdlet string
	// Identity is the -Identity parameter, if any.
	Identity string
	// ClientRequestID is the client-request-id header.
	ClientRequestID string
	// Status is the HTTP status answered (0 for a dropped connection or
	// timeout).
	Status int
	// Method and Host are the request's method and Host header.
	Method, Host string
	// Path is the request's path.
	Path string
	// Header holds the request's headers, Authorization left out.
	Header http.Header
	// Token reports whether the request carried a bearer token.
	Token bool
}

type rec struct {
	Recipient
	writes int
}

type budgetKey struct{ tenant, app string }

type window struct {
	start time.Duration // service time
	used  int
}

// page is where a listing goes on from, named by the $skiptoken of its
// @odata.nextLink: after the recipient whose Guid is after (the recipients
// are kept in Guid order), seen of the listing's recipients having been
// returned. A page resumes with a binary search, so a listing costs what
// it returns, and a recipient added while it pages is listed once (if it
// comes after the page) or not at all, never twice.
type page struct {
	cmdlet  string
	body    string
	after   string
	seen    int
	expires time.Duration
}

// Server is a running emulator.
type Server struct {
	// URL is "https://127.0.0.1:port"; give it to the sink as its Exchange
	// endpoint. Tokens must be issued for this audience.
	URL string

	cfg   Config
	srv   *httptest.Server
	start time.Time
	done  chan struct{}

	mu        sync.Mutex
	recs      []*rec
	byKey     map[string]*rec
	budget    map[budgetKey]*window
	pages     map[string]*page
	nextPage  int
	redirects int
	faults    []*Fault
	requests  map[string]int
	throttled int
	log       []*Request
}

// NewServer starts an emulator over TLS (with net/http/httptest's
// certificate, which the azauthtest server's Client also trusts).
func NewServer(cfg Config) *Server {
	if cfg.Tokens == nil {
		panic("exchangetest: Config.Tokens is required")
	}
	if cfg.Budget == 0 {
		cfg.Budget = DefaultBudget
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 1
	}
	if cfg.MaxValues <= 0 {
		cfg.MaxValues = DefaultMaxValues
	}
	if cfg.MaxValueSize <= 0 {
		cfg.MaxValueSize = DefaultMaxValueSize
	}
	if cfg.MaxPageSize <= 0 {
		cfg.MaxPageSize = DefaultPageSize
	}
	s := &Server{
		cfg: cfg, start: time.Now(), done: make(chan struct{}),
		byKey: map[string]*rec{}, budget: map[budgetKey]*window{},
		pages: map[string]*page{}, requests: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/adminapi/beta/{tenant}/{entity}", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.PathValue("entity") == "InvokeCommand":
			s.invoke(w, r)
		case r.Method == http.MethodGet:
			s.entity(w, r)
		default:
			odataError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "", "", "entities take GET")
		}
	})
	s.srv = httptest.NewTLSServer(s.redirecting(mux))
	s.URL = s.srv.URL
	if cfg.Host != "" {
		s.URL = "https://" + net.JoinHostPort(cfg.Host, s.port())
	}
	return s
}

func (s *Server) port() string {
	_, port, _ := net.SplitHostPort(s.srv.Listener.Addr().String())
	return port
}

// redirecting answers every request to a host other than RegionalHost
// with a redirect there, when RegionalHost is set.
func (s *Server) redirecting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.RegionalHost == "" || strings.EqualFold(hostOnly(r.Host), s.cfg.RegionalHost) {
			next.ServeHTTP(w, r)
			return
		}
		status := s.cfg.RedirectStatus
		if status == 0 {
			status = http.StatusFound
		}
		body := readAll(r)
		var in invocation
		_ = json.Unmarshal(body, &in)
		q := s.record(Request{Cmdlet: in.CmdletInput.CmdletName, Identity: unquote(in.CmdletInput.Parameters["Identity"]),
			ClientRequestID: r.Header.Get("client-request-id"), Method: r.Method, Host: r.Host, Path: r.URL.Path,
			Header: headerWithoutToken(r.Header), Token: r.Header.Get("Authorization") != ""})
		s.mu.Lock()
		s.redirects++
		q.Status = status
		s.mu.Unlock()
		loc := "https://" + net.JoinHostPort(s.cfg.RegionalHost, s.port()) + r.URL.RequestURI()
		w.Header().Set("Location", loc)
		w.WriteHeader(status)
	})
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

func headerWithoutToken(h http.Header) http.Header {
	c := h.Clone()
	c.Del("Authorization")
	return c
}

// Redirects returns the number of requests answered with a redirect to
// RegionalHost.
func (s *Server) Redirects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.redirects
}

// Route makes t reach the server under its host names (Host,
// RegionalHost and NextLinkHost, at the server's port) and refuses to dial any other name
// that is not a loopback address, so that a test never sends traffic off
// the machine. It returns t.
func (s *Server) Route(t *http.Transport) *http.Transport {
	addr := s.srv.Listener.Addr().String()
	names := map[string]bool{}
	for _, n := range []string{s.cfg.Host, s.cfg.RegionalHost, s.cfg.NextLinkHost} {
		if n != "" {
			names[strings.ToLower(n)] = true
		}
	}
	next := t.DialContext
	if next == nil {
		next = (&net.Dialer{}).DialContext
	}
	t.DialContext = func(ctx context.Context, network, hostport string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(hostport)
		if err != nil {
			return nil, err
		}
		if names[strings.ToLower(host)] {
			return next(ctx, network, addr)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || strings.EqualFold(host, "localhost") {
			return next(ctx, network, hostport)
		}
		return nil, fmt.Errorf("exchangetest: refusing to dial %s: not a name of this server nor a loopback address", hostport)
	}
	return t
}

// Close stops the server, ending requests held by FaultTimeout.
func (s *Server) Close() {
	close(s.done)
	s.srv.Close()
}

// Client returns a client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Add seeds recipients. A Guid already present is replaced.
func (s *Server) Add(rs ...Recipient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		if r.RecipientTypeDetails == "" {
			r.RecipientTypeDetails = "UserMailbox"
		}
		if r.Name == "" {
			r.Name = strings.SplitN(r.PrimarySmtpAddress, "@", 2)[0]
		}
		hasPrimary := false
		for _, a := range r.EmailAddresses {
			if strings.EqualFold(a, "SMTP:"+r.PrimarySmtpAddress) {
				hasPrimary = true
			}
		}
		if !hasPrimary && r.PrimarySmtpAddress != "" {
			r.EmailAddresses = append([]string{"SMTP:" + r.PrimarySmtpAddress}, r.EmailAddresses...)
		}
		r.UserCertificate = clone(r.UserCertificate)
		r.UserSMimeCertificate = clone(r.UserSMimeCertificate)
		if old := s.byKey[strings.ToLower(r.Guid)]; old != nil {
			old.Recipient = r
			s.indexLocked(old)
			continue
		}
		x := &rec{Recipient: r}
		s.recs = append(s.recs, x)
		s.indexLocked(x)
	}
	sort.Slice(s.recs, func(i, j int) bool { return s.recs[i].Guid < s.recs[j].Guid })
}

func (s *Server) indexLocked(x *rec) {
	for _, k := range []string{x.Guid, x.Name, x.PrimarySmtpAddress, x.ExternalDirectoryObjectId} {
		if k != "" {
			s.byKey[strings.ToLower(k)] = x
		}
	}
	for _, a := range x.EmailAddresses {
		if len(a) > 5 && strings.EqualFold(a[:5], "smtp:") {
			s.byKey[strings.ToLower(a[5:])] = x
		}
	}
}

func clone(v [][]byte) [][]byte {
	if v == nil {
		return nil
	}
	out := make([][]byte, len(v))
	for i, b := range v {
		out[i] = append([]byte(nil), b...)
	}
	return out
}

// Recipient returns a copy of the recipient whose Guid, name or address is
// identity.
func (s *Server) Recipient(identity string) (Recipient, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.byKey[strings.ToLower(identity)]
	if x == nil {
		return Recipient{}, false
	}
	r := x.Recipient
	r.UserCertificate = clone(r.UserCertificate)
	r.UserSMimeCertificate = clone(r.UserSMimeCertificate)
	return r, true
}

// Writes returns how many Set-* calls were applied to the recipient.
func (s *Server) Writes(identity string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x := s.byKey[strings.ToLower(identity)]; x != nil {
		return x.writes
	}
	return 0
}

// WriteCounts returns the number of applied writes per recipient Guid, for
// recipients written at least once.
func (s *Server) WriteCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, x := range s.recs {
		if x.writes > 0 {
			out[x.Guid] = x.writes
		}
	}
	return out
}

// Requests returns the number of requests received for cmdlet ("" for all).
func (s *Server) Requests(cmdlet string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cmdlet == "" {
		return len(s.log)
	}
	return s.requests[cmdlet]
}

// Throttled returns the number of 429 answers given for the write budget.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Log returns every request received, in order of arrival.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.log))
	for i, q := range s.log {
		out[i] = *q
	}
	return out
}

// ResetCounters clears the request log and counters (not the tenant).
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
	s.requests = map[string]int{}
	s.throttled = 0
	for _, x := range s.recs {
		x.writes = 0
	}
}

// Fail queues a fault for the next matching requests.
func (s *Server) Fail(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	if f.RetryAfter <= 0 {
		f.RetryAfter = 10 * time.Millisecond
	}
	s.mu.Lock()
	s.faults = append(s.faults, &f)
	s.mu.Unlock()
}

// now is the service clock: wall time since start, scaled.
func (s *Server) now() time.Duration {
	return time.Duration(float64(time.Since(s.start)) * s.cfg.TimeScale)
}

// wall converts a service duration to wall-clock time.
func (s *Server) wall(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.cfg.TimeScale)
}

type invocation struct {
	CmdletInput struct {
		CmdletName string                     `json:"CmdletName"`
		Parameters map[string]json.RawMessage `json:"Parameters"`
	} `json:"CmdletInput"`
}

// record logs the request; the caller fills in its status later.
func (s *Server) record(q Request) *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, &q)
	if q.Cmdlet != "" {
		s.requests[q.Cmdlet]++
	}
	return &q
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) invoke(hw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		odataError(hw, http.StatusMethodNotAllowed, "MethodNotAllowed", "", "", "InvokeCommand takes POST")
		return
	}
	var in invocation
	body := readAll(r)
	_ = json.Unmarshal(body, &in)
	cmdlet := in.CmdletInput.CmdletName
	identity := unquote(in.CmdletInput.Parameters["Identity"])
	logged := s.record(Request{Cmdlet: cmdlet, Identity: identity, ClientRequestID: r.Header.Get("client-request-id"),
		Method: r.Method, Host: r.Host, Path: r.URL.Path, Header: headerWithoutToken(r.Header), Token: r.Header.Get("Authorization") != ""})
	w := &statusWriter{ResponseWriter: hw}
	defer func() {
		s.mu.Lock()
		logged.Status = w.status
		s.mu.Unlock()
	}()

	claims, ok := s.authorize(w, r)
	if !ok {
		return
	}
	if t := r.PathValue("tenant"); !strings.EqualFold(t, s.cfg.TenantID) && !strings.EqualFold(t, s.cfg.Organization) {
		odataError(w, http.StatusNotFound, "NotFound", "", "", fmt.Sprintf("tenant %q is not served here", t))
		return
	}
	if a := r.Header.Get("X-AnchorMailbox"); !strings.HasPrefix(a, AnchorPrefix) && !strings.HasPrefix(a, "UPN:") {
		odataError(w, http.StatusBadRequest, "BadRequest", "", "", "X-AnchorMailbox is missing or malformed")
		return
	}
	if r.Header.Get("client-request-id") == "" {
		odataError(w, http.StatusBadRequest, "BadRequest", "", "", "client-request-id is required")
		return
	}
	if cmdlet == "" {
		odataError(w, http.StatusBadRequest, "BadRequest", "", "", "body must be {\"CmdletInput\":{\"CmdletName\":…,\"Parameters\":{…}}}")
		return
	}
	if h := r.Header.Get("X-CmdletName"); h != "" && !strings.EqualFold(h, cmdlet) {
		odataError(w, http.StatusBadRequest, "BadRequest", "", "", fmt.Sprintf("X-CmdletName %q does not match %q", h, cmdlet))
		return
	}
	if s.fault(w, r, cmdlet) {
		return
	}
	switch cmdlet {
	case "Get-Recipient", "Get-Mailbox", "Get-MailUser", "Get-MailContact":
		s.get(w, r, cmdlet, in.CmdletInput.Parameters, body)
	case "Set-Mailbox", "Set-MailUser", "Set-MailContact":
		s.set(w, claims, cmdlet, in.CmdletInput.Parameters)
	default:
		odataError(w, http.StatusForbidden, "Forbidden", "", "", fmt.Sprintf("The term '%s' is not recognized or is not allowed for this caller.", cmdlet))
	}
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (azauthtest.Claims, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_request"`)
		odataError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "", "", "Bearer token is missing")
		return azauthtest.Claims{}, false
	}
	c, err := s.cfg.Tokens.Verify(tok, s.URL)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		odataError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "", "", err.Error())
		return c, false
	}
	if !strings.EqualFold(c.TenantID, s.cfg.TenantID) {
		odataError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "", "", fmt.Sprintf("token is for tenant %s", c.TenantID))
		return c, false
	}
	if role := s.cfg.RequireRole; role != "" && !containsFold(c.Roles, role) {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
		odataError(w, http.StatusUnauthorized, "Unauthorized", "", "", fmt.Sprintf("The role assigned to application %s isn't supported in this scenario: the token carries no %s permission.", c.AppID, role))
		return c, false
	}
	return c, true
}

// fault applies the first queued fault matching cmdlet; it reports whether
// the request was answered (or dropped).
func (s *Server) fault(w *statusWriter, r *http.Request, cmdlet string) bool {
	s.mu.Lock()
	var f Fault
	found := false
	for i, q := range s.faults {
		if q.Cmdlet == "" || strings.EqualFold(q.Cmdlet, cmdlet) {
			f = *q
			found = true
			q.Times--
			if q.Times <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			break
		}
	}
	s.mu.Unlock()
	if !found {
		return false
	}
	switch f.Kind {
	case FaultStatus:
		st := f.Status
		if st == 0 {
			st = http.StatusInternalServerError
		}
		odataError(w, st, http.StatusText(st), "", "", "injected fault")
	case FaultUnavailable:
		w.Header().Set("Retry-After", seconds(f.RetryAfter))
		odataError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "", "", "The service is temporarily unavailable.")
	case FaultThrottle:
		w.Header().Set("Retry-After", seconds(f.RetryAfter))
		odataError(w, http.StatusTooManyRequests, "TooManyRequests", "", "", "You have reached the maximum number of concurrent requests per tenant. Please wait for other requests to complete.")
	case FaultTimeout:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
	case FaultCutBody:
		w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"@odata.context":"https://outlook.office365.com/adminapi/beta/$metadata#Collection(`)
	case FaultDrop:
		hj, ok := w.ResponseWriter.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := hj.Hijack()
		if err == nil {
			_ = conn.Close()
		}
	case FaultSlow:
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return true
		case <-s.done:
			return true
		}
		return false
	case FaultAdminAPIError:
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.context": s.URL + "/adminapi/beta/$metadata#Collection(Exchange.GenericHashTable)",
			"value":          []any{},
			"@adminapi.errors": []map[string]string{{
				"code":    "Context",
				"message": "Ex1A2B3C|Microsoft.Exchange.Configuration.Tasks.TaskException|injected non-terminating error",
			}},
		})
	}
	return true
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, cmdlet string, params map[string]json.RawMessage, body []byte) {
	noun := strings.TrimPrefix(cmdlet, "Get-")
	if id := unquote(params["Identity"]); id != "" {
		s.mu.Lock()
		x := s.byKey[strings.ToLower(id)]
		var out map[string]any
		var item any
		if x != nil && (noun == "Recipient" || x.noun() == noun) {
			out = s.render(x, noun != "Recipient")
			item = s.item(r, x, out, noun)
		}
		s.mu.Unlock()
		if out == nil {
			notFound(w, id)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.context(noun), "value": []any{item}})
		return
	}
	types := stringList(params["RecipientType"])
	size := s.cfg.MaxPageSize
	if p := r.Header.Get("Prefer"); p != "" {
		for _, part := range strings.Split(p, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "odata.maxpagesize="); ok {
				if n, err := strconv.Atoi(v); err == nil && n > 0 && n < size {
					size = n
				}
			}
		}
	}
	if rs := unquote(params["ResultSize"]); rs != "" && !strings.EqualFold(rs, "Unlimited") {
		if _, err := strconv.Atoi(rs); err != nil {
			odataError(w, http.StatusBadRequest, "BadRequest", "ParameterBindingException", "System.Management.Automation.ParameterBindingException", fmt.Sprintf("Cannot bind parameter 'ResultSize' to %q", rs))
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, seen := 0, 0
	if tok := r.URL.Query().Get("$skiptoken"); tok != "" {
		p := s.pages[tok]
		if p == nil || p.expires < s.now() || p.cmdlet != cmdlet || p.body != string(body) {
			s.mu.Unlock()
			odataError(w, http.StatusBadRequest, "BadRequest", "", "", "The skip token is invalid or has expired.")
			s.mu.Lock()
			return
		}
		delete(s.pages, tok)
		i = sort.Search(len(s.recs), func(i int) bool { return s.recs[i].Guid > p.after })
		seen = p.seen
	}
	limit := -1
	if rs := unquote(params["ResultSize"]); rs != "" && !strings.EqualFold(rs, "Unlimited") {
		limit, _ = strconv.Atoi(rs)
	}
	var value []any
	last := ""
	for ; i < len(s.recs); i++ {
		x := s.recs[i]
		if noun != "Recipient" && x.noun() != noun || len(types) > 0 && !contains(types, x.RecipientType()) {
			continue
		}
		if len(value) == size || limit >= 0 && seen >= limit {
			break
		}
		value = append(value, s.item(r, x, s.render(x, noun != "Recipient"), noun))
		last = x.Guid
		seen++
	}
	resp := map[string]any{"@odata.context": s.context(noun), "value": value}
	if i < len(s.recs) && (limit < 0 || seen < limit) && len(value) == size {
		s.nextPage++
		tok := strconv.Itoa(s.nextPage) + "-" + base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(seen)))
		s.pages[tok] = &page{cmdlet: cmdlet, body: string(body), after: last, seen: seen, expires: s.now() + 10*time.Minute}
		base := s.URL
		switch {
		case s.cfg.NextLinkBase != "":
			base = s.cfg.NextLinkBase
		case s.cfg.NextLinkHost != "":
			base = "https://" + net.JoinHostPort(s.cfg.NextLinkHost, s.port())
		}
		resp["@odata.nextLink"] = base + r.URL.Path + "?$skiptoken=" + tok
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
	s.mu.Lock()
}

func (s *Server) context(noun string) string {
	return s.URL + "/adminapi/beta/" + s.cfg.TenantID + "/$metadata#" + noun
}

// render returns the recipient as the service would; withCerts adds the
// certificate properties (the per-type cmdlets return them).
func (s *Server) render(x *rec, withCerts bool) map[string]any {
	m := map[string]any{
		"Guid@odata.type":             "#Guid",
		"Guid":                        x.Guid,
		"ExchangeObjectId@odata.type": "#Guid",
		"ExchangeObjectId":            x.Guid,
		"Identity":                    x.Name,
		"Name":                        x.Name,
		"DisplayName":                 x.Name,
		"PrimarySmtpAddress":          x.PrimarySmtpAddress,
		"EmailAddresses@odata.type":   "#Collection(String)",
		"EmailAddresses":              x.EmailAddresses,
		"RecipientType":               x.RecipientType(),
		"RecipientTypeDetails":        x.RecipientTypeDetails,
		"IsDirSynced":                 x.IsDirSynced,
		"ExternalDirectoryObjectId":   x.ExternalDirectoryObjectId,
	}
	if withCerts {
		m["UserCertificate@odata.type"] = "#Collection(String)"
		m["UserCertificate"] = s.renderValues(x.UserCertificate)
		m["UserSMimeCertificate@odata.type"] = "#Collection(String)"
		m["UserSMimeCertificate"] = s.renderValues(x.UserSMimeCertificate)
	}
	return m
}

func (s *Server) renderValues(vs [][]byte) []any {
	out := make([]any, 0, len(vs))
	for _, v := range vs {
		switch s.cfg.ReadBack {
		case ReadBackBase64:
			out = append(out, base64.StdEncoding.EncodeToString(v))
		case ReadBackByteArray:
			ints := make([]int, len(v))
			for i, b := range v {
				ints[i] = int(b)
			}
			out = append(out, map[string]any{"Data": ints})
		default:
			out = append(out, Placeholder)
		}
	}
	return out
}

func (s *Server) set(w http.ResponseWriter, c azauthtest.Claims, cmdlet string, params map[string]json.RawMessage) {
	id := unquote(params["Identity"])
	if id == "" {
		odataError(w, http.StatusBadRequest, "BadRequest", "ParameterBindingException", "System.Management.Automation.ParameterBindingException", "Cannot process command because of one or more missing mandatory parameters: Identity.")
		return
	}
	// The write budget, per app and tenant.
	if s.cfg.Budget > 0 {
		s.mu.Lock()
		k := budgetKey{strings.ToLower(c.TenantID), strings.ToLower(c.AppID)}
		win := s.budget[k]
		now := s.now()
		if win == nil || now-win.start >= s.cfg.Window {
			win = &window{start: now}
			s.budget[k] = win
		}
		if win.used >= s.cfg.Budget {
			s.throttled++
			left := s.wall(win.start + s.cfg.Window - now)
			s.mu.Unlock()
			w.Header().Set("Retry-After", seconds(left))
			if !s.cfg.NoRateLimitHeaders {
				w.Header().Set("Rate-Limit-Limit", strconv.Itoa(s.cfg.Budget))
				w.Header().Set("Rate-Limit-Remaining", "0")
				w.Header().Set("Rate-Limit-Reset", seconds(left))
			}
			odataError(w, http.StatusTooManyRequests, "TooManyRequests", "", "", "Application is over its write limit for this tenant. Retry after the time given in Retry-After.")
			return
		}
		win.used++
		if !s.cfg.NoRateLimitHeaders {
			w.Header().Set("Rate-Limit-Limit", strconv.Itoa(s.cfg.Budget))
			w.Header().Set("Rate-Limit-Remaining", strconv.Itoa(s.cfg.Budget-win.used))
			w.Header().Set("Rate-Limit-Reset", seconds(s.wall(win.start+s.cfg.Window-now)))
			w.Header().Set("Rate-Limit-Reason", "write budget per app and tenant")
		}
		s.mu.Unlock()
	}

	type change struct {
		name string
		vals [][]byte
	}
	var changes []change
	for name, raw := range params {
		base, annotation := strings.CutSuffix(name, "@odata.type")
		switch {
		case base == "Identity":
			continue
		case base != "UserCertificate" && base != "UserSMimeCertificate":
			odataError(w, http.StatusBadRequest, "BadRequest", "ParameterBindingException", "System.Management.Automation.ParameterBindingException", fmt.Sprintf("A parameter cannot be found that matches parameter name '%s'.", name))
			return
		case annotation:
			if unquote(raw) != "#Collection(Exchange.ByteArrayType)" {
				odataError(w, http.StatusBadRequest, "BadRequest", "ParameterBindingException", "System.Management.Automation.ParameterBindingException", fmt.Sprintf("%s: type %s is not #Collection(Exchange.ByteArrayType)", name, raw))
				return
			}
			if v, ok := params[base]; ok && string(v) == "null" && !s.cfg.AllowTypedNull {
				odataError(w, http.StatusBadRequest, "BadRequest", "", "Microsoft.OData.ODataException",
					fmt.Sprintf("A null value was found for the property named '%s', which has the expected type '%s'. The expected type does not allow null values.", base, unquote(raw)))
				return
			}
			continue
		}
		vals, err := parseByteArrays(raw)
		if err != nil {
			odataError(w, http.StatusBadRequest, "BadRequest", "ParameterBindingException", "System.Management.Automation.ParameterBindingException", fmt.Sprintf("Cannot process argument transformation on parameter '%s'. %v", base, err))
			return
		}
		if len(vals) > s.cfg.MaxValues {
			odataError(w, http.StatusBadRequest, "BadRequest", "Ex9B1C37", "Microsoft.Exchange.Data.DataValidationException", fmt.Sprintf("The length of the property %s is too long. The maximum number of values is %d; %d were given.", base, s.cfg.MaxValues, len(vals)))
			return
		}
		for i, v := range vals {
			if len(v) > s.cfg.MaxValueSize {
				odataError(w, http.StatusBadRequest, "BadRequest", "Ex9B1C38", "Microsoft.Exchange.Data.DataValidationException", fmt.Sprintf("Value %d of %s is %d bytes; the maximum is %d.", i, base, len(v), s.cfg.MaxValueSize))
				return
			}
		}
		changes = append(changes, change{base, vals})
	}
	noun := strings.TrimPrefix(cmdlet, "Set-")
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.byKey[strings.ToLower(id)]
	if x == nil || x.noun() != noun {
		s.mu.Unlock()
		notFound(w, id)
		s.mu.Lock()
		return
	}
	if x.IsDirSynced && len(changes) > 0 {
		s.mu.Unlock()
		odataError(w, http.StatusBadRequest, "BadRequest", "Ex3ACF2A", "Microsoft.Exchange.Management.Tasks.TaskException",
			fmt.Sprintf("The operation on %s \"%s\" failed because it's out of the current user's write scope. The action '%s', '%s', can't be performed on the object '%s' because the object is being synchronized from your on-premises organization. This action should be performed on the object in your on-premises organization.",
				strings.ToLower(noun), x.Name, cmdlet, changes[0].name, x.Name))
		s.mu.Lock()
		return
	}
	modified := false
	for _, ch := range changes {
		if s.cfg.Misread != nil {
			for i, v := range ch.vals {
				ch.vals[i] = s.cfg.Misread(v)
			}
		}
		dst := &x.UserSMimeCertificate
		if ch.name == "UserCertificate" {
			dst = &x.UserCertificate
		}
		if !sameValues(*dst, ch.vals) {
			modified = true
		}
		*dst = ch.vals
	}
	x.writes++
	s.mu.Unlock()
	resp := map[string]any{"@odata.context": s.context("Collection(Exchange.GenericHashTable)"), "value": []any{}}
	if !modified && !s.cfg.NoWarnings {
		resp["@adminapi.warnings"] = []string{fmt.Sprintf("The command completed successfully but no settings of '%s' have been modified.", x.Name)}
	}
	writeJSON(w, http.StatusOK, resp)
	s.mu.Lock()
}

func sameValues(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i]) != string(b[i]) {
			return false
		}
	}
	return true
}

// item is how a recipient is rendered in a "value" list: out, its JSON
// rendering, or, for a per-type cmdlet asked for in CLIXML, a CLIXML
// document as a JSON string.
func (s *Server) item(r *http.Request, x *rec, out map[string]any, noun string) any {
	if noun == "Recipient" || !strings.EqualFold(r.Header.Get("X-ResponseFormat"), "clixml") || s.cfg.CLIXML == CLIXMLIgnored {
		return out
	}
	bytesOK := s.cfg.CLIXML == CLIXMLBytes && strings.EqualFold(r.Header.Get("X-SerializationLevel"), "Partial")
	return s.clixml(x, noun, bytesOK)
}

// clixml renders a recipient as PowerShell serializes it: an <Objs>
// document with one <Obj>, the certificates as MultiValuedProperty lists of
// <BA> (base64) elements when bytesOK, else of <S>System.Byte[]</S>.
func (s *Server) clixml(x *rec, noun string, bytesOK bool) string {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString(`<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">`)
	fmt.Fprintf(&b, `<Obj RefId="0"><TN RefId="0"><T>Deserialized.Microsoft.Exchange.Data.Directory.Management.%s</T><T>Deserialized.Microsoft.Exchange.Data.Directory.ADPresentationObject</T><T>Deserialized.System.Object</T></TN><ToString>%s</ToString><Props>`, noun, esc(x.Name))
	fmt.Fprintf(&b, `<S N="Name">%s</S><G N="Guid">%s</G><S N="PrimarySmtpAddress">%s</S><S N="RecipientTypeDetails">%s</S><B N="IsDirSynced">%t</B>`,
		esc(x.Name), esc(x.Guid), esc(x.PrimarySmtpAddress), esc(x.RecipientTypeDetails), x.IsDirSynced)
	for i, p := range []struct {
		name string
		vals [][]byte
	}{{"UserCertificate", x.UserCertificate}, {"UserSMimeCertificate", x.UserSMimeCertificate}} {
		fmt.Fprintf(&b, `<Obj N="%s" RefId="%d">`, p.name, i+1)
		if i == 0 {
			b.WriteString(`<TN RefId="1"><T>Deserialized.Microsoft.Exchange.Data.MultiValuedProperty` + "`" + `1[[System.Byte[], System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e]]</T><T>Deserialized.Microsoft.Exchange.Data.MultiValuedPropertyBase</T><T>Deserialized.System.Object</T></TN>`)
		} else {
			b.WriteString(`<TNRef RefId="1" />`)
		}
		if len(p.vals) == 0 {
			b.WriteString(`<LST /></Obj>`)
			continue
		}
		b.WriteString(`<LST>`)
		for _, v := range p.vals {
			if bytesOK {
				b.WriteString(`<BA>` + base64.StdEncoding.EncodeToString(v) + `</BA>`)
			} else {
				b.WriteString(`<S>` + Placeholder + `</S>`)
			}
		}
		b.WriteString(`</LST></Obj>`)
	}
	b.WriteString(`</Props></Obj></Objs>`)
	return b.String()
}

// entity answers GET /adminapi/beta/{tenant}/Mailbox('{id}'): the
// mailbox's certificates typed Collection(Exchange.ByteArrayType), each
// {"Data":[…]} (or "System.Byte[]" with EntityPlaceholder).
func (s *Server) entity(hw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: hw}
	logged := s.record(Request{Cmdlet: "GET Mailbox", ClientRequestID: r.Header.Get("client-request-id"),
		Method: r.Method, Host: r.Host, Path: r.URL.Path, Header: headerWithoutToken(r.Header), Token: r.Header.Get("Authorization") != ""})
	defer func() {
		s.mu.Lock()
		logged.Status = w.status
		s.mu.Unlock()
	}()
	if _, ok := s.authorize(w, r); !ok {
		return
	}
	ent := r.PathValue("entity")
	key, ok := strings.CutPrefix(ent, "Mailbox('")
	key, ok2 := strings.CutSuffix(key, "')")
	if s.cfg.NoEntity || !ok || !ok2 {
		odataError(w, http.StatusNotFound, "NotFound", "", "", fmt.Sprintf("No HTTP resource was found that matches the request URI %q.", r.URL.Path))
		return
	}
	if t := r.PathValue("tenant"); !strings.EqualFold(t, s.cfg.TenantID) && !strings.EqualFold(t, s.cfg.Organization) {
		odataError(w, http.StatusNotFound, "NotFound", "", "", fmt.Sprintf("tenant %q is not served here", t))
		return
	}
	key = strings.ReplaceAll(key, "''", "'")
	s.mu.Lock()
	x := s.byKey[strings.ToLower(key)]
	if x == nil || x.noun() != "Mailbox" {
		s.mu.Unlock()
		notFound(w, key)
		return
	}
	m := map[string]any{
		"@odata.context":     s.URL + "/adminapi/beta/" + s.cfg.TenantID + "/$metadata#Mailbox/$entity",
		"ExchangeObjectId":   x.Guid,
		"Guid":               x.Guid,
		"PrimarySmtpAddress": x.PrimarySmtpAddress,
	}
	for _, p := range []struct {
		name string
		vals [][]byte
	}{{"UserCertificate", x.UserCertificate}, {"UserSMimeCertificate", x.UserSMimeCertificate}} {
		vals := make([]any, 0, len(p.vals))
		for _, v := range p.vals {
			if s.cfg.EntityPlaceholder {
				vals = append(vals, Placeholder)
				continue
			}
			ints := make([]int, len(v))
			for i, c := range v {
				ints[i] = int(c)
			}
			vals = append(vals, map[string]any{"Data": ints})
		}
		if s.cfg.EntityPlaceholder {
			m[p.name+"@odata.type"] = "#Collection(String)"
		} else {
			m[p.name+"@odata.type"] = "#Collection(Exchange.ByteArrayType)"
		}
		m[p.name] = vals
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, m)
}

// parseByteArrays reads a MultiValuedProperty of byte arrays as the
// documented wire form: null, or [{"Data":[0..255,…]},…].
func parseByteArrays(raw json.RawMessage) ([][]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []struct {
		Data *[]int `json:"Data"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("want null or a list of {\"Data\":[bytes]}: %v", err)
	}
	out := make([][]byte, 0, len(items))
	for i, it := range items {
		if it.Data == nil {
			return nil, fmt.Errorf("value %d has no Data", i)
		}
		b := make([]byte, len(*it.Data))
		for j, n := range *it.Data {
			if n < 0 || n > 255 {
				return nil, fmt.Errorf("value %d byte %d is %d, not 0..255", i, j, n)
			}
			b[j] = byte(n)
		}
		out = append(out, b)
	}
	return out, nil
}

func notFound(w http.ResponseWriter, id string) {
	odataError(w, http.StatusNotFound, "NotFound", "Ex6F9304", "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
		fmt.Sprintf("The operation couldn't be performed because object '%s' couldn't be found on 'EMULATOR.PROD.OUTLOOK.COM'.", id))
}

// odataError writes the service's error shape.
func odataError(w http.ResponseWriter, status int, code, errorID, class, text string) {
	msg := text
	if errorID != "" || class != "" {
		msg = errorID + "|" + class + "|" + text
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code":    code,
		"message": "Error executing cmdlet",
		"details": []map[string]string{{"code": "Context", "target": "", "message": msg}},
		"innererror": map[string]string{
			"message": text,
			"type":    class,
		},
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func readAll(r *http.Request) []byte {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	return b
}

// unquote reads a parameter given as a string, or as a number (returned
// in its JSON spelling: -ResultSize 1 arrives as 1).
func unquote(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func containsFold(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// stringList reads a parameter given as a string ("a,b") or a list.
func stringList(raw json.RawMessage) []string {
	var l []string
	if json.Unmarshal(raw, &l) == nil {
		return l
	}
	if s := unquote(raw); s != "" {
		for _, p := range strings.Split(s, ",") {
			l = append(l, strings.TrimSpace(p))
		}
	}
	return l
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
