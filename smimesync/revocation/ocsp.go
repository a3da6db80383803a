package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/smimesync/go-smimesync/smimesync"
)

// maxGETRequest is the longest encoded OCSP request sent with GET; longer
// ones are POSTed (RFC 5019 section 5).
const maxGETRequest = 255

// askOCSP asks the responder at url about cert.
func (c *Checker) askOCSP(ctx context.Context, url string, cert, issuer *x509.Certificate) (Answer, error) {
	failKey := "o" + url
	if err := c.failed(failKey); err != nil {
		return Answer{}, err
	}
	// SHA-1 CertIDs are what RFC 5019 responders index by.
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return Answer{}, fmt.Errorf("building the OCSP request: %w", err)
	}
	c.log.DebugContext(ctx, "revocation: asking OCSP responder", "url", url, "certificate", fingerprint(cert))
	body, err := c.postOrGet(ctx, url, req)
	if err != nil {
		if !isBudget(err) {
			c.remember(failKey, err)
		}
		return Answer{}, err
	}
	resp, err := c.verifyOCSP(body, cert, issuer)
	if err != nil {
		return Answer{}, err
	}
	a := Answer{Method: OCSP, URL: url, ThisUpdate: resp.ThisUpdate, NextUpdate: resp.NextUpdate}
	switch resp.Status {
	case ocsp.Good:
		a.Status = smimesync.RevocationGood
	case ocsp.Revoked:
		a.Status = smimesync.RevocationRevoked
		a.RevokedAt = resp.RevokedAt
		a.Reason = resp.RevocationReason
	default:
		return Answer{}, ErrStatusUnknown
	}
	return a, nil
}

// postOrGet sends the DER request req to the responder at url: with GET
// when its encoding is short enough (RFC 6960 appendix A.1, RFC 5019), so
// that caches along the way can serve it, with POST otherwise.
func (c *Checker) postOrGet(ctx context.Context, url string, req []byte) ([]byte, error) {
	limit := c.MaxOCSPSize
	if limit <= 0 {
		limit = DefaultMaxOCSPSize
	}
	const accept = "application/ocsp-response"
	enc := ocspGETEscaper.Replace(base64.StdEncoding.EncodeToString(req))
	if len(enc) <= maxGETRequest && !strings.Contains(url, "?") {
		return c.fetch(ctx, strings.TrimSuffix(url, "/")+"/"+enc, nil, "", accept, limit)
	}
	return c.fetch(ctx, url, req, "application/ocsp-request", accept, limit)
}

// ocspGETEscaper URL-encodes the base64 characters that are not safe in a
// path segment.
var ocspGETEscaper = strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D")

// verifyOCSP parses an OCSP response and checks that it is about cert, is
// signed by issuer or a responder issuer delegated, and is fresh.
func (c *Checker) verifyOCSP(body []byte, cert, issuer *x509.Certificate) (*ocsp.Response, error) {
	// With a nil issuer, ParseResponseForCert parses, picks the response
	// for cert's serial and checks the signature against an embedded
	// responder certificate, if any; who may sign is checked below.
	resp, err := ocsp.ParseResponseForCert(body, cert, nil)
	if err != nil {
		var re ocsp.ResponseError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := matchCertID(body, cert, issuer); err != nil {
		return nil, err
	}
	if err := c.checkOCSPSigner(resp, issuer); err != nil {
		return nil, err
	}
	if err := c.checkFresh(resp.ThisUpdate, resp.NextUpdate); err != nil {
		return nil, err
	}
	return resp, nil
}

// checkOCSPSigner checks that resp was signed by issuer itself, or by a
// responder certificate that issuer issued for OCSP signing and that is
// valid now (RFC 6960 section 4.2.2.2).
func (c *Checker) checkOCSPSigner(resp *ocsp.Response, issuer *x509.Certificate) error {
	rc := resp.Certificate
	if rc == nil {
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return nil
	}
	// x/crypto has verified the response against rc's key.
	if bytes.Equal(rc.RawSubjectPublicKeyInfo, issuer.RawSubjectPublicKeyInfo) {
		return nil
	}
	if !bytes.Equal(rc.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("%w: responder certificate %q was issued by %q, not by the certificate's issuer %q",
			ErrBadSignature, rc.Subject, rc.Issuer, issuer.Subject)
	}
	if err := issuer.CheckSignature(rc.SignatureAlgorithm, rc.RawTBSCertificate, rc.Signature); err != nil {
		return fmt.Errorf("%w: responder certificate %q is not signed by the issuer: %w", ErrBadSignature, rc.Subject, err)
	}
	if !slices.Contains(rc.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return fmt.Errorf("%w: responder certificate %q lacks the id-kp-OCSPSigning extended key usage", ErrBadSignature, rc.Subject)
	}
	now := c.now()
	if now.Add(clockSkew).Before(rc.NotBefore) || now.After(rc.NotAfter) {
		return fmt.Errorf("%w: responder certificate %q is valid from %s to %s, not now", ErrBadSignature, rc.Subject,
			rc.NotBefore.UTC().Format(time.RFC3339), rc.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// certID is an OCSP CertID (RFC 6960 section 4.1.1).
type certID struct {
	hash              asn1.ObjectIdentifier
	nameHash, keyHash []byte
	serial            *big.Int
}

var ocspHashes = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
}{
	{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, crypto.SHA1},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, crypto.SHA256},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA384},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, crypto.SHA512},
}

