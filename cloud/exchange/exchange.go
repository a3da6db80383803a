// Package exchange is a [cloud.Sink] that publishes certificates to
// Exchange Online: it sets UserCertificate and UserSMimeCertificate on
// mailboxes, mail users and mail contacts through the admin REST endpoint
// the ExchangeOnlineManagement module uses
// (POST {exchange}/adminapi/beta/{tenant}/InvokeCommand), with an app-only
// token from azidentity (see the azauth package).
//
// Find looks recipients up by address in an index of the tenant loaded with
// one paged Get-Recipient call (or one Get-Recipient per address when
// Lookup is "per_entry"); a directory-synced recipient comes back with
// ReadOnly set, since Exchange Online refuses to change such objects.
// Current reads a recipient with its type's cmdlet (Get-Mailbox,
// Get-MailUser, Get-MailContact) in CLIXML, where byte arrays are base64,
// and falls back to the Mailbox entity; the JSON format is believed to
// render the certificates as "System.Byte[]". An answer the sink cannot
// decode gives [cloud.ErrUnreadable], and the caller relies on what it last
// published. Write calls Set-Mailbox, Set-MailUser or Set-MailContact and,
// for the first writes of a run, reads them back (see [ReadBackAuto]).
//
// Every call is bounded in time, runs under a limit of concurrent requests,
// and is retried on throttling and transient failures with the same
// client-request-id (see [RetryPolicy]); Rate-Limit-Remaining reaching 0
// pauses the calls until Rate-Limit-Reset. The token goes only to the
// configured Exchange endpoint's scheme, host and port, or to a host of the
// same cloud that a redirect or an @odata.nextLink names (see
// [azauth.TokenHosts.LearnWithin]): a regional redirect (301, 302, 307,
// 308) is re-sent as the same request, with the same client-request-id, and
// its host serves every later call; a redirect or nextLink to any other
// host is refused with an error naming it. The exchangetest sub-package is
// an emulator of the endpoint for tests.
package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/smimesync/go-smimesync/internal/retry"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/indexcache"
)

// Limits the service puts on a write. Write refuses more with a
// [*LimitError] instead of sending it.
const (
	// MaxValues is the most values each attribute may hold (Entra ID's
	// limit on userCertificate, FACTS.md; applied to both attributes).
	MaxValues = 15
	// MaxValueSize is the largest value in bytes (rangeUpper of
	// userSMIMECertificate in Active Directory). Unconfirmed for Exchange
	// Online itself; kept here only.
	MaxValueSize = 32768
)

// Defaults of [Config]: a zero field takes its default.
const (
	// DefaultConcurrency bounds the requests in flight, and is the
	// Syncer concurrency the sink prefers (see [Sink.PreferredConcurrency]).
	DefaultConcurrency = 8
	// DefaultRequestTimeout bounds one HTTP request.
	DefaultRequestTimeout = 60 * time.Second
	// DefaultPageSize is the page size asked of paged answers, and the
	// largest accepted.
	DefaultPageSize = 1000
	// DefaultIndexTTL is how long a preloaded index of the tenant's
	// recipients is used before it is loaded again.
	DefaultIndexTTL = 15 * time.Minute
	// DefaultRetryBase is RetryPolicy.Base's default: the first backoff.
	DefaultRetryBase = time.Second
	// DefaultRetryCap is RetryPolicy.Cap's default: the longest backoff.
	DefaultRetryCap = time.Minute
	// DefaultRetryMaxTries is RetryPolicy.MaxTries's default.
	DefaultRetryMaxTries = 10
)

// LookupMode says how Find looks recipients up. The Graph sink has the
// same modes under the same names.
type LookupMode string

const (
	// LookupPreload loads the tenant's recipients with one paged
	// Get-Recipient call and answers Find from memory (the default; YAML
	// "preload"). The index is reloaded after Config.IndexTTL.
	LookupPreload LookupMode = "preload"
	// LookupPerEntry calls Get-Recipient -Identity for each address of
	// each entry until one matches: cheaper for a handful of entries in a
	// large tenant (YAML "per_entry").
	LookupPerEntry LookupMode = "per_entry"
)

