package graph

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/smimesync/go-smimesync/cloud/azauth"
)

// Defaults of [Config]: a zero field takes its default.
const (
	// DefaultPageSize is the $top of the users listing (Graph's maximum).
	DefaultPageSize = 999
	// MaxBatchSize is the most requests in one $batch (Graph's limit).
	MaxBatchSize = 20
	// DefaultBatchWait is how long a request waits for others to share its
	// $batch before the batch goes out partly filled.
	DefaultBatchWait = 5 * time.Millisecond
	// DefaultConcurrency is how many $batch requests are sent at once.
	DefaultConcurrency = 4
	// DefaultRequestTimeout bounds one HTTP attempt.
	DefaultRequestTimeout = 60 * time.Second
	// DefaultWriteBudget writes per DefaultWriteWindow is Graph's
	// documented write budget per app and tenant (identity and access).
	DefaultWriteBudget = 3000
	// DefaultWriteWindow is the window of DefaultWriteBudget.
	DefaultWriteWindow = 150 * time.Second
	// DefaultIndexTTL is how long what a lookup learned about users (the
	// listing, each user's certificateUserIds) is trusted.
	DefaultIndexTTL = 10 * time.Minute
	// DefaultRetryBase is RetryPolicy.Base's default: the first backoff.
	DefaultRetryBase = time.Second
	// DefaultRetryCap is RetryPolicy.Cap's default: the longest backoff.
	DefaultRetryCap = 60 * time.Second
	// DefaultRetryMaxTries is RetryPolicy.MaxTries's default.
	DefaultRetryMaxTries = 6
	// DefaultRetryMaxThrottled is RetryPolicy.MaxThrottled's default.
	DefaultRetryMaxThrottled = 50
)