// matchCertID checks that the first single response about cert's serial
// number (the one x/crypto/ocsp reports) names cert's issuer, by name and
// key hash. x/crypto/ocsp matches by serial number alone, so a responder
// that serves several CAs could otherwise vouch for another CA's
// certificate with the same serial number.
func matchCertID(body []byte, cert, issuer *x509.Certificate) error {
	ids, err := parseCertIDs(body)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id.serial.Cmp(cert.SerialNumber) != 0 {
			continue
		}
		var h crypto.Hash
		for _, oh := range ocspHashes {
			if oh.oid.Equal(id.hash) {
				h = oh.hash
			}
		}
		if h == 0 || !h.Available() {
			return fmt.Errorf("%w: CertID hash algorithm %s not supported", ErrMalformed, id.hash)
		}
		key, err := publicKeyBits(issuer)
		if err != nil {
			return err
		}
		nh, kh := h.New(), h.New()
		nh.Write(issuer.RawSubject)
		kh.Write(key)
		if !bytes.Equal(nh.Sum(nil), id.nameHash) || !bytes.Equal(kh.Sum(nil), id.keyHash) {
			return fmt.Errorf("%w: the response is about serial %x of another issuer", ErrMalformed, cert.SerialNumber)
		}
		return nil
	}
	return fmt.Errorf("%w: no response for serial %x", ErrMalformed, cert.SerialNumber)
}

// parseCertIDs returns the CertIDs of the single responses of a DER
// OCSPResponse, in order:
//
//	OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED,
//	    responseBytes [0] EXPLICIT SEQUENCE { responseType OID, response OCTET STRING } OPTIONAL }
//	BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, ... }
//	ResponseData ::= SEQUENCE { version [0] EXPLICIT INTEGER DEFAULT v1,
//	    responderID CHOICE { [1] Name, [2] KeyHash }, producedAt GeneralizedTime,
//	    responses SEQUENCE OF SingleResponse, ... }
//	SingleResponse ::= SEQUENCE { certID CertID, ... }
//	CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier,
//	    issuerNameHash OCTET STRING, issuerKeyHash OCTET STRING, serialNumber INTEGER }
func parseCertIDs(der []byte) ([]certID, error) {
	bad := func(what string) error { return fmt.Errorf("%w: OCSP response: %s", ErrMalformed, what) }
	in := cryptobyte.String(der)
	var resp, wrapped, rb, basic, tbs, responses cryptobyte.String
	var status int
	var typ asn1.ObjectIdentifier
	var basicDER []byte
	if !in.ReadASN1(&resp, cbasn1.SEQUENCE) ||
		!resp.ReadASN1Enum(&status) ||
		!resp.ReadASN1(&wrapped, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!wrapped.ReadASN1(&rb, cbasn1.SEQUENCE) ||
		!rb.ReadASN1ObjectIdentifier(&typ) ||
		!rb.ReadASN1Bytes(&basicDER, cbasn1.OCTET_STRING) {
		return nil, bad("bad outer structure")
	}
	b := cryptobyte.String(basicDER)
	var responderID cryptobyte.String
	var responderTag cbasn1.Tag
	if !b.ReadASN1(&basic, cbasn1.SEQUENCE) ||
		!basic.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.ReadAnyASN1(&responderID, &responderTag) ||
		!tbs.SkipASN1(cbasn1.GeneralizedTime) ||
		!tbs.ReadASN1(&responses, cbasn1.SEQUENCE) {
		return nil, bad("bad response data")
	}
	var ids []certID
	for !responses.Empty() {
		var single, cid, alg cryptobyte.String
		id := certID{serial: new(big.Int)}
		if !responses.ReadASN1(&single, cbasn1.SEQUENCE) ||
			!single.ReadASN1(&cid, cbasn1.SEQUENCE) ||
			!cid.ReadASN1(&alg, cbasn1.SEQUENCE) ||
			!alg.ReadASN1ObjectIdentifier(&id.hash) ||
			!cid.ReadASN1Bytes(&id.nameHash, cbasn1.OCTET_STRING) ||
			!cid.ReadASN1Bytes(&id.keyHash, cbasn1.OCTET_STRING) ||
			!cid.ReadASN1Integer(id.serial) {
			return nil, bad("bad CertID")
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// publicKeyBits returns the subjectPublicKey BIT STRING of cert, which the
// OCSP issuerKeyHash covers.
func publicKeyBits(cert *x509.Certificate) ([]byte, error) {
	in := cryptobyte.String(cert.RawSubjectPublicKeyInfo)
	var spki cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&spki, cbasn1.SEQUENCE) ||
		!spki.SkipASN1(cbasn1.SEQUENCE) ||
		!spki.ReadASN1BitString(&bits) {
		return nil, fmt.Errorf("revocation: issuer %q has a malformed public key", cert.Subject)
	}
	return bits.RightAlign(), nil
}