// ReadBack says whether Current asks the service at all.
type ReadBack string

const (
	// ReadBackAuto asks the service and decodes what it can (the default):
	// Get-Mailbox, Get-MailUser or Get-MailContact in CLIXML, then, for a
	// mailbox, the Mailbox entity (see [Sink.Current]). Once neither
	// answer carries the certificates' bytes, Current stops asking for
	// IndexTTL and answers [cloud.ErrUnreadable] at once.
	//
	// It also confirms the first writes of the sink's run: the first
	// three writes whose read-back decodes are sent one at a time and
	// each is read back; a read-back with other bytes than were written
	// (a wrong byte encoding) gives a [*ReadBackMismatchError] at once,
	// and every later Write refuses to send.
	ReadBackAuto ReadBack = "auto"
	// ReadBackNever answers Current with [cloud.ErrUnreadable] without a
	// request: for tenants known to render certificates as "System.Byte[]",
	// it saves one request per recipient.
	ReadBackNever ReadBack = "never"
)

// Config configures a [Sink]. The zero value of each field but the
// identity (TenantID or Organization, ClientID, Auth) has a working default.
type Config struct {
	// Config is the tenant, application, sign-in and cloud (yaml:
	// tenant_id, client_id, auth, cloud, endpoints).
	azauth.Config `yaml:",inline"`
	// Organization is the tenant's domain ("contoso.onmicrosoft.com"),
	// used in the endpoint's URL; TenantID is used when it is empty.
	Organization string `yaml:"organization"`
	// Concurrency bounds the requests in flight (default
	// DefaultConcurrency); it is also the Syncer concurrency the sink
	// prefers (see [Sink.PreferredConcurrency]).
	Concurrency int `yaml:"concurrency"`
	// RequestTimeout bounds each HTTP request (default
	// DefaultRequestTimeout).
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Retry says how failed requests are retried.
	Retry RetryPolicy `yaml:"retry"`
	// PageSize is the page size asked of paged answers (default and
	// maximum DefaultPageSize).
	PageSize int `yaml:"page_size"`
	// Lookup is how Find looks recipients up (default LookupPreload).
	Lookup LookupMode `yaml:"lookup"`
	// IndexTTL is how long a preloaded index is used, and how long
	// Current trusts that the service renders certificates without their
	// bytes (default DefaultIndexTTL).
	IndexTTL time.Duration `yaml:"index_ttl"`
	// ReadBack says whether Current asks the service (default ReadBackAuto).
	ReadBack ReadBack `yaml:"read_back"`

	// HTTPClient sends the requests, to Exchange and to the login
	// endpoint. The sink sends its own requests through a copy whose
	// transport and CheckRedirect keep the token to the Exchange endpoint
	// (the client itself is not changed). Its transport should keep at least Concurrency idle
	// connections per host (http.Transport.MaxIdleConnsPerHost), or each
	// request may pay for a new TLS handshake. Default: a clone of
	// http.DefaultTransport that does.
	HTTPClient *http.Client `yaml:"-"`
	// Credential, when set, is used instead of the one built from Config.
	Credential azcore.TokenCredential `yaml:"-"`
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// Stats counts what a Sink sent and what the service said about it.
type Stats struct {
	// Requests is the number of HTTP requests sent, retries and
	// redirected requests included.
	Requests int64
	// Retries is the number of requests that were retries.
	Retries int64
	// Throttled is the number of 429 answers received.
	Throttled int64
	// Redirects is the number of redirects followed (each re-sends the
	// request to a host of the configured cloud).
	Redirects int64
	// Warnings is the number of @adminapi.warnings received (each is
	// logged at warn level).
	Warnings int64
	// RateLimited is the number of answers that carried
	// Rate-Limit-Remaining; RateLimitRemaining is the last value seen (-1
	// before any).
	RateLimited, RateLimitRemaining int64
	// Paced is the number of times the sink paused its calls because
	// Rate-Limit-Remaining reached 0, before the service answered 429.
	Paced int64
	// Confirmed is the number of writes read back and found to hold what
	// was written (see [ReadBackAuto]).
	Confirmed int64
}

// Sink publishes certificates to Exchange Online recipients. Create it with
// [New]; it is safe for concurrent use.
type Sink struct {
	log   *slog.Logger
	http  *http.Client
	cred  azcore.TokenCredential
	scope string
	// base is the scheme://host:port calls go to: the configured
	// endpoint, or the host a redirect named (see Sink.follow).
	base       atomic.Pointer[string]
	invokePath string             // /adminapi/beta/{tenant}/InvokeCommand
	tenant     string             // {tenant} in the URLs
	hosts      *azauth.TokenHosts // where the token may go
	anchor     string
	timeout    time.Duration
	retry      RetryPolicy
	pageSize   int
	lookup     LookupMode
	ttl        time.Duration
	conc       int // Concurrency, with its default
	readBack   ReadBack
	sem        chan struct{}

	readGate, writeGate retry.Gate

	stats struct {
		requests, retries, throttled, redirects, warnings atomic.Int64
		rateLimited, remaining, paced, confirmed          atomic.Int64
	}

	// confirmLeft is how many more writes are to be confirmed by reading
	// them back; confirmMu makes those writes one at a time, so that a
	// wrong encoding stops the sink after one write, not after
	// Concurrency of them. mismatch, once set, refuses every later write.
	confirmLeft atomic.Int64
	confirmMu   sync.Mutex
	mismatch    atomic.Pointer[ReadBackMismatchError]
	// clixmlUndecodableAt is when (unix nanoseconds) a CLIXML read-back
	// last came without certificate bytes; 0 when never.
	clixmlUndecodableAt atomic.Int64

	// idx is the preloaded index of the tenant's recipients.
	idx indexcache.Cache[*index]
	// unreadableAt is when (unix nanoseconds) the service last answered
	// with certificates it renders without their bytes; 0 when never.
	unreadableAt atomic.Int64
}

// New returns a Sink for cfg. It fails when cfg cannot work, with a
// [*ConfigError] naming the field (wrapping [ErrConfig], and the
// [*azauth.ConfigError] when azauth found the fault), or when a
// credential cannot be built; it sends no request.
func New(cfg Config) (*Sink, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ep, err := cfg.ResolvedEndpoints()
	if err != nil {
		return nil, configError(err)
	}
	tenant := cfg.Organization
	if tenant == "" {
		tenant = cfg.TenantID
	}
	if tenant == "" {
		return nil, &ConfigError{Field: "organization", Reason: "organization or tenant_id is required"}
	}
	if strings.ContainsAny(tenant, "/?#% ") {
		return nil, &ConfigError{Field: "organization", Reason: fmt.Sprintf("%q is not a tenant id or domain", tenant)}
	}
	anchorTenant := cfg.TenantID
	if anchorTenant == "" {
		anchorTenant = cfg.Organization
	}
	switch cfg.Lookup {
	case "":
		cfg.Lookup = LookupPreload
	case LookupPreload, LookupPerEntry:
	default:
		return nil, &ConfigError{Field: "lookup", Reason: fmt.Sprintf("unknown lookup %q (want preload or per_entry)", cfg.Lookup)}
	}
	switch cfg.ReadBack {
	case "":
		cfg.ReadBack = ReadBackAuto
	case ReadBackAuto, ReadBackNever:
	default:
		return nil, &ConfigError{Field: "read_back", Reason: fmt.Sprintf("unknown read_back %q (want auto or never)", cfg.ReadBack)}
	}
	n := cfg.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	client := cfg.HTTPClient
	if client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = n
		client = &http.Client{Transport: t}
	}
	cred := cfg.Credential
	if cred == nil {
		cred, err = cfg.Config.Credential(azauth.WithHTTPClient(client))
		if err != nil {
			return nil, configError(err)
		}
	}
	hosts, err := azauth.NewTokenHosts(ep.Exchange)
	if err != nil {
		return nil, configError(err)
	}
	// A regional redirect may name another host of the same cloud: the
	// preset's list of Exchange hosts counts only while the endpoint is
	// the preset's own.
	var presetHosts []string
	if pe, err := cfg.Cloud.Endpoints(); err == nil && strings.EqualFold(pe.Exchange, ep.Exchange) {
		presetHosts = cfg.Cloud.ExchangeHosts()
	}
	if err := hosts.LearnWithin(ep.Exchange, presetHosts...); err != nil {
		return nil, configError(err)
	}
	// The sink's own copy of the client: the token goes only to the
	// hosts in s.hosts. Redirects are not followed by the client (it would
	// turn the POST into a GET and drop the token); the sink re-sends the
	// request itself (see Sink.call).
	guarded := *client
	guarded.Transport = hosts.Transport(client.Transport)
	guarded.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s := &Sink{
		log:        logger,
		http:       &guarded,
		hosts:      hosts,
		cred:       cred,
		scope:      ep.ExchangeScope(),
		invokePath: "/adminapi/beta/" + tenant + "/InvokeCommand",
		tenant:     tenant,
		anchor:     anchorMailbox(anchorTenant),
		timeout:    cfg.RequestTimeout,
		retry:      cfg.Retry.withDefaults(),
		pageSize:   cfg.PageSize,
		lookup:     cfg.Lookup,
		ttl:        cfg.IndexTTL,
		readBack:   cfg.ReadBack,
		conc:       n,
	}
	if s.timeout <= 0 {
		s.timeout = DefaultRequestTimeout
	}
	if s.pageSize <= 0 || s.pageSize > DefaultPageSize {
		s.pageSize = DefaultPageSize
	}
	if s.ttl <= 0 {
		s.ttl = DefaultIndexTTL
	}
	s.idx = indexcache.Cache[*index]{Load: s.load, TTL: s.ttl, ErrTTL: indexErrTTL}
	s.sem = make(chan struct{}, n)
	base := ep.Exchange
	s.base.Store(&base)
	s.stats.remaining.Store(-1)
	if s.readBack == ReadBackAuto {
		s.confirmLeft.Store(confirmWrites)
	}
	return s, nil
}

