package graphtest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/cloud/azauth/azauthtest"
)

// Error codes and messages, as the service words them where known (the
// wording of each is the emulator's choice where Microsoft does not
// document it).
const (
	msgSynced    = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."
	msgConflict  = "Another object with the same value for property certificateUserIds already exists."
	msgThrottled = "Too many requests. Retry after the time given in the Retry-After header."
)

// result is the answer to one request, plain or inside a $batch.
type result struct {
	status int
	header map[string]string
	body   any // marshalled as JSON; nil for no body
}

func errorResult(status int, code, msg string) result {
	return result{status: status, body: map[string]any{"error": map[string]any{
		"code":    code,
		"message": msg,
		"innerError": map[string]any{
			"date":       time.Now().UTC().Format("2006-01-02T15:04:05"),
			"request-id": "00000000-0000-0000-0000-000000000000",
		},
	}}}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	f := s.takeFault(r.Method, strings.TrimPrefix(r.URL.Path, "/v1.0"), false)
	s.mu.Unlock()
	s.logger().Debug("graphtest", "method", r.Method, "path", r.URL.Path, "fault", f != nil,
		"client-request-id", r.Header.Get("client-request-id"), "attempt", r.Header.Get("Retry-Attempt"))
	// The body is read first: net/http notices a client that hangs up
	// (and cancels r.Context()) only once the body is consumed.
	body, bodyErr := readBody(r)

	if f != nil {
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.Drop {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		if f.Status != 0 {
			res := errorResult(f.Status, http.StatusText(f.Status), "injected fault")
			if f.RetryAfter != "" {
				res.header = map[string]string{"Retry-After": f.RetryAfter}
			}
			writeResult(w, res)
			return
		}
	}

	claims, res, ok := s.authenticate(r)
	if !ok {
		writeResult(w, res)
		return
	}
	if bodyErr != nil {
		writeResult(w, errorResult(http.StatusBadRequest, "BadRequest", bodyErr.Error()))
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v1.0/") {
		writeResult(w, errorResult(http.StatusNotFound, "BadRequest", "Invalid version: the emulator serves /v1.0 only"))
		return
	}
	rel := strings.TrimPrefix(r.URL.Path, "/v1.0")
	if rel == "/$batch" {
		if r.Method != http.MethodPost {
			writeResult(w, errorResult(http.StatusMethodNotAllowed, "BadRequest", "$batch takes POST"))
			return
		}
		writeResult(w, s.batch(r.Context(), claims, body))
		return
	}
	writeResult(w, s.do(r.Context(), claims, r.Method, rel, r.URL.Query(), body))
}

// authenticate checks the bearer token. It returns the claims, or the 401
// to answer.
func (s *Server) authenticate(r *http.Request) (azauthtest.Claims, result, bool) {
	refuse := func(msg string) (azauthtest.Claims, result, bool) {
		s.mu.Lock()
		s.stats.Unauthorized++
		s.mu.Unlock()
		res := errorResult(http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
		res.header = map[string]string{"WWW-Authenticate": `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`}
		return azauthtest.Claims{}, res, false
	}
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return refuse("Access token is empty.")
	}
	if s.cfg.Tokens == nil {
		return refuse("The emulator has no token verifier (graphtest.Config.Tokens).")
	}
	c, err := s.cfg.Tokens.Verify(strings.TrimSpace(h[len(prefix):]), s.audience)
	if err != nil {
		if errors.Is(err, azauthtest.ErrWrongAudience) {
			return refuse("Invalid audience. " + err.Error())
		}
		return refuse("Access token validation failure. " + err.Error())
	}
	return c, result{}, true
}

// readBody reads the request body, un-gzipping it when it is labelled so.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("reading body: %v", err)
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return b, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("body is labelled Content-Encoding: gzip but is not gzip: %v", err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("body is labelled Content-Encoding: gzip but is not gzip: %v", err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("Content-Encoding %q is not supported", enc)
	}
}

func writeResult(w http.ResponseWriter, res result) {
	for k, v := range res.header {
		w.Header().Set(k, v)
	}
	if res.body == nil {
		w.WriteHeader(res.status)
		return
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.WriteHeader(res.status)
	_ = json.NewEncoder(w).Encode(res.body)
}

// do serves one request below /v1.0 (path starts with "/").
func (s *Server) do(ctx context.Context, c azauthtest.Claims, method, path string, q url.Values, body []byte) result {
	if s.cfg.RequireRoles {
		need := ReadRoles
		if method != http.MethodGet {
			need = WriteRoles
		}
		if !slices.ContainsFunc(c.Roles, func(r string) bool {
			return slices.ContainsFunc(need, func(n string) bool { return strings.EqualFold(n, r) })
		}) {
			return errorResult(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		}
	}
	switch {
	case path == "/users" && method == http.MethodGet:
		return s.listUsers(q)
	case strings.HasPrefix(path, "/users/") && strings.Count(path, "/") == 2:
		id, err := url.PathUnescape(strings.TrimPrefix(path, "/users/"))
		if err != nil || id == "" {
			return errorResult(http.StatusBadRequest, "BadRequest", "bad user id in path")
		}
		switch method {
		case http.MethodGet:
			return s.getUser(id, q)
		case http.MethodPatch:
			return s.patchUser(c, id, body)
		}
		return errorResult(http.StatusMethodNotAllowed, "BadRequest", method+" is not supported on a user by the emulator")
	}
	return errorResult(http.StatusNotFound, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", strings.TrimPrefix(path, "/")))
}

// selectable are the user properties the emulator returns, by lower-case
// name; defaultSelect is what a GET without $select returns (the
// emulator's choice, after the service's documented default set: neither
// authorizationInfo nor the onPremises* properties nor proxyAddresses come
// without $select).
var (
	selectable = map[string]string{
		"id": "id", "userprincipalname": "userPrincipalName", "mail": "mail",
		"proxyaddresses": "proxyAddresses", "onpremisesimmutableid": "onPremisesImmutableId",
		"onpremisessyncenabled": "onPremisesSyncEnabled", "authorizationinfo": "authorizationInfo",
		"displayname": "displayName",
	}
	defaultSelect = []string{"id", "userPrincipalName", "mail", "displayName"}
)

func parseSelect(q url.Values) ([]string, *result) {
	raw := q.Get("$select")
	if raw == "" {
		return defaultSelect, nil
	}
	var out []string
	for _, p := range strings.Split(raw, ",") {
		name, ok := selectable[strings.ToLower(strings.TrimSpace(p))]
		if !ok {
			r := errorResult(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.user'.", strings.TrimSpace(p)))
			return nil, &r
		}
		out = append(out, name)
	}
	return out, nil
}

func render(u *User, sel []string) map[string]any {
	m := make(map[string]any, len(sel))
	for _, p := range sel {
		switch p {
		case "id":
			m[p] = u.ID
		case "userPrincipalName":
			m[p] = u.UserPrincipalName
		case "displayName":
			m[p] = u.UserPrincipalName
		case "mail":
			m[p] = nullable(u.Mail)
		case "proxyAddresses":
			m[p] = append([]string{}, u.ProxyAddresses...)
		case "onPremisesImmutableId":
			m[p] = nullable(u.OnPremisesImmutableID)
		case "onPremisesSyncEnabled":
			if u.OnPremisesSyncEnabled {
				m[p] = true
			} else {
				m[p] = nil
			}
		case "authorizationInfo":
			if u.NullAuthorizationInfo {
				m[p] = nil
				break
			}
			m[p] = map[string]any{"certificateUserIds": append([]string{}, u.CertificateUserIDs...)}
		}
	}
	return m
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) listUsers(q url.Values) result {
	sel, bad := parseSelect(q)
	if bad != nil {
		return *bad
	}
	f, err := parseFilter(q.Get("$filter"))
	if err != nil {
		return errorResult(http.StatusBadRequest, "Request_UnsupportedQuery", err.Error())
	}
	top := DefaultPageSize
	if t := q.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > MaxPageSize {
			return errorResult(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and %d inclusive.", t, MaxPageSize))
		}
		top = n
	}
	offset := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err == nil {
			offset, err = strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		}
		if err != nil || offset < 0 {
			return errorResult(http.StatusBadRequest, "Request_BadRequest", "Invalid $skiptoken.")
		}
	}

	s.mu.Lock()
	s.stats.Reads++
	var matched []*User
	for _, u := range s.users {
		if f.match(u) {
			matched = append(matched, u)
		}
	}
	page := []map[string]any{}
	for i := offset; i < len(matched) && i < offset+top; i++ {
		page = append(page, render(matched[i], sel))
	}
	s.mu.Unlock()

	out := map[string]any{
		"@odata.context": s.URL + "/v1.0/$metadata#users(" + strings.Join(sel, ",") + ")",
		"value":          page,
	}
	if offset+top < len(matched) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("$top", strconv.Itoa(top))
		next.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(offset+top))))
		base := s.URL
		if s.cfg.NextLinkBase != "" {
			base = s.cfg.NextLinkBase
		}
		out["@odata.nextLink"] = base + "/v1.0/users?" + next.Encode()
	}
	return result{status: http.StatusOK, body: out}
}

