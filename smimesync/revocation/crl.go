package revocation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/smimesync/go-smimesync/smimesync"
)

// crlInfo is a verified CRL as the cache keeps it: revoked serial numbers
// indexed, the rest of the list dropped.
type crlInfo struct {
	thisUpdate, nextUpdate time.Time
	revoked                map[string]crlEntry
	scope                  crlScope
}

// size estimates the bytes info holds: per revoked serial, the key, the
// entry and the map's share.
func (info *crlInfo) size() int64 {
	n := int64(128)
	for k := range info.revoked {
		n += int64(len(k)) + 80
	}
	for _, u := range info.scope.uris {
		n += int64(len(u)) + 16
	}
	return n
}

type crlEntry struct {
	at     time.Time
	reason int
}

// removeFromCRL is the CRLReason of an entry that lifts a certificateHold;
// it belongs in delta CRLs and means "not revoked".
const removeFromCRL = 8

// Extensions a CRL may carry (RFC 5280 section 5.2 and 5.3).
var (
	oidAuthorityKeyID    = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber         = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidIssuingDP         = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidReasonCode        = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidityDate    = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidCertificateIssuer = asn1.ObjectIdentifier{2, 5, 29, 29}
)

// askCRL reads the CRL at url (from the cache when it is there) and looks
// cert up in it.
func (c *Checker) askCRL(ctx context.Context, url string, cert, issuer *x509.Certificate) (Answer, error) {
	info, err := c.loadCRL(ctx, url, issuer)
	if err != nil {
		return Answer{}, err
	}
	return info.lookup(url, cert)
}

// lookup answers for cert from the CRL fetched from url.
func (info *crlInfo) lookup(url string, cert *x509.Certificate) (Answer, error) {
	if err := info.scope.covers(cert); err != nil {
		return Answer{}, err
	}
	a := Answer{Method: CRL, URL: url, ThisUpdate: info.thisUpdate, NextUpdate: info.nextUpdate, Status: smimesync.RevocationGood}
	if e, ok := info.revoked[serialKey(cert.SerialNumber)]; ok {
		a.Status = smimesync.RevocationRevoked
		a.RevokedAt = e.at
		a.Reason = e.reason
	}
	return a, nil
}