// PreferredConcurrency implements [cloud.ConcurrencyHinter]: the Syncer
// makes as many calls at once as the sink sends requests at once
// (Config.Concurrency).
func (s *Sink) PreferredConcurrency() int { return s.conc }

// Stats returns what the sink has sent so far.
func (s *Sink) Stats() Stats {
	return Stats{
		Requests: s.stats.requests.Load(), Retries: s.stats.retries.Load(), Throttled: s.stats.throttled.Load(),
		Redirects: s.stats.redirects.Load(), Warnings: s.stats.warnings.Load(),
		RateLimited: s.stats.rateLimited.Load(), RateLimitRemaining: s.stats.remaining.Load(),
		Paced: s.stats.paced.Load(), Confirmed: s.stats.confirmed.Load(),
	}
}

// recipient is what Get-Recipient says about an object.
type recipient struct {
	Guid                 string   `json:"Guid"`
	Name                 string   `json:"Name"`
	PrimarySmtpAddress   string   `json:"PrimarySmtpAddress"`
	EmailAddresses       []string `json:"EmailAddresses"`
	RecipientType        string   `json:"RecipientType"`
	RecipientTypeDetails string   `json:"RecipientTypeDetails"`
	IsDirSynced          bool     `json:"IsDirSynced"`
}

