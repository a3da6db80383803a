package ldapsource

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// cookieVersion is the version of the cookie encoding.
const cookieVersion = 1

// cookie is what a pass hands back for the next one: JSON, versioned and
// self-describing, so that a cookie of another kind, server or scope is
// recognised and answered with a logged full pass.
type cookie struct {
	V int `json:"v"`
	// Kind is the delta mechanism: dirsync, usn or syncrepl.
	Kind DeltaMode `json:"kind"`
	// Server pins the cookie to one domain controller (its invocationId)
	// for dirsync and usn; empty for syncrepl, whose CSNs are valid on
	// every replica.
	Server string `json:"server,omitempty"`
	// Scope is a digest of what the pass read (server kind, filter, base
	// DNs, exclusions, ID attribute): a changed scope needs a full pass,
	// since a delta would not bring the entries newly in scope.
	Scope string `json:"scope"`
	// Full is when the last full pass started.
	Full time.Time `json:"full"`
	// DirSync is the DirSync control's cookie the next dirsync delta
	// starts from, and DirSyncAhead the one the last pass ended with (see
	// [overlap]: the next pass starts one pass behind). A cookie without
	// DirSyncAhead (a full pass's mark) is its own ahead.
	DirSync      []byte `json:"dirsync,omitempty"`
	DirSyncAhead []byte `json:"dirsyncAhead,omitempty"`
	// USN is the highestCommittedUSN the next usn delta starts after, and
	// USNAhead the one the last pass read (as DirSync and DirSyncAhead).
	USN      int64 `json:"usn,omitempty"`
	USNAhead int64 `json:"usnAhead,omitempty"`
	// Seen holds what the last dirsync or usn delta yielded or found
	// already yielded, by lower-cased ID: the entry's uSNChanged, or 0 for
	// a deletion or a move out of scope (entries whose uSNChanged could
	// not be read are not listed). The next pass, which reads that pass's
	// changes again, skips them (see [overlap]).
	Seen map[string]int64 `json:"seen,omitempty"`
	// Tombstones says whether the account has been seen to read deleted
	// objects, by the full pass's probe or by a delta (usn).
	Tombstones bool `json:"tombstones,omitempty"`
	// Syncrepl holds one RFC 4533 cookie per base DN, in BaseDN order.
	Syncrepl []syncCookie `json:"syncrepl,omitempty"`
}

type syncCookie struct {
	Base   string `json:"base"`
	Cookie []byte `json:"cookie"`
}

// dirsyncAhead returns the DirSync cookie the pass that made c ended
// with: where the pass after next starts.
func (c *cookie) dirsyncAhead() []byte {
	if len(c.DirSyncAhead) > 0 {
		return c.DirSyncAhead
	}
	return c.DirSync
}

// usnAhead is dirsyncAhead for usn cookies.
func (c *cookie) usnAhead() int64 {
	if c.USNAhead > 0 {
		return c.USNAhead
	}
	return c.USN
}

func (c *cookie) encode() ([]byte, error) {
	c.V = cookieVersion
	return json.Marshal(c)
}

// decodeCookie parses b. A cookie that cannot be used gives an error
// saying why (the caller logs it and reads in full).
func decodeCookie(b []byte) (*cookie, error) {
	var c cookie
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("not an ldapsource cookie: %v", err)
	}
	if c.V != cookieVersion {
		return nil, fmt.Errorf("cookie version %d, want %d", c.V, cookieVersion)
	}
	switch c.Kind {
	case DeltaDirSync:
		if len(c.DirSync) == 0 {
			return nil, fmt.Errorf("dirsync cookie without DirSync state")
		}
	case DeltaUSN:
		if c.USN <= 0 {
			return nil, fmt.Errorf("usn cookie without a USN")
		}
	case DeltaSyncrepl:
		if len(c.Syncrepl) == 0 {
			return nil, fmt.Errorf("syncrepl cookie without content-sync state")
		}
	default:
		return nil, fmt.Errorf("cookie of unknown kind %q", c.Kind)
	}
	return &c, nil
}

// scopeDigest summarises what a pass reads.
func scopeDigest(parts ...[]string) string {
	h := sha256.New()
	for _, p := range parts {
		for _, s := range p {
			h.Write([]byte(strings.ToLower(s)))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