// lookup finds a user by object id or UPN. Callers hold s.mu.
func (s *Server) lookup(id string) *User {
	if u, ok := s.byID[strings.ToLower(id)]; ok {
		return u
	}
	for _, u := range s.users {
		if strings.EqualFold(u.UserPrincipalName, id) {
			return u
		}
	}
	return nil
}

func notFound(id string) result {
	return errorResult(http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id))
}

func (s *Server) getUser(id string, q url.Values) result {
	sel, bad := parseSelect(q)
	if bad != nil {
		return *bad
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Reads++
	u := s.lookup(id)
	if u == nil {
		return notFound(id)
	}
	m := render(u, sel)
	m["@odata.context"] = s.URL + "/v1.0/$metadata#users(" + strings.Join(sel, ",") + ")/$entity"
	return result{status: http.StatusOK, body: m}
}

func (s *Server) patchUser(c azauthtest.Claims, id string, body []byte) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.throttleWrite(c.TenantID, c.AppID); d > 0 {
		s.stats.Throttled++
		res := errorResult(http.StatusTooManyRequests, "TooManyRequests", msgThrottled)
		res.header = map[string]string{"Retry-After": s.clock.retryAfter(d)}
		return res
	}
	refuse := func(status int, code, msg string) result {
		s.stats.Refused++
		return errorResult(status, code, msg)
	}
	var patch map[string]json.RawMessage
	if err := json.Unmarshal(body, &patch); err != nil {
		return refuse(http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload: "+err.Error())
	}
	var values []string
	found := false
	for k, v := range patch {
		switch k {
		case "@odata.type":
		case "authorizationInfo":
			var ai map[string]json.RawMessage
			if err := json.Unmarshal(v, &ai); err != nil {
				return refuse(http.StatusBadRequest, "BadRequest", "authorizationInfo: "+err.Error())
			}
			for ak, av := range ai {
				switch ak {
				case "@odata.type":
				case "certificateUserIds":
					if err := json.Unmarshal(av, &values); err != nil {
						return refuse(http.StatusBadRequest, "BadRequest", "certificateUserIds: "+err.Error())
					}
					found = true
				default:
					return refuse(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Property '%s' does not exist on type 'microsoft.graph.authorizationInfo'.", ak))
				}
			}
		default:
			return refuse(http.StatusBadRequest, "BadRequest", fmt.Sprintf("The emulator writes authorizationInfo only, not '%s'.", k))
		}
	}
	if !found {
		return refuse(http.StatusBadRequest, "BadRequest", "The request carries no authorizationInfo.certificateUserIds.")
	}
	u := s.lookup(id)
	if u == nil {
		s.stats.Refused++
		return notFound(id)
	}
	if u.OnPremisesSyncEnabled {
		return refuse(http.StatusBadRequest, "Request_BadRequest", msgSynced)
	}
	invalid := "Invalid value specified for property 'certificateUserIds' of resource 'User'."
	if len(values) > MaxCertificateUserIDs {
		return refuse(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("%s It holds at most %d values, not %d.", invalid, MaxCertificateUserIDs, len(values)))
	}
	for i, v := range values {
		if v == "" || len([]rune(v)) > MaxCertificateUserIDLength {
			return refuse(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("%s Value %d has %d characters (1 to %d allowed).", invalid, i, len([]rune(v)), MaxCertificateUserIDLength))
		}
		for _, w := range values[:i] {
			if strings.EqualFold(v, w) {
				return refuse(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("%s Value %q appears twice.", invalid, v))
			}
		}
	}
	for _, v := range values {
		if o := s.owner[strings.ToLower(v)]; o != nil && o != u {
			return refuse(http.StatusBadRequest, "Request_BadRequest", msgConflict)
		}
	}
	s.setValues(u, values)
	s.stats.Writes++
	s.writes = append(s.writes, Write{UserID: u.ID, Values: slices.Clone(values), AppID: c.AppID, TenantID: c.TenantID, At: time.Now()})
	return result{status: http.StatusNoContent}
}

// batchRequest and batchResponse are the JSON $batch format.
type batchRequest struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      json.RawMessage   `json:"body,omitempty"`
	DependsOn []string          `json:"dependsOn,omitempty"`
}

type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

func (s *Server) batch(ctx context.Context, c azauthtest.Claims, body []byte) result {
	var req struct {
		Requests []batchRequest `json:"requests"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return errorResult(http.StatusBadRequest, "BadRequest", "Invalid batch payload format: "+err.Error())
	}
	s.mu.Lock()
	s.stats.Batches++
	s.stats.BatchItems += len(req.Requests)
	s.mu.Unlock()
	if len(req.Requests) == 0 {
		return errorResult(http.StatusBadRequest, "BadRequest", "Invalid batch payload format: no requests.")
	}
	if len(req.Requests) > MaxBatchRequests {
		return errorResult(http.StatusBadRequest, "BadRequest", fmt.Sprintf("The number of requests in a batch is limited to %d; this one has %d.", MaxBatchRequests, len(req.Requests)))
	}
	seen := map[string]int{}
	for _, it := range req.Requests {
		if it.ID == "" {
			return errorResult(http.StatusBadRequest, "BadRequest", "Invalid batch payload format: a request has no id.")
		}
		if _, dup := seen[it.ID]; dup {
			return errorResult(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid batch payload format: id %q appears twice.", it.ID))
		}
		seen[it.ID] = 0
	}
	out := make([]batchResponse, 0, len(req.Requests))
	for _, it := range req.Requests {
		res := s.batchItem(ctx, c, it, seen)
		seen[it.ID] = res.status
		br := batchResponse{ID: it.ID, Status: res.status, Headers: map[string]string{}, Body: res.body}
		for k, v := range res.header {
			br.Headers[k] = v
		}
		if res.body != nil {
			br.Headers["Content-Type"] = "application/json; odata.metadata=minimal; charset=utf-8"
		}
		out = append(out, br)
	}
	return result{status: http.StatusOK, body: map[string]any{"responses": out}}
}

func (s *Server) batchItem(ctx context.Context, c azauthtest.Claims, it batchRequest, statuses map[string]int) result {
	for _, d := range it.DependsOn {
		st, ok := statuses[d]
		if !ok {
			return errorResult(http.StatusBadRequest, "BadRequest", fmt.Sprintf("dependsOn names unknown request %q", d))
		}
		if st == 0 || st >= 400 {
			return errorResult(http.StatusFailedDependency, "FailedDependency", "A request this one depends on failed.")
		}
	}
	u, err := url.Parse(it.URL)
	if err != nil || u.IsAbs() || u.Host != "" {
		return errorResult(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid request URL %q: batch requests take URLs relative to the version (for example /users/{id}).", it.URL))
	}
	path := u.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	var body []byte
	if len(it.Body) > 0 && string(it.Body) != "null" {
		body = it.Body
		ct := ""
		for k, v := range it.Headers {
			if strings.EqualFold(k, "Content-Type") {
				ct = v
			}
		}
		if ct == "" {
			return errorResult(http.StatusBadRequest, "BadRequest", "Content-Type header must be specified for a batch request with a body.")
		}
	}
	s.mu.Lock()
	f := s.takeFault(it.Method, path, true)
	s.mu.Unlock()
	if f != nil {
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if f.Status != 0 {
			res := errorResult(f.Status, http.StatusText(f.Status), "injected fault")
			if f.RetryAfter != "" {
				res.header = map[string]string{"Retry-After": f.RetryAfter}
			}
			return res
		}
	}
	res := s.do(ctx, c, strings.ToUpper(it.Method), path, u.Query(), body)
	return res
}