// Config configures a [Sink]. The zero value works for the worldwide cloud
// once Credential is set; the YAML keys are those of the example binary's
// sink.graph section.
type Config struct {
	// CertificateUserIDs says how certificates become
	// authorizationInfo.certificateUserIds values.
	CertificateUserIDs CertificateUserIDs `yaml:"certificate_user_ids"`
	// Lookup is how directory entries are resolved to users:
	// LookupPreload (YAML "list", the default) or LookupPerEntry (YAML
	// "batch"); see [LookupMode].
	Lookup LookupMode `yaml:"lookup"`
	// PageSize is the $top of the users listing (default DefaultPageSize,
	// at most 999).
	PageSize int `yaml:"page_size"`
	// BatchSize is the most requests per $batch (default and maximum
	// MaxBatchSize).
	BatchSize int `yaml:"batch_size"`
	// BatchWait is how long a request waits for company before its
	// $batch leaves partly filled (default DefaultBatchWait).
	BatchWait time.Duration `yaml:"batch_wait"`
	// Concurrency bounds the $batch requests sent at once (default
	// DefaultConcurrency; YAML batches_in_flight). The Syncer concurrency
	// the sink prefers follows BatchSize instead (see
	// [Sink.PreferredConcurrency]).
	Concurrency int `yaml:"batches_in_flight"`
	// RequestTimeout bounds each HTTP attempt (default
	// DefaultRequestTimeout); a slower answer is retried.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// IndexTTL is how long the users listing and each user's
	// certificateUserIds, as last read, are trusted before they are read
	// again (default DefaultIndexTTL; YAML cache_ttl).
	IndexTTL time.Duration `yaml:"cache_ttl"`
	// Retry is the backoff for throttled and failed requests.
	Retry RetryPolicy `yaml:"retry"`
	// WriteBudget paces the sink's writes (default: Graph's documented
	// budget, DefaultWriteBudget per DefaultWriteWindow).
	WriteBudget WriteBudget `yaml:"write_budget"`

	// Credential signs requests; required. The CLI builds it from the
	// shared azauth configuration (azauth.Config.Credential).
	Credential azcore.TokenCredential `yaml:"-"`
	// Endpoints are the national cloud's endpoints; only Graph is used.
	// An empty Graph means the worldwide https://graph.microsoft.com. It
	// must be https (plain http only to a loopback host), and the token is
	// sent to its scheme, host and port only (see [azauth.TokenHosts]).
	// Tests point it at the graphtest emulator.
	Endpoints azauth.Endpoints `yaml:"-"`
	// HTTPClient's transport carries the requests (its Timeout is not
	// used; see RequestTimeout); nil means a transport of
	// net/http's defaults sized for Concurrency.
	HTTPClient *http.Client `yaml:"-"`
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// CertificateUserIDs configures the values written to certificateUserIds.
//
// The sink adds the values of the certificates it writes and removes only
// the values it manages (see ManagedIssuers and ManageAllOfFormat); every
// other value of the user's list is kept. By default it manages, for
// FormatIssuerSerial, the values whose issuer is the issuer of one of the
// certificates it writes to that user in that Write, and for the other
// formats nothing beyond the values it writes: it never removes a binding
// it cannot tie to a CA it is publishing for (a partner CA's, a national
// ID card's). The consequence: when a user loses all certificates, or
// moves to a CA of another issuer name, the old bindings stay, unless
// ManagedIssuers names their CA (or ManageAllOfFormat is set).
//
// A value it writes counts as written when the user holds it spelt in
// another case (lower-case SKI or SHA-1 hex, an upper-case serial): that
// value is replaced by the sink's spelling once, never kept beside it.
type CertificateUserIDs struct {
	// Format is the certificate mapping; empty means FormatIssuerSerial.
	Format Format `yaml:"format"`
	// ManagedIssuers, when set, is the list of CAs whose X509:<I>…<SR>…
	// values the sink manages (and so may remove), issuers written as the
	// sink writes them (see [IssuerString] and [CertificateUserID]); values
	// of other issuers are kept. Unset, the sink manages the values of the
	// issuers of the certificates it is writing (see above). It applies to
	// FormatIssuerSerial only: the other formats carry no issuer.
	ManagedIssuers []string `yaml:"managed_issuers"`
	// ManageAllOfFormat makes every value of the configured format managed:
	// for FormatIssuerSerial, every issuer when ManagedIssuers is unset;
	// for the other formats, every value with the format's prefix (an
	// administrator's X509:<SKI>… binding of a partner's card would then
	// be removed). Off by default.
	ManageAllOfFormat bool `yaml:"manage_all_of_format"`
}

// WriteBudget is how many writes a [Sink] sends in any window of time. A
// sink that keeps to Graph's budget is not throttled when it writes alone;
// when other processes of the same app write too, Graph's 429 answers
// slow it further. Zero fields take the defaults.
type WriteBudget struct {
	// Writes per Window (default DefaultWriteBudget); negative turns
	// pacing off (429 answers alone then pace the sink).
	Writes int `yaml:"writes"`
	// Window is the sliding window (default DefaultWriteWindow).
	Window time.Duration `yaml:"window"`
}

// LookupMode is how a [Sink] resolves directory entries to Entra users.
// The Exchange sink has the same modes under the same names; their YAML
// spellings differ, as they always have.
type LookupMode string

// The lookup modes.
const (
	// LookupPreload reads every user of the tenant once (paged, PageSize
	// a page, with the properties resolution needs) and resolves entries
	// from that listing, read again after IndexTTL: about one request per
	// thousand users. It is the default, and the right choice unless the
	// tenant holds far more users than the directory scope. YAML "list".
	LookupPreload LookupMode = "list"
	// LookupPerEntry looks each entry up with $filter queries (immutable
	// id, UPN, mail, proxy address), packed 20 to a $batch with the
	// lookups of concurrent calls. YAML "batch".
	LookupPerEntry LookupMode = "batch"
)

// RetryPolicy is the backoff for requests that fail in a way worth another
// try: 429 (after its Retry-After), 503, 504, 500, 502, 408, a timed-out
// attempt, a dropped connection. Without a Retry-After the wait is a
// jittered exponential backoff: a random duration between half and all of
// min(Cap, Base·2^(n−1)) before the n-th retry. Zero fields take the
// defaults.
type RetryPolicy struct {
	// Base is the first backoff (default DefaultRetryBase).
	Base time.Duration `yaml:"base"`
	// Cap bounds one backoff (default DefaultRetryCap).
	Cap time.Duration `yaml:"cap"`
	// MaxTries bounds the attempts of one request that fails for a reason
	// other than throttling (default DefaultRetryMaxTries).
	MaxTries int `yaml:"max_tries"`
	// MaxThrottled bounds how many times one request is answered 429
	// before the sink gives up on it (default DefaultRetryMaxThrottled).
	// Throttling waits follow the service's Retry-After.
	MaxThrottled int `yaml:"max_throttled"`
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Base <= 0 {
		p.Base = DefaultRetryBase
	}
	if p.Cap <= 0 {
		p.Cap = DefaultRetryCap
	}
	if p.Cap < p.Base {
		p.Cap = p.Base
	}
	if p.MaxTries <= 0 {
		p.MaxTries = DefaultRetryMaxTries
	}
	if p.MaxThrottled <= 0 {
		p.MaxThrottled = DefaultRetryMaxThrottled
	}
	return p
}

func (c Config) withDefaults() (Config, error) {
	if c.Credential == nil {
		return c, &ConfigError{Field: "credential", Reason: "a credential is required (azauth.Config.Credential)"}
	}
	if c.CertificateUserIDs.Format == "" {
		c.CertificateUserIDs.Format = FormatIssuerSerial
	}
	if _, err := ParseFormat(string(c.CertificateUserIDs.Format)); err != nil {
		return c, err
	}
	switch c.Lookup {
	case "":
		c.Lookup = LookupPreload
	case LookupPreload, LookupPerEntry:
	default:
		return c, &ConfigError{Field: "lookup", Reason: fmt.Sprintf("unknown lookup mode %q (want list or batch)", string(c.Lookup))}
	}
	if c.PageSize <= 0 || c.PageSize > DefaultPageSize {
		c.PageSize = DefaultPageSize
	}
	if c.BatchSize <= 0 || c.BatchSize > MaxBatchSize {
		c.BatchSize = MaxBatchSize
	}
	if c.BatchWait <= 0 {
		c.BatchWait = DefaultBatchWait
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.IndexTTL <= 0 {
		c.IndexTTL = DefaultIndexTTL
	}
	c.Retry = c.Retry.withDefaults()
	if c.WriteBudget.Writes == 0 {
		c.WriteBudget.Writes = DefaultWriteBudget
	}
	if c.WriteBudget.Window <= 0 {
		c.WriteBudget.Window = DefaultWriteWindow
	}
	if c.Endpoints.Graph == "" {
		ep, err := azauth.Worldwide.Endpoints()
		if err != nil {
			return c, configError(err)
		}
		c.Endpoints.Graph = ep.Graph
	}
	g, err := azauth.CheckEndpoint("endpoints.graph", c.Endpoints.Graph)
	if err != nil {
		return c, configError(err)
	}
	c.Endpoints.Graph = g
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