// loadCRL returns the verified CRL at url for issuer. Concurrent callers
// share one fetch; the result stays cached until the CRL's NextUpdate.
func (c *Checker) loadCRL(ctx context.Context, url string, issuer *x509.Certificate) (*crlInfo, error) {
	// Keyed by the issuer's name and key: those are what verify the CRL.
	id := sha256.Sum256(append(append([]byte(nil), issuer.RawSubject...), issuer.RawSubjectPublicKeyInfo...))
	key := "c" + string(id[:]) + url
	// get answers from the cache: the CRL, or its remembered failure.
	get := func() (*crlInfo, bool, error) {
		if v, _, ok := c.cache.get(key, c.now()); ok {
			return v.(*crlInfo), true, nil
		}
		if err := c.failed(key); err != nil {
			return nil, true, err
		}
		return nil, false, nil
	}
	if info, ok, err := get(); ok {
		return info, err
	}
	v, err, _ := c.flight.Do(key, func() (any, error) {
		if info, ok, err := get(); ok {
			return info, err
		}
		c.log.DebugContext(ctx, "revocation: fetching CRL", "url", url)
		body, err := c.fetch(ctx, url, nil, "", "application/pkix-crl", c.maxCRLSize())
		var info *crlInfo
		if err == nil {
			info, err = c.parseCRL(body, issuer)
		}
		if err != nil {
			if !isBudget(err) {
				c.remember(key, err)
			}
			return nil, err
		}
		c.log.DebugContext(ctx, "revocation: CRL loaded", "url", url, "entries", len(info.revoked), "nextUpdate", info.nextUpdate)
		if !c.cache.put(key, info, c.until(info.nextUpdate), info.size()) {
			c.log.DebugContext(ctx, "revocation: CRL too large to cache", "url", url, "bytes", info.size())
		}
		return info, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*crlInfo), nil
}

func (c *Checker) maxCRLSize() int64 {
	if c.MaxCRLSize > 0 {
		return c.MaxCRLSize
	}
	return DefaultMaxCRLSize
}

// parseCRL parses a DER (or PEM) CRL, checks that issuer signed it, that it
// is fresh and that it is a complete, direct CRL, and indexes its entries.
func (c *Checker) parseCRL(body []byte, issuer *x509.Certificate) (*crlInfo, error) {
	der := body
	if bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("-----BEGIN")) {
		p, _ := pem.Decode(body)
		if p == nil || p.Type != "X509 CRL" {
			return nil, fmt.Errorf("%w: PEM answer is not an X509 CRL", ErrMalformed)
		}
		der = p.Bytes
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !bytes.Equal(rl.RawIssuer, issuer.RawSubject) {
		return nil, fmt.Errorf("%w: CRL issued by %q, not by the certificate's issuer %q", ErrBadSignature, rl.Issuer, issuer.Subject)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if err := c.checkFresh(rl.ThisUpdate, rl.NextUpdate); err != nil {
		return nil, err
	}
	info := &crlInfo{thisUpdate: rl.ThisUpdate, nextUpdate: rl.NextUpdate}
	for _, ext := range rl.Extensions {
		switch {
		case ext.Id.Equal(oidIssuingDP):
			if info.scope, err = parseIssuingDP(ext.Value); err != nil {
				return nil, err
			}
		case ext.Id.Equal(oidDeltaCRLIndicator):
			return nil, fmt.Errorf("%w: a delta CRL, not a complete one", ErrUnsupportedCRL)
		case ext.Id.Equal(oidAuthorityKeyID), ext.Id.Equal(oidCRLNumber):
		case ext.Critical:
			return nil, fmt.Errorf("%w: unknown critical extension %s", ErrUnsupportedCRL, ext.Id)
		}
	}
	info.revoked = make(map[string]crlEntry, len(rl.RevokedCertificateEntries))
	for _, e := range rl.RevokedCertificateEntries {
		for _, ext := range e.Extensions {
			switch {
			case ext.Id.Equal(oidCertificateIssuer):
				return nil, fmt.Errorf("%w: an indirect CRL (entry with a certificateIssuer)", ErrUnsupportedCRL)
			case ext.Id.Equal(oidReasonCode), ext.Id.Equal(oidInvalidityDate):
			case ext.Critical:
				return nil, fmt.Errorf("%w: unknown critical entry extension %s", ErrUnsupportedCRL, ext.Id)
			}
		}
		if e.ReasonCode == removeFromCRL {
			continue
		}
		info.revoked[serialKey(e.SerialNumber)] = crlEntry{at: e.RevocationTime, reason: e.ReasonCode}
	}
	return info, nil
}

// serialKey is a serial number as a map key.
func serialKey(n *big.Int) string {
	if n == nil {
		return ""
	}
	if n.Sign() < 0 {
		return "-" + string(n.Bytes())
	}
	return "+" + string(n.Bytes())
}

// crlScope is what the issuingDistributionPoint extension says a CRL
// covers. The zero value covers every certificate of the issuer.
type crlScope struct {
	onlyUser, onlyCA bool
	// dpNamed is true when the extension names the distribution point;
	// uris are its URI names.
	dpNamed bool
	uris    []string
}

// covers tells whether the CRL can answer for cert (RFC 5280 section
// 6.3.3 b.2).
func (s crlScope) covers(cert *x509.Certificate) error {
	if s.onlyCA && !cert.IsCA {
		return fmt.Errorf("%w: it covers CA certificates only", ErrUnsupportedCRL)
	}
	if s.onlyUser && cert.IsCA {
		return fmt.Errorf("%w: it covers end-entity certificates only", ErrUnsupportedCRL)
	}
	if s.dpNamed && !slices.ContainsFunc(s.uris, func(u string) bool { return slices.Contains(cert.CRLDistributionPoints, u) }) {
		return fmt.Errorf("%w: it is for distribution point %q, which the certificate does not name", ErrUnsupportedCRL, s.uris)
	}
	return nil
}

// parseIssuingDP parses the value of an issuingDistributionPoint extension
// (RFC 5280 section 5.2.5) and refuses the kinds of CRL that cannot tell
// whether a certificate is revoked on their own:
//
//	IssuingDistributionPoint ::= SEQUENCE {
//	    distributionPoint          [0] DistributionPointName OPTIONAL,
//	    onlyContainsUserCerts      [1] BOOLEAN DEFAULT FALSE,
//	    onlyContainsCACerts        [2] BOOLEAN DEFAULT FALSE,
//	    onlySomeReasons            [3] ReasonFlags OPTIONAL,
//	    indirectCRL                [4] BOOLEAN DEFAULT FALSE,
//	    onlyContainsAttributeCerts [5] BOOLEAN DEFAULT FALSE }
//	DistributionPointName ::= CHOICE {
//	    fullName                [0] GeneralNames,
//	    nameRelativeToCRLIssuer [1] RelativeDistinguishedName }
func parseIssuingDP(der []byte) (crlScope, error) {
	var s crlScope
	bad := func(what string) (crlScope, error) {
		return crlScope{}, fmt.Errorf("%w: issuingDistributionPoint: %s", ErrMalformed, what)
	}
	in := cryptobyte.String(der)
	var idp cryptobyte.String
	if !in.ReadASN1(&idp, cbasn1.SEQUENCE) || !in.Empty() {
		return bad("not a SEQUENCE")
	}
	var dp cryptobyte.String
	if !idp.ReadOptionalASN1(&dp, &s.dpNamed, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return bad("bad distributionPoint")
	}
	if s.dpNamed {
		var full cryptobyte.String
		var hasFull bool
		if !dp.ReadOptionalASN1(&full, &hasFull, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return bad("bad distributionPoint name")
		}
		if !hasFull {
			return crlScope{}, fmt.Errorf("%w: its distribution point is named relative to the CRL issuer", ErrUnsupportedCRL)
		}
		if !dp.Empty() {
			return bad("trailing data after fullName")
		}
		s.uris = []string{}
		for !full.Empty() {
			var name cryptobyte.String
			var tag cbasn1.Tag
			if !full.ReadAnyASN1(&name, &tag) {
				return bad("bad GeneralName")
			}
			if tag == cbasn1.Tag(6).ContextSpecific() { // uniformResourceIdentifier
				s.uris = append(s.uris, string(name))
			}
		}
	}
	flag := func(n uint8) (bool, bool) {
		var v cryptobyte.String
		var present bool
		if !idp.ReadOptionalASN1(&v, &present, cbasn1.Tag(n).ContextSpecific()) {
			return false, false
		}
		if !present {
			return false, true
		}
		if len(v) != 1 {
			return false, false
		}
		return v[0] != 0, true
	}
	var ok bool
	if s.onlyUser, ok = flag(1); !ok {
		return bad("bad onlyContainsUserCerts")
	}
	if s.onlyCA, ok = flag(2); !ok {
		return bad("bad onlyContainsCACerts")
	}
	var reasons cryptobyte.String
	var someReasons bool
	if !idp.ReadOptionalASN1(&reasons, &someReasons, cbasn1.Tag(3).ContextSpecific()) {
		return bad("bad onlySomeReasons")
	}
	indirect, ok := flag(4)
	if !ok {
		return bad("bad indirectCRL")
	}
	attrs, ok := flag(5)
	if !ok {
		return bad("bad onlyContainsAttributeCerts")
	}
	if !idp.Empty() {
		return bad("trailing data")
	}
	switch {
	case someReasons:
		return crlScope{}, fmt.Errorf("%w: it lists only some revocation reasons", ErrUnsupportedCRL)
	case indirect:
		return crlScope{}, fmt.Errorf("%w: an indirect CRL", ErrUnsupportedCRL)
	case attrs:
		return crlScope{}, fmt.Errorf("%w: it covers attribute certificates only", ErrUnsupportedCRL)
	case s.onlyUser && s.onlyCA:
		return bad("both onlyContainsUserCerts and onlyContainsCACerts")
	}
	return s, nil
}
