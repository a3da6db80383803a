package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// Ranks of a match, strongest first.
const (
	rankImmutableID = iota
	rankUPN
	rankMail
	rankProxy
	nRanks
)

var rankNames = [nRanks]string{"onPremisesImmutableId", "userPrincipalName", "mail", "proxyAddresses"}

// keys are what an entry is looked up by, per rank.
type keys [nRanks][]string

// entryKeys returns the lookup keys of e: its immutable id, its UPN, and
// its addresses (for mail; and for proxyAddresses as "smtp:" + address).
func entryKeys(e *directory.Entry) keys {
	var k keys
	if id, ok := immutableID(e); ok {
		k[rankImmutableID] = []string{id}
	}
	if e.UserPrincipalName != "" {
		k[rankUPN] = []string{e.UserPrincipalName}
	}
	addrs := e.Addresses()
	k[rankMail] = addrs
	for _, a := range addrs {
		k[rankProxy] = append(k[rankProxy], "smtp:"+a)
	}
	return k
}

func (k keys) empty() bool {
	for _, v := range k {
		if len(v) > 0 {
			return false
		}
	}
	return true
}

// decide picks the user of the strongest rank that has matches.
// matches[rank] holds the users that matched at that rank.
func decide(e *directory.Entry, k keys, matches [nRanks][]*record) (*record, error) {
	for rank := range nRanks {
		var ids []string
		var pick *record
		for _, r := range matches[rank] {
			if !slices.ContainsFunc(ids, func(id string) bool { return strings.EqualFold(id, r.id) }) {
				ids = append(ids, r.id)
				pick = r
			}
		}
		switch len(ids) {
		case 0:
			continue
		case 1:
			return pick, nil
		}
		slices.Sort(ids)
		return nil, &AmbiguousError{Entry: entryName(e), Key: rankNames[rank] + " " + strings.Join(k[rank], ", "), Users: ids}
	}
	return nil, fmt.Errorf("graph: entry %s: no Entra user has its immutable id, UPN, mail or proxy address: %w", entryName(e), cloud.ErrNotFound)
}

func entryName(e *directory.Entry) string {
	if e.DN != "" {
		return e.DN
	}
	return e.ID
}

// index resolves entries against a listing of every user.
type index struct {
	by      [nRanks]map[string][]*record // key (lower case but immutable id) → users
	records []*record
}

func newIndex(recs []*record) *index {
	idx := &index{records: recs}
	for i := range idx.by {
		idx.by[i] = map[string][]*record{}
	}
	add := func(rank int, key string, r *record) {
		if key == "" {
			return
		}
		key = strings.ToLower(key)
		idx.by[rank][key] = append(idx.by[rank][key], r)
	}
	for _, r := range recs {
		add(rankImmutableID, r.immutableID, r)
		add(rankUPN, r.upn, r)
		add(rankMail, r.mail, r)
		for _, p := range r.proxies {
			if len(p) > 5 && strings.EqualFold(p[:5], "smtp:") {
				add(rankProxy, "smtp:"+p[5:], r)
			}
		}
	}
	return idx
}

func (idx *index) resolve(e *directory.Entry) (*record, error) {
	k := entryKeys(e)
	var m [nRanks][]*record
	for rank, vals := range k {
		for _, v := range vals {
			m[rank] = append(m[rank], idx.by[rank][strings.ToLower(v)]...)
		}
	}
	return decide(e, k, m)
}

// listErrTTL is how long a failed listing's error answers lookups: a
// listing that failed after its retries (a refused token, a missing
// permission) fails every lookup of the run the same way, and asking again
// for each entry would only add load.
const listErrTTL = 30 * time.Second

// commitListing records the users of a new listing, under s.mu (the
// listing's cache calls it with the lock held, as it publishes the
// listing): records read or written after the listing started stay.
func (s *Sink) commitListing(idx *index) { s.rememberLocked(idx.records...) }

// readUsers pages through every user of the tenant with the properties
// resolution and Write need.
func (s *Sink) readUsers(ctx context.Context) (*index, error) {
	start := time.Now()
	top := int32(s.cfg.PageSize)
	page, err := s.users.Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Select: userSelect, Top: &top},
	})
	var recs []*record
	for {
		if err != nil {
			return nil, fmt.Errorf("graph: listing users: %w", serviceError("GET users", err))
		}
		s.mu.Lock()
		s.pages++
		s.mu.Unlock()
		for _, u := range page.GetValue() {
			recs = append(recs, modelRecord(u, start))
		}
		next := page.GetOdataNextLink()
		if next == nil || *next == "" {
			break
		}
		// The next page is asked with the token: only of the host the
		// token is meant for, whatever the answer names.
		u, perr := url.Parse(*next)
		if perr != nil {
			return nil, fmt.Errorf("graph: listing users: @odata.nextLink is not a URL: %w", perr)
		}
		if herr := s.hosts.Check(u, "@odata.nextLink"); herr != nil {
			return nil, fmt.Errorf("graph: listing users: not following the next page: %w", herr)
		}
		page, err = users.NewUsersRequestBuilder(*next, s.adapter).Get(ctx, nil)
	}
	s.log.Debug("graph users listed", "users", len(recs), "duration", time.Since(start))
	return newIndex(recs), nil
}

// filterFor returns the $filter that finds users by key at rank. String
// literals double their single quotes (OData).
func filterFor(rank int, key string) string {
	q := "'" + strings.ReplaceAll(key, "'", "''") + "'"
	if rank == rankProxy {
		return "proxyAddresses/any(p:p eq " + q + ")"
	}
	return rankNames[rank] + " eq " + q
}

// findBatch looks e up with one $filter query per key, all at once, in
// $batch requests shared with concurrent callers.
func (s *Sink) findBatch(ctx context.Context, e *directory.Entry) (*record, error) {
	k := entryKeys(e)
	if k.empty() {
		return nil, fmt.Errorf("graph: entry %s has no immutable id, UPN or address to look up: %w", entryName(e), cloud.ErrNotFound)
	}
	type lookup struct {
		rank int
		key  string
		res  chan opResult
	}
	var ls []lookup
	top := int32(5)
	now := time.Now() // before the requests: the answers are at least this fresh
	for rank, vals := range k {
		for _, v := range vals {
			f := filterFor(rank, v)
			info, err := s.users.ToGetRequestInformation(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
				QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Filter: &f, Select: userSelect, Top: &top},
			})
			if err != nil {
				return nil, fmt.Errorf("graph: entry %s: building lookup: %w", entryName(e), err)
			}
			l := lookup{rank: rank, key: v, res: make(chan opResult, 1)}
			ls = append(ls, l)
			o := &op{label: "GET users?$filter=" + f, info: info}
			go func() { l.res <- s.batch.do(ctx, o) }()
		}
	}
	var m [nRanks][]*record
	var firstErr error
	for _, l := range ls {
		res := <-l.res
		if res.err == nil && res.status != http.StatusOK {
			res.err = itemError("GET users?$filter="+filterFor(l.rank, l.key), res)
		}
		if res.err != nil {
			if firstErr == nil {
				firstErr = res.err
			}
			continue
		}
		var page struct {
			Value []userJSON `json:"value"`
		}
		if err := json.Unmarshal(res.body, &page); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("graph: entry %s: decoding lookup answer: %w", entryName(e), err)
			}
			continue
		}
		for _, u := range page.Value {
			r := u.record(now)
			m[l.rank] = append(m[l.rank], r)
			s.remember(r)
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return decide(e, k, m)
}