// syncedReason is the ReadOnly reason of a directory-synced recipient.
const syncedReason = "directory-synced (IsDirSynced): Exchange Online refuses changes to objects synchronised from on premises; Entra Connect publishes its certificates"

func (r *recipient) cloud() *cloud.Recipient {
	c := &cloud.Recipient{ID: r.Guid, Name: r.PrimarySmtpAddress, Kind: r.RecipientTypeDetails}
	if c.Name == "" {
		c.Name = r.Name
	}
	if c.Kind == "" {
		c.Kind = r.RecipientType
	}
	if r.IsDirSynced {
		c.ReadOnly = syncedReason
	}
	return c
}

// nounFor returns the cmdlet noun that reads and writes a recipient of
// kind (a RecipientType or RecipientTypeDetails value).
func nounFor(kind string) (string, bool) {
	switch {
	case kind == "MailUser" || kind == "GuestMailUser":
		return "MailUser", true
	case kind == "MailContact":
		return "MailContact", true
	case strings.HasSuffix(kind, "Mailbox"):
		return "Mailbox", true
	}
	return "", false
}

// recipientTypes are the types Find considers.
var recipientTypes = []string{"UserMailbox", "MailUser", "MailContact"}

// Find returns the recipient whose addresses include the entry's mail,
// one of its proxy addresses, or its userPrincipalName, tried in that
// order. A directory-synced recipient is returned with ReadOnly set. No
// match gives an error wrapping [cloud.ErrNotFound].
func (s *Sink) Find(ctx context.Context, e *directory.Entry) (*cloud.Recipient, error) {
	keys := e.Addresses()
	if upn := strings.ToLower(strings.TrimSpace(e.UserPrincipalName)); upn != "" && !contains(keys, upn) {
		keys = append(keys, upn)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("exchange: %s has no mail address or userPrincipalName: %w", e.DN, cloud.ErrNotFound)
	}
	if s.lookup == LookupPerEntry {
		for _, k := range keys {
			r, err := s.getRecipient(ctx, k)
			if err == nil {
				return r, nil
			}
			if !isNotFound(err) {
				return nil, fmt.Errorf("exchange: finding %s: %w", e.DN, err)
			}
		}
		return nil, fmt.Errorf("exchange: no recipient with address %s (%s): %w", strings.Join(keys, ", "), e.DN, cloud.ErrNotFound)
	}
	idx, err := s.idx.Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("exchange: finding %s: %w", e.DN, err)
	}
	for _, k := range keys {
		if r := idx.find(k); r != nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("exchange: no recipient with address %s (%s): %w", strings.Join(keys, ", "), e.DN, cloud.ErrNotFound)
}

