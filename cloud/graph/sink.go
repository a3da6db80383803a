package graph

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/smimesync/go-smimesync/internal/retry"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/indexcache"
)

// Kind is the cloud.Recipient Kind of every recipient a Sink finds.
const Kind = "User"

// ReadOnlySynced is the Recipient.ReadOnly reason of a directory-synced
// user.
const ReadOnlySynced = "directory-synced (onPremisesSyncEnabled): only Microsoft Entra Connect may change its certificateUserIds"

// userSelect are the properties a lookup reads of a user. authorizationInfo
// and the onPremises* properties come only when selected. Unconfirmed:
// that Graph returns authorizationInfo in a users listing, not only on a
// single user (the documentation shows it on GET /users/{id}); Write does
// not rely on it, since it reads each user's list afresh before its PATCH.
var userSelect = []string{"id", "userPrincipalName", "mail", "proxyAddresses", "onPremisesImmutableId", "onPremisesSyncEnabled", "authorizationInfo"}

// Sink is a [cloud.Sink] for Microsoft Entra ID through Microsoft Graph:
// it resolves directory entries to Entra users and writes
// authorizationInfo.certificateUserIds, the bindings certificate-based
// authentication uses, from the certificates the policy keeps.
//
// Find resolves an entry by, in this order: onPremisesImmutableId (the
// base64 of the entry's objectGUID, when its ID is a GUID), then
// userPrincipalName, then mail, then proxyAddresses ("smtp:" + each of the
// entry's addresses). The first rank with a match decides; two users at
// that rank give an [*AmbiguousError]. A user with onPremisesSyncEnabled is
// returned with ReadOnly set to [ReadOnlySynced]: only Entra Connect may
// write it.
//
// Current cannot turn certificateUserIds back into certificates and always
// returns an error wrapping [cloud.ErrUnreadable]: the Syncer then relies
// on what it last published.
//
// Write derives the values from c.UserCertificate (see
// [CertificateUserID]; userSMIMECertificate blobs are not used: the
// certificates a user signs in with are published in userCertificate),
// merges them with the user's current list — values the sink does not
// manage (see [CertificateUserIDs]) are kept, the managed ones replaced —
// and PATCHes the list only when it differs. Since the PATCH replaces the
// whole list, the current list is always read afresh (GET
// /users/{id}?$select=…,authorizationInfo, packed into a $batch with
// concurrent calls) right before the merge, never taken from the lookup;
// an answer without an authorizationInfo object fails the Write rather
// than pass for an empty list. At most 10 values fit; derived values that
// do not fit are logged and left out, those of the certificates that
// expire first going first.
//
// Lookups and writes are packed 20 to a $batch with those of concurrent
// calls, so the sink asks a Syncer of Concurrency 0 for 40 calls at once
// (see [Sink.PreferredConcurrency]); a Concurrency of the caller's own
// should be 20 or more. All methods are safe for concurrent use.
type Sink struct {
	cfg     Config
	adapter *msgraphcore.GraphRequestAdapterBase
	users   *users.UsersRequestBuilder
	managed managedSet
	gate    *retry.Gate
	batch   *batcher
	log     *slog.Logger
	hosts   *azauth.TokenHosts // where the token may go

	mu    sync.Mutex
	known map[string]*record // by lower-case user id
	// listing is the index of every user no older than IndexTTL, read
	// (paged) when there is none; concurrent lookups share one read. It
	// takes mu, and publishes each listing together with its users'
	// records in known.
	listing indexcache.Cache[*index]
	pages   int64
}

// record is what the sink knows of one user.
type record struct {
	id, upn, mail string
	proxies       []string
	immutableID   string
	synced        bool
	certIDs       []string
	certIDsKnown  bool // authorizationInfo was in the answer
	at            time.Time
}

// New returns a Sink for cfg. It sends nothing until first used.
func New(cfg Config) (*Sink, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hosts, err := azauth.NewTokenHosts(cfg.Endpoints.Graph)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, managed: newManagedSet(cfg.CertificateUserIDs), gate: &retry.Gate{}, log: cfg.Logger, known: map[string]*record{}, hosts: hosts}
	s.adapter, err = newAdapter(cfg, s.gate, hosts)
	if err != nil {
		return nil, err
	}
	s.users = users.NewUsersRequestBuilderInternal(map[string]string{"baseurl": s.adapter.GetBaseUrl()}, s.adapter)
	s.listing = indexcache.Cache[*index]{Load: s.readUsers, Commit: s.commitListing, Lock: &s.mu, TTL: cfg.IndexTTL, ErrTTL: listErrTTL}
	s.batch = newBatcher(s)
	return s, nil
}

// PreferredConcurrency implements [cloud.ConcurrencyHinter]: twice
// BatchSize (40 with the defaults), so that one $batch fills while
// another is on the wire. Each call of the Syncer waits for its own item
// of a batch, so fewer concurrent calls than BatchSize leave batches
// partly filled.
func (s *Sink) PreferredConcurrency() int { return 2 * s.cfg.BatchSize }

