// Package graphtest is a Microsoft Graph endpoint for tests, in the spirit of
// net/http/httptest: a TLS server on loopback that serves the part of Graph
// v1.0 the graph sink uses — listing and filtering users, reading one user,
// PATCHing authorizationInfo.certificateUserIds, and JSON $batch — for a
// tenant seeded from Go values.
//
// It enforces the documented contract (FACTS.md, "Microsoft Graph"):
//
//   - every request carries a bearer token that the token emulator
//     (cloud/azauth/azauthtest) issued for this server's audience; a
//     missing, invalid or wrong-audience token gets 401;
//   - certificateUserIds holds at most 10 values of at most 1024 characters
//     each, and a value may be held by one user of the tenant only;
//   - a directory-synced user (onPremisesSyncEnabled) cannot be written;
//   - writes are throttled per app and tenant (3,000 per 150 s) and per
//     tenant (18,000 per 5 min) with 429 and Retry-After, inside $batch too,
//     where each item is throttled on its own;
//   - a $batch holds at most 20 requests, with relative URLs;
//   - a body labelled Content-Encoding: gzip must be gzip.
//
// Faults are injected on demand ([Server.Inject]): an error status, a slow
// answer, or a dropped connection, for plain requests or $batch items.
//
// The emulator's clock can run faster than the wall clock
// ([Config.TimeScale]) so a test can cross throttling windows quickly; the
// Retry-After it sends is then in real seconds, with a fraction (the
// service sends whole seconds).
//
// Choices the documentation leaves open are the emulator's own and are
// marked in the code: the wording of error messages, case-insensitive
// matching of filter values and of certificateUserIds uniqueness, a sliding
// window for the write budget, and which properties a GET returns without
// $select.
package graphtest

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
)

// Documented limits the emulator enforces.
const (
	// MaxCertificateUserIDs is the most values certificateUserIds holds.
	MaxCertificateUserIDs = 10
	// MaxCertificateUserIDLength is the most characters of one value.
	MaxCertificateUserIDLength = 1024
	// MaxBatchRequests is the most requests one $batch carries.
	MaxBatchRequests = 20
	// DefaultWriteBudget writes per DefaultWriteWindow are allowed per app
	// and tenant (identity and access throttling).
	DefaultWriteBudget = 3000
	// DefaultWriteWindow is the window of DefaultWriteBudget.
	DefaultWriteWindow = 150 * time.Second
	// DefaultTenantWriteBudget writes per DefaultTenantWriteWindow are
	// allowed per tenant, all apps together.
	DefaultTenantWriteBudget = 18000
	// DefaultTenantWriteWindow is the window of DefaultTenantWriteBudget.
	DefaultTenantWriteWindow = 5 * time.Minute
	// MaxPageSize is the largest $top the users list accepts.
	MaxPageSize = 999
	// DefaultPageSize is the page size without $top.
	DefaultPageSize = 100
)

// User is one Entra ID user of the emulated tenant.
type User struct {
	// ID is the object id; NewServer makes a GUID when it is empty.
	ID string
	// UserPrincipalName is the UPN.
	UserPrincipalName string
	// Mail is the primary SMTP address.
	Mail string
	// ProxyAddresses holds "SMTP:primary@…" and "smtp:alias@…" values.
	ProxyAddresses []string
	// OnPremisesImmutableID is the base64 of the on-premises objectGUID
	// (set by Entra Connect), empty for a cloud-only user.
	OnPremisesImmutableID string
	// OnPremisesSyncEnabled is true for a user synchronised from an
	// on-premises directory: only Entra Connect may change it.
	OnPremisesSyncEnabled bool
	// CertificateUserIDs is authorizationInfo.certificateUserIds.
	CertificateUserIDs []string
	// NullAuthorizationInfo makes the server answer "authorizationInfo":
	// null for this user even when it is selected: an answer a client must
	// not take for an empty list (for tests of how a client copes).
	NullAuthorizationInfo bool
}

func (u User) clone() User {
	u.ProxyAddresses = slices.Clone(u.ProxyAddresses)
	u.CertificateUserIDs = slices.Clone(u.CertificateUserIDs)
	return u
}

// TokenVerifier checks a bearer token for an audience.
// *azauthtest.Server implements it.
type TokenVerifier interface {
	Verify(token, audience string) (azauthtest.Claims, error)
}

// Config seeds and tunes a [Server]. The zero value serves an empty tenant
// that refuses every request (no token verifier).
type Config struct {
	// Users seed the tenant.
	Users []User
	// Tokens verifies bearer tokens. Without it every request gets 401.
	Tokens TokenVerifier
	// Audience is what tokens must be issued for; empty means the
	// server's own URL (what a client asks for when its Graph endpoint is
	// this server).
	Audience string
	// WriteBudget is how many writes one app may make in one tenant per
	// WriteWindow (default DefaultWriteBudget); negative turns it off.
	WriteBudget int
	// WriteWindow is the sliding window of WriteBudget, in emulated time
	// (default DefaultWriteWindow).
	WriteWindow time.Duration
	// TenantWriteBudget is how many writes all apps together may make in
	// one tenant per TenantWriteWindow (default DefaultTenantWriteBudget);
	// negative turns it off.
	TenantWriteBudget int
	// TenantWriteWindow is the sliding window of TenantWriteBudget
	// (default DefaultTenantWriteWindow).
	TenantWriteWindow time.Duration
	// TimeScale makes the emulator's clock run this many times faster than
	// the wall clock for throttling windows (0 means 1). With 100, the 150 s
	// window lasts 1.5 s.
	TimeScale float64
	// NextLinkBase, when set, replaces the server's own URL at the start
	// of every @odata.nextLink it writes: a test of where a client sends
	// its token when an answer names another host.
	NextLinkBase string
	// Logger receives a line per request at debug level; nil discards.
	Logger *slog.Logger
	// RequireRoles makes the server check the token's roles claim (the
	// application permissions granted, see azauthtest.Server.GrantRoles):
	// reading users needs one of [ReadRoles], changing one one of
	// [WriteRoles]; otherwise the answer is 403 Authorization_RequestDenied,
	// as Graph's. Off by default: tokens from an app granted nothing pass.
	RequireRoles bool
}

