package azauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrNotJWT is wrapped by the error [ReadClaims] returns for a token that
// is not a JSON Web Token it can read.
var ErrNotJWT = errors.New("azauth: the access token is not a readable JWT")

// TokenClaims are what an access token says about its holder, as
// [ReadClaims] reads them.
type TokenClaims struct {
	// Audience is the resource the token is for (aud).
	Audience string
	// TenantID is the tenant (tid); AppID the application (appid, or azp
	// in v2 tokens).
	TenantID, AppID string
	// Roles are the application permissions granted to the app for the
	// audience, with admin consent (the roles claim).
	Roles []string
	// HasRoles reports whether the token carried a roles claim at all:
	// Entra leaves it out of an app-only token when the app holds no
	// permission for the resource.
	HasRoles bool
	// Expires is when the token expires (exp); zero when absent.
	Expires time.Time
}

// ReadClaims decodes the payload of an access token WITHOUT verifying its
// signature: it is for telling an administrator what the token says (which
// permissions the app was granted), never for trusting it. Only the
// service the token is for can verify it. A token that is not a JWT with
// a JSON payload gives an error wrapping [ErrNotJWT].
func ReadClaims(token string) (TokenClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return TokenClaims{}, fmt.Errorf("%w: %d parts, want 3", ErrNotJWT, len(parts))
	}
	p, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return TokenClaims{}, fmt.Errorf("%w: payload: %v", ErrNotJWT, err)
	}
	var raw struct {
		Aud   json.RawMessage  `json:"aud"`
		Tid   string           `json:"tid"`
		AppID string           `json:"appid"`
		Azp   string           `json:"azp"`
		Roles *json.RawMessage `json:"roles"`
		Exp   json.Number      `json:"exp"`
	}
	if err := json.Unmarshal(p, &raw); err != nil {
		return TokenClaims{}, fmt.Errorf("%w: payload: %v", ErrNotJWT, err)
	}
	c := TokenClaims{TenantID: raw.Tid, AppID: raw.AppID}
	if c.AppID == "" {
		c.AppID = raw.Azp
	}
	// aud is a string, or (RFC 7519) a list of them.
	var aud []string
	if json.Unmarshal(raw.Aud, &c.Audience) != nil && json.Unmarshal(raw.Aud, &aud) == nil {
		c.Audience = strings.Join(aud, " ")
	}
	if raw.Roles != nil && string(*raw.Roles) != "null" {
		c.HasRoles = true
		if err := json.Unmarshal(*raw.Roles, &c.Roles); err != nil {
			return TokenClaims{}, fmt.Errorf("%w: roles: %v", ErrNotJWT, err)
		}
	}
	if n, err := raw.Exp.Int64(); err == nil && n > 0 {
		c.Expires = time.Unix(n, 0)
	}
	return c, nil
}

// Role is an application permission a sink needs: the one to grant, and
// the broader ones that also satisfy it.
type Role struct {
	// Name is the permission to grant (the least one that suffices), as
	// the Entra admin center lists it ("Exchange.ManageAsApp").
	Name string
	// Or are broader permissions that satisfy it as well.
	Or []string
	// API is the API that offers it, as the admin center's "Request API
	// permissions" pane names it ("Office 365 Exchange Online").
	API string
	// For says what the sink needs it for.
	For string
}

// MissingRoles returns the roles of need that granted (a token's roles
// claim) does not satisfy, by name or by one of its broader names,
// compared without regard to case.
func MissingRoles(granted []string, need []Role) []Role {
	has := func(n string) bool {
		return slices.ContainsFunc(granted, func(g string) bool { return strings.EqualFold(g, n) })
	}
	var out []Role
	for _, r := range need {
		if !has(r.Name) && !slices.ContainsFunc(r.Or, has) {
			out = append(out, r)
		}
	}
	return out
}