// Stats counts what a Sink sent.
type Stats struct {
	// Batches is the number of $batch requests sent; Pages the number of
	// users listing pages read.
	Batches, Pages int64
}

// Stats returns the counts so far.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Batches: s.batch.batches.Load(), Pages: s.pages}
}

// Find implements [cloud.Sink].
func (s *Sink) Find(ctx context.Context, e *directory.Entry) (*cloud.Recipient, error) {
	var (
		r   *record
		err error
	)
	if s.cfg.Lookup == LookupPerEntry {
		r, err = s.findBatch(ctx, e)
	} else {
		var idx *index
		idx, err = s.listing.Get(ctx)
		if err == nil {
			r, err = idx.resolve(e)
		}
	}
	if err != nil {
		return nil, err
	}
	rec := &cloud.Recipient{ID: r.id, Name: cmp.Or(r.upn, r.mail, r.id), Kind: Kind}
	if r.synced {
		rec.ReadOnly = ReadOnlySynced
	}
	return rec, nil
}

// Current implements [cloud.Sink]: certificateUserIds holds bindings, not
// certificates, so it returns an error wrapping [cloud.ErrUnreadable].
func (s *Sink) Current(ctx context.Context, r *cloud.Recipient) (cloud.Certificates, error) {
	return cloud.Certificates{}, fmt.Errorf("graph: user %s: certificateUserIds cannot be read back as certificates: %w", name(r), cloud.ErrUnreadable)
}

// Write implements [cloud.Sink].
func (s *Sink) Write(ctx context.Context, r *cloud.Recipient, c cloud.Certificates) error {
	derived, problems := Values(c.UserCertificate, s.cfg.CertificateUserIDs.Format)
	for _, p := range problems {
		s.log.Warn("certificate not bound", "user", name(r), "err", p)
	}
	cur, err := s.current(ctx, r)
	if err != nil {
		return err
	}
	if cur.synced {
		return &cloud.NotWritableError{Recipient: name(r), Reason: ReadOnlySynced}
	}
	next, dropped := s.managed.merge(cur.certIDs, newWriting(c.UserCertificate, derived))
	if len(dropped) > 0 {
		s.log.Warn("certificateUserIds full", "user", name(r), "max", maxValues, "left out", dropped)
	}
	if sameValues(cur.certIDs, next) {
		s.log.Debug("certificateUserIds unchanged", "user", name(r))
		return nil
	}
	body := models.NewUser()
	ai := models.NewAuthorizationInfo()
	if next == nil {
		next = []string{} // an empty list, not an absent one: it clears
	}
	ai.SetCertificateUserIds(next)
	body.SetAuthorizationInfo(ai)
	info, err := s.users.ByUserId(r.ID).ToPatchRequestInformation(ctx, body, nil)
	if err != nil {
		return fmt.Errorf("graph: PATCH user %s: %w", name(r), err)
	}
	label := "PATCH user " + name(r)
	res := s.batch.do(ctx, &op{label: label, info: info, write: true})
	if res.err != nil {
		return res.err
	}
	if res.status/100 != 2 {
		err := itemError(label, res)
		if errors.Is(err, cloud.ErrNotWritable) {
			s.forget(r.ID)
			return &cloud.NotWritableError{Recipient: name(r), Reason: err.(*ServiceError).Message}
		}
		if res.status == http.StatusNotFound {
			s.forget(r.ID)
		}
		return err
	}
	s.mu.Lock()
	if k := s.known[strings.ToLower(r.ID)]; k != nil {
		cp := *k
		cp.certIDs, cp.certIDsKnown, cp.at = next, true, time.Now()
		s.rememberLocked(&cp)
	}
	s.mu.Unlock()
	return nil
}

func name(r *cloud.Recipient) string {
	if r == nil {
		return "<nil>"
	}
	return cmp.Or(r.Name, r.ID)
}

func (s *Sink) forget(id string) {
	s.mu.Lock()
	delete(s.known, strings.ToLower(id))
	s.mu.Unlock()
}

// currentSelect is what current reads of a user: the list to merge with,
// and whether the user became directory-synced since the lookup.
var currentSelect = []string{"id", "onPremisesSyncEnabled", "authorizationInfo"}