// The application permissions RequireRoles accepts, after Microsoft's
// documentation of GET /users and PATCH /users/{id}. Unconfirmed: whether
// writing authorizationInfo.certificateUserIds needs more than
// User.ReadWrite.All.
var (
	ReadRoles  = []string{"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	WriteRoles = []string{"User.ReadWrite.All", "Directory.ReadWrite.All"}
)

// Stats counts what the server saw.
type Stats struct {
	// Requests counts HTTP requests, $batch requests included.
	Requests int
	// Batches counts $batch requests; BatchItems the requests inside them.
	Batches, BatchItems int
	// Reads counts GETs of users (plain or in a batch); Writes counts
	// PATCHes applied; Refused counts PATCHes refused for a reason other
	// than throttling.
	Reads, Writes, Refused int
	// Throttled counts 429 answers (plain or in a batch).
	Throttled int
	// Unauthorized counts 401 answers.
	Unauthorized int
	// Faults counts injected faults that fired.
	Faults int
}

// Write is one applied PATCH of certificateUserIds.
type Write struct {
	// UserID is the user written.
	UserID string
	// Values is the list the user now holds.
	Values []string
	// AppID and TenantID name the caller.
	AppID, TenantID string
	// At is when it was applied (wall clock).
	At time.Time
}

// Server is a running Graph emulator.
type Server struct {
	// URL is "https://127.0.0.1:port", the Graph endpoint to give a client
	// (requests go to URL + "/v1.0/…").
	URL string

	srv      *httptest.Server
	cfg      Config
	audience string
	clock    *scaledClock

	mu     sync.Mutex
	users  []*User
	byID   map[string]*User
	owner  map[string]*User // lower-case certificateUserIds value → its holder
	stats  Stats
	writes []Write
	faults []*Fault
	appLim map[string]*window
	tenLim map[string]*window
}

// NewServer starts an emulator on loopback over TLS with the certificate
// every net/http/httptest TLS server uses, so azauthtest's Server.Client
// trusts it too. Close it when done.
func NewServer(cfg Config) *Server {
	s := &Server{cfg: cfg, byID: map[string]*User{}, owner: map[string]*User{}, appLim: map[string]*window{}, tenLim: map[string]*window{}}
	s.clock = newScaledClock(cfg.TimeScale)
	for i, u := range cfg.Users {
		u := u.clone()
		if u.ID == "" {
			u.ID = fmt.Sprintf("00000000-0000-4000-8000-%012x", i+1)
		}
		s.users = append(s.users, &u)
		s.byID[strings.ToLower(u.ID)] = &u
		s.setValues(&u, u.CertificateUserIDs)
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	s.audience = cfg.Audience
	if s.audience == "" {
		s.audience = s.URL
	}
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// Client returns an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Audience returns the audience tokens must carry.
func (s *Server) Audience() string { return s.audience }

// User returns a copy of the user with id, and whether it exists.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byID[strings.ToLower(id)]
	if !ok {
		return User{}, false
	}
	return u.clone(), true
}

// Users returns a copy of every user, in seeding order.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, len(s.users))
	for i, u := range s.users {
		out[i] = u.clone()
	}
	return out
}

// SetCertificateUserIDs changes a user's list directly, as an administrator
// would in the portal (no limits, no throttling). It reports whether the
// user exists.
func (s *Server) SetCertificateUserIDs(id string, values []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byID[strings.ToLower(id)]
	if ok {
		s.setValues(u, values)
	}
	return ok
}

// setValues replaces u's certificateUserIds and keeps the owner index.
// Callers hold s.mu (or own s).
func (s *Server) setValues(u *User, values []string) {
	for _, v := range u.CertificateUserIDs {
		if s.owner[strings.ToLower(v)] == u {
			delete(s.owner, strings.ToLower(v))
		}
	}
	u.CertificateUserIDs = slices.Clone(values)
	for _, v := range values {
		s.owner[strings.ToLower(v)] = u
	}
}

// SetOnPremisesSyncEnabled marks a user as directory-synced or not, as
// turning synchronisation on for it would. It reports whether the user
// exists.
func (s *Server) SetOnPremisesSyncEnabled(id string, synced bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byID[strings.ToLower(id)]
	if ok {
		u.OnPremisesSyncEnabled = synced
	}
	return ok
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Writes returns every applied PATCH, in order.
func (s *Server) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// ResetStats sets the counters to zero and forgets the write log.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
	s.writes = nil
}

// EmulatedNow returns the emulator's clock: the time since the server
// started, multiplied by TimeScale.
func (s *Server) EmulatedNow() time.Duration { return s.clock.now() }

// TimeScale returns how many times faster than the wall clock the
// emulator's clock runs.
func (s *Server) TimeScale() float64 { return s.clock.scale }

func (s *Server) logger() *slog.Logger {
	if s.cfg.Logger != nil {
		return s.cfg.Logger
	}
	return slog.New(slog.DiscardHandler)
}