func isNotFound(err error) bool {
	var ce *CmdletError
	return errors.As(err, &ce) && ce.Is(cloud.ErrNotFound)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Sink) getRecipient(ctx context.Context, identity string) (*cloud.Recipient, error) {
	var out *cloud.Recipient
	err := s.invoke(ctx, "Get-Recipient", map[string]any{"Identity": identity}, false, func(vals []json.RawMessage) error {
		for _, v := range vals {
			var r recipient
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("exchange: Get-Recipient %s: %w", identity, err)
			}
			if _, ok := nounFor(r.RecipientType); ok && out == nil && r.Guid != "" {
				out = r.cloud()
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, &CmdletError{Cmdlet: "Get-Recipient", Identity: identity, Status: 404, Code: "NotFound", Message: "no mailbox, mail user or mail contact"}
	}
	return out, nil
}

// indexErrTTL is how long a failed index load's error answers Find
// rather than be repeated by every Find.
const indexErrTTL = 30 * time.Second

// load reads the index of the tenant; s.idx calls it at most once at a
// time, for every Find that needs it.
func (s *Sink) load(ctx context.Context) (*index, error) {
	start := time.Now()
	idx := newIndex(nil)
	n := 0
	err := s.invoke(ctx, "Get-Recipient", map[string]any{"ResultSize": "Unlimited", "RecipientType": recipientTypes}, false, func(vals []json.RawMessage) error {
		for _, v := range vals {
			var r recipient
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("exchange: Get-Recipient: %w", err)
			}
			if _, ok := nounFor(r.RecipientType); !ok || r.Guid == "" {
				continue
			}
			n++
			if err := idx.add(&r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	idx.finish()
	s.log.Info("exchange: loaded recipients", "recipients", n, "addresses", idx.addresses, "took", time.Since(start))
	return idx, nil
}

// Write replaces the recipient's UserCertificate and UserSMimeCertificate
// with c, clearing an attribute for which c holds no value, through
// Set-Mailbox, Set-MailUser or Set-MailContact. A recipient the service
// refuses to change (directory-synced) gives a [*cloud.NotWritableError];
// values over [MaxValues] or [MaxValueSize] give a [*LimitError] and
// nothing is sent.
//
// With ReadBack "auto", the first writes of the sink's run are read back
// (see [ReadBackAuto]); one that reads back other bytes than were written
// gives a [*ReadBackMismatchError], and so does every later Write, without
// sending anything.
func (s *Sink) Write(ctx context.Context, r *cloud.Recipient, c cloud.Certificates) error {
	for _, a := range []struct {
		attr string
		vals [][]byte
	}{{"UserCertificate", c.UserCertificate}, {"UserSMimeCertificate", c.UserSMIMECertificate}} {
		if len(a.vals) > MaxValues {
			return &LimitError{Recipient: name(r), Attribute: a.attr, What: "values", Got: len(a.vals), Limit: MaxValues}
		}
		for _, v := range a.vals {
			if len(v) > MaxValueSize {
				return &LimitError{Recipient: name(r), Attribute: a.attr, What: "bytes", Got: len(v), Limit: MaxValueSize}
			}
		}
	}
	if r.ReadOnly != "" {
		return &cloud.NotWritableError{Recipient: name(r), Reason: r.ReadOnly}
	}
	noun, err := s.noun(ctx, r)
	if err != nil {
		return err
	}
	if s.confirmLeft.Load() > 0 {
		// The first writes of the run go one at a time, each read back
		// before the next is sent.
		s.confirmMu.Lock()
		defer s.confirmMu.Unlock()
	}
	if m := s.mismatch.Load(); m != nil {
		return fmt.Errorf("exchange: not writing %s: %w", name(r), m)
	}
	params := map[string]any{"Identity": r.ID}
	setByteArrays(params, "UserCertificate", c.UserCertificate)
	setByteArrays(params, "UserSMimeCertificate", c.UserSMIMECertificate)
	err = s.invoke(ctx, "Set-"+noun, params, true, func([]json.RawMessage) error { return nil })
	var ce *CmdletError
	if errors.As(err, &ce) && isWriteScope(ce.Message) {
		return &cloud.NotWritableError{Recipient: name(r), Reason: ce.Message}
	}
	if err != nil {
		return fmt.Errorf("exchange: writing %s: %w", name(r), err)
	}
	if s.confirmLeft.Load() > 0 {
		return s.confirm(ctx, r, noun, c)
	}
	return nil
}

// noun returns the cmdlet noun for r, from its Kind or, failing that, by
// asking Get-Recipient.
func (s *Sink) noun(ctx context.Context, r *cloud.Recipient) (string, error) {
	if n, ok := nounFor(r.Kind); ok {
		return n, nil
	}
	got, err := s.getRecipient(ctx, r.ID)
	if err != nil {
		return "", fmt.Errorf("exchange: %s: %w", name(r), err)
	}
	n, ok := nounFor(got.Kind)
	if !ok {
		return "", fmt.Errorf("exchange: %s is a %s, not a mailbox, mail user or mail contact: %w", name(r), got.Kind, cloud.ErrNotFound)
	}
	return n, nil
}

func name(r *cloud.Recipient) string {
	if r.Name != "" {
		return r.Name
	}
	return r.ID
}

var (
	_ cloud.Sink              = (*Sink)(nil)
	_ cloud.Preparer          = (*Sink)(nil)
	_ cloud.ConcurrencyHinter = (*Sink)(nil)
)