// current returns the user's certificateUserIds, read afresh: the PATCH
// replaces the whole list, so a list cached since the lookup would undo
// what an administrator changed meanwhile. A user a lookup within IndexTTL
// saw directory-synced is returned as it is, without a request (Write
// refuses it). An answer without an authorizationInfo object (absent or
// null) is an error: taking it for an empty list would drop every value
// the sink does not manage.
func (s *Sink) current(ctx context.Context, r *cloud.Recipient) (*record, error) {
	s.mu.Lock()
	k := s.known[strings.ToLower(r.ID)]
	s.mu.Unlock()
	if k != nil && k.synced && time.Since(k.at) < s.cfg.IndexTTL {
		return k, nil
	}
	info, err := s.users.ByUserId(r.ID).ToGetRequestInformation(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: currentSelect},
	})
	if err != nil {
		return nil, fmt.Errorf("graph: GET user %s: %w", name(r), err)
	}
	label := "GET user " + name(r)
	at := time.Now() // before the request: the answer is at least this fresh
	res := s.batch.do(ctx, &op{label: label, info: info})
	if res.err != nil {
		return nil, res.err
	}
	if res.status != http.StatusOK {
		if res.status == http.StatusNotFound {
			s.forget(r.ID)
		}
		return nil, itemError(label, res)
	}
	var u userJSON
	if err := json.Unmarshal(res.body, &u); err != nil {
		return nil, fmt.Errorf("graph: %s: decoding the answer: %w", label, err)
	}
	if u.AuthorizationInfo == nil {
		return nil, fmt.Errorf("graph: %s: the answer carries no authorizationInfo object; not writing, so as not to drop the values the sink does not manage", label)
	}
	rec := u.record(at)
	if rec.id == "" {
		rec.id = r.ID
	}
	s.mu.Lock()
	if k := s.known[strings.ToLower(rec.id)]; k != nil {
		// Keep what the lookup learned (UPN, addresses); take the fresh
		// list and sync state.
		cp := *k
		cp.synced, cp.certIDs, cp.certIDsKnown, cp.at = rec.synced, rec.certIDs, true, at
		rec = &cp
	}
	s.rememberLocked(rec)
	s.mu.Unlock()
	return rec, nil
}

func (s *Sink) remember(recs ...*record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rememberLocked(recs...)
}

// rememberLocked stores recs, except over a record read or written later:
// a listing that started before a PATCH must not undo what the PATCH
// recorded. The caller holds s.mu.
func (s *Sink) rememberLocked(recs ...*record) {
	for _, r := range recs {
		key := strings.ToLower(r.id)
		if k := s.known[key]; k != nil && k.at.After(r.at) {
			continue
		}
		s.known[key] = r
	}
}

// userJSON is a user as Graph answers it inside a $batch.
type userJSON struct {
	ID                    string   `json:"id"`
	UserPrincipalName     string   `json:"userPrincipalName"`
	Mail                  string   `json:"mail"`
	ProxyAddresses        []string `json:"proxyAddresses"`
	OnPremisesImmutableID string   `json:"onPremisesImmutableId"`
	OnPremisesSyncEnabled *bool    `json:"onPremisesSyncEnabled"`
	AuthorizationInfo     *struct {
		CertificateUserIDs []string `json:"certificateUserIds"`
	} `json:"authorizationInfo"`
}

func (u userJSON) record(at time.Time) *record {
	r := &record{id: u.ID, upn: u.UserPrincipalName, mail: u.Mail, proxies: u.ProxyAddresses,
		immutableID: u.OnPremisesImmutableID, synced: u.OnPremisesSyncEnabled != nil && *u.OnPremisesSyncEnabled, at: at}
	if u.AuthorizationInfo != nil {
		r.certIDs, r.certIDsKnown = u.AuthorizationInfo.CertificateUserIDs, true
	}
	return r
}

func modelRecord(u models.Userable, at time.Time) *record {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	r := &record{id: str(u.GetId()), upn: str(u.GetUserPrincipalName()), mail: str(u.GetMail()),
		proxies: u.GetProxyAddresses(), immutableID: str(u.GetOnPremisesImmutableId()), at: at}
	if p := u.GetOnPremisesSyncEnabled(); p != nil && *p {
		r.synced = true
	}
	if ai := u.GetAuthorizationInfo(); ai != nil {
		r.certIDs, r.certIDsKnown = ai.GetCertificateUserIds(), true
	}
	return r
}

// serviceError turns an error of the kiota request adapter into a
// *ServiceError when Graph answered, and leaves it as it is otherwise.
func serviceError(label string, err error) error {
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) {
		se := &ServiceError{Op: label, Status: oe.ResponseStatusCode}
		if me := oe.GetErrorEscaped(); me != nil {
			if c := me.GetCode(); c != nil {
				se.Code = *c
			}
			if m := me.GetMessage(); m != nil {
				se.Message = *m
			}
		}
		if oe.ResponseHeaders != nil {
			if v := oe.ResponseHeaders.Get("client-request-id"); len(v) > 0 {
				se.ClientRequestID = v[0]
			}
		}
		return se
	}
	var ae *abs.ApiError
	if errors.As(err, &ae) {
		return &ServiceError{Op: label, Status: ae.ResponseStatusCode, Message: ae.Message}
	}
	if isTokenFailure(err) {
		return signInError(err)
	}
	return err
}

// immutableID returns the onPremisesImmutableId Entra Connect gives the
// entry's user: the base64 of its objectGUID bytes. ok is false when the
// entry's ID is not a GUID (an LDIF entry keyed by DN).
func immutableID(e *directory.Entry) (string, bool) {
	b, err := directory.ParseGUID(e.ID)
	if err != nil {
		return "", false
	}
	return base64.StdEncoding.EncodeToString(b), true
}

var (
	_ cloud.Sink              = (*Sink)(nil)
	_ cloud.Preparer          = (*Sink)(nil)
	_ cloud.ConcurrencyHinter = (*Sink)(nil)
)
