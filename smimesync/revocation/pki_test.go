package revocation

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/smimesync/go-smimesync/internal/testclock"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// testClock is a settable clock shared by the test PKI and the Checker.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// keyPair is a certificate and its key.
type keyPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// issuer returns kp as a CA of the test PKI (internal/testpki).
func (kp *keyPair) issuer() *testpki.CA { return &testpki.CA{Cert: kp.cert, Key: kp.key} }

// fixedKey derives a P-256 key from name, so that the test PKI's
// authorities are the same in every process: fuzz inputs signed in one
// worker verify in another.
func fixedKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	k, err := testpki.DeterministicKey(testpki.ECDSA, sha256.Sum256([]byte("smimesync revocation test key: "+name)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serialMu sync.Mutex
var lastSerial int64 = 0x5000

func nextSerial() *big.Int {
	serialMu.Lock()
	defer serialMu.Unlock()
	lastSerial++
	return big.NewInt(lastSerial)
}

// newCA makes a self-signed CA for key, valid from a day before now for
// ten years.
func newCA(t testing.TB, name string, key crypto.Signer, now time.Time) *keyPair {
	t.Helper()
	ca := testpki.MustNew(t, name, testpki.Key(key), testpki.Serial(nextSerial()),
		testpki.Validity(now.Add(-24*time.Hour), now.Add(10*365*24*time.Hour)))
	return &keyPair{ca.Cert, ca.Key}
}

// testPKI is a CA with an OCSP responder and a CRL server on loopback. URL
// paths pick how they misbehave: /ocsp/<mode>/… and /crl/<mode>.crl (see
// serveOCSP and serveCRL).
type testPKI struct {
	t     testing.TB
	clock *testClock
	ttl   time.Duration // NextUpdate - now of the answers served

	ca         *keyPair
	otherCA    *keyPair // another name, another key
	sameNameCA *keyPair // ca's name, another key
	renamed    *keyPair // ca's key, another name
	delegated  *keyPair // OCSP responder issued by ca, id-kp-OCSPSigning
	noEKU      *keyPair // issued by ca without id-kp-OCSPSigning
	rogue      *keyPair // self-signed, id-kp-OCSPSigning
	expired    *keyPair // issued by ca, id-kp-OCSPSigning, expired

	srv     *httptest.Server
	deadURL string // nothing listens there

	mu       sync.Mutex
	revoked  map[string]int // serial → reason
	unknown  map[string]bool
	hits     map[string]int // "ocsp/<mode>" or "crl/<mode>" → requests
	methods  map[string]int // HTTP method → OCSP requests
	arrived  chan struct{}  // receives once per request to a blocking mode
	gate     chan struct{}  // closed to let "slow" requests through
	release  chan struct{}  // closed at cleanup: "hang" requests end
	fuzzBody []byte
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	// The settable clock starts at the test clock (internal/testclock);
	// the Checkers under test read p.clock, so no test depends on the
	// date. The httptest server is plain HTTP: nothing here is checked
	// against the real clock.
	now := testclock.Now().UTC().Truncate(time.Second)
	p := &testPKI{
		t:       t,
		clock:   &testClock{t: now},
		ttl:     time.Hour,
		revoked: map[string]int{},
		unknown: map[string]bool{},
		hits:    map[string]int{},
		methods: map[string]int{},
		arrived: make(chan struct{}, 100),
		gate:    make(chan struct{}),
		release: make(chan struct{}),
	}
	p.ca = newCA(t, "Test Issuing CA", fixedKey(t, "ca"), now)
	p.otherCA = newCA(t, "Other CA", fixedKey(t, "other"), now)
	p.sameNameCA = newCA(t, "Test Issuing CA", fixedKey(t, "same name"), now)
	renamed := testpki.MustNew(t, "Renamed CA", testpki.Key(p.ca.key), testpki.Serial(nextSerial()),
		testpki.Validity(now.Add(-24*time.Hour), now.Add(24*time.Hour)))
	p.renamed = &keyPair{renamed.Cert, renamed.Key}
	// responder issues an OCSP responder's certificate by parent
	// (self-signed when nil).
	responder := func(keyName, name string, eku []x509.ExtKeyUsage, parent *keyPair, notAfter time.Time) *keyPair {
		opts := []testpki.Option{testpki.Key(fixedKey(t, keyName)), testpki.Serial(nextSerial()), testpki.CommonName(name),
			testpki.Validity(now.Add(-24*time.Hour), notAfter), testpki.KeyUsage(x509.KeyUsageDigitalSignature), testpki.ExtKeyUsage(eku...)}
		var c *testpki.Cert
		if parent == nil {
			c = testpki.MustSelfSigned(t, opts...)
		} else {
			c = parent.issuer().MustIssue(t, opts...)
		}
		return &keyPair{c.X509(), c.Key}
	}
	ocspEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	p.delegated = responder("delegated", "Test OCSP Responder", ocspEKU, p.ca, now.Add(30*24*time.Hour))
	p.noEKU = responder("no EKU", "Test Not A Responder", []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, p.ca, now.Add(30*24*time.Hour))
	p.rogue = responder("rogue", "Test OCSP Responder", ocspEKU, nil, now.Add(30*24*time.Hour))
	p.expired = responder("expired", "Test Old OCSP Responder", ocspEKU, p.ca, now.Add(-time.Hour))

	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	t.Cleanup(func() { close(p.release) }) // runs first: lets "hang" handlers end

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.deadURL = "http://" + l.Addr().String() + "/dead"
	l.Close()
	return p
}

// url returns the URL of an OCSP or CRL mode; "dead" is a port nothing
// listens on and "ldap" an ldap:// URL.
func (p *testPKI) url(kind, mode string) string {
	switch mode {
	case "dead":
		return p.deadURL
	case "ldap":
		return "ldap:///CN=Test%20Issuing%20CA,CN=CDP,CN=Public%20Key%20Services?certificateRevocationList?base"
	}
	if kind == "crl" {
		return p.srv.URL + "/crl/" + mode + ".crl"
	}
	return p.srv.URL + "/ocsp/" + mode
}

// leaf issues an S/MIME certificate naming the given OCSP and CRL modes.
func (p *testPKI) leaf(ocspModes, crlModes []string) *x509.Certificate {
	p.t.Helper()
	return p.leafSerial(nil, ocspModes, crlModes)
}

// leafSerial is leaf with a given serial number (nil: the next one).
func (p *testPKI) leafSerial(serial *big.Int, ocspModes, crlModes []string) *x509.Certificate {
	p.t.Helper()
	if serial == nil {
		serial = nextSerial()
	}
	now := p.clock.Now()
	opts := []testpki.Option{testpki.Serial(serial), testpki.CommonName("Alice Example"), testpki.Email("alice@example.test"),
		testpki.Validity(now.Add(-time.Hour), now.Add(365*24*time.Hour)),
		testpki.KeyUsage(x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement)}
	for _, m := range ocspModes {
		opts = append(opts, testpki.OCSPServer(p.url("ocsp", m)))
	}
	for _, m := range crlModes {
		opts = append(opts, testpki.CRLDistributionPoints(p.url("crl", m)))
	}
	return p.ca.issuer().MustIssue(p.t, opts...).X509()
}

func (p *testPKI) revoke(cert *x509.Certificate, reason int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revoked[cert.SerialNumber.String()] = reason
}

func (p *testPKI) markUnknown(cert *x509.Certificate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unknown[cert.SerialNumber.String()] = true
}

func (p *testPKI) hitCount(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[key]
}

func (p *testPKI) methodCount(m string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.methods[m]
}

func (p *testPKI) setFuzzBody(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fuzzBody = b
}

func (p *testPKI) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
	if len(parts) < 2 {
		http.NotFound(w, r)
		return
	}
	kind, mode := parts[0], strings.TrimSuffix(parts[1], ".crl")
	p.mu.Lock()
	p.hits[kind+"/"+mode]++
	if kind == "ocsp" {
		p.methods[r.Method]++
	}
	p.mu.Unlock()
	switch mode {
	case "hang":
		p.arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-p.release:
		}
		return
	case "slow":
		p.arrived <- struct{}{}
		select {
		case <-p.gate:
		case <-p.release:
			return
		}
	case "down":
		http.Error(w, "responder is down", http.StatusServiceUnavailable)
		return
	case "fuzz":
		p.mu.Lock()
		b := p.fuzzBody
		p.mu.Unlock()
		w.Write(b)
		return
	}
	var body []byte
	switch kind {
	case "ocsp":
		body = p.ocspResponse(r, mode)
	case "crl":
		body = p.crl(mode)
	default:
		http.NotFound(w, r)
		return
	}
	if body == nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if mode == "chunked" {
		// Flushing before the end makes the answer chunked: no
		// Content-Length tells the client how long it is.
		w.Write(body[:1])
		w.(http.Flusher).Flush()
		w.Write(body[1:])
		return
	}
	w.Write(body)
}

// ocspRequest reads the request sent with GET (in the path, RFC 6960
// appendix A.1) or POST.
func (p *testPKI) ocspRequest(r *http.Request) *ocsp.Request {
	var der []byte
	if r.Method == http.MethodPost {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil
		}
		der = b
	} else {
		path := r.URL.EscapedPath()
		i := strings.LastIndex(path, "/")
		s, err := url.PathUnescape(path[i+1:])
		if err != nil {
			return nil
		}
		if der, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil
		}
	}
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		return nil
	}
	return req
}

// ocspResponse answers an OCSP request the way mode says:
//
//	direct        signed by the CA itself
//	delegated     signed by a responder the CA delegated (embedded)
//	nonext        direct, without NextUpdate
//	noeku         signed by a CA-issued certificate without id-kp-OCSPSigning
//	rogue         signed by a self-signed "responder"
//	expiredresp   signed by a delegated responder whose certificate expired
//	wrongkey      signed by a key that is not the CA's
//	stale         NextUpdate has passed
//	future        ThisUpdate lies in the future
//	otherissuer   validly signed, but about another CA's certificate
//	unauthorized  the "unauthorized" error status
//	garbage       not DER
func (p *testPKI) ocspResponse(r *http.Request, mode string) []byte {
	if mode == "unauthorized" {
		return ocsp.UnauthorizedErrorResponse
	}
	if mode == "garbage" {
		return []byte("<html>this is not an OCSP response</html>")
	}
	req := p.ocspRequest(r)
	if req == nil {
		return nil
	}
	return p.makeOCSP(req.SerialNumber, mode)
}

func (p *testPKI) makeOCSP(serial *big.Int, mode string) []byte {
	p.t.Helper()
	now := p.clock.Now()
	tmpl := ocsp.Response{
		Status:       ocsp.Good,
		SerialNumber: serial,
		ThisUpdate:   now.Add(-time.Minute),
		NextUpdate:   now.Add(p.ttl),
	}
	p.mu.Lock()
	reason, revoked := p.revoked[serial.String()]
	unknown := p.unknown[serial.String()]
	p.mu.Unlock()
	switch {
	case unknown:
		tmpl.Status = ocsp.Unknown
	case revoked:
		tmpl.Status = ocsp.Revoked
		tmpl.RevokedAt = now.Add(-30 * time.Minute).Truncate(time.Second)
		tmpl.RevocationReason = reason
	}
	issuer, signer := p.ca, p.ca
	var key crypto.Signer = p.ca.key
	switch mode {
	case "delegated":
		signer, key = p.delegated, p.delegated.key
		tmpl.Certificate = p.delegated.cert
	case "nonext":
		tmpl.NextUpdate = time.Time{}
	case "noeku":
		signer, key = p.noEKU, p.noEKU.key
		tmpl.Certificate = p.noEKU.cert
	case "rogue":
		signer, key = p.rogue, p.rogue.key
		tmpl.Certificate = p.rogue.cert
	case "expiredresp":
		signer, key = p.expired, p.expired.key
		tmpl.Certificate = p.expired.cert
	case "wrongkey":
		key = p.sameNameCA.key
	case "stale":
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(-2*time.Hour), now.Add(-time.Hour)
	case "future":
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(time.Hour), now.Add(2*time.Hour)
	case "otherissuer":
		issuer = p.otherCA
		signer, key = p.delegated, p.delegated.key
		tmpl.Certificate = p.delegated.cert
	}
	der, err := ocsp.CreateResponse(issuer.cert, signer.cert, tmpl, key)
	if err != nil {
		p.t.Errorf("CreateResponse: %v", err)
		return nil
	}
	return der
}

// oidIDP is the issuingDistributionPoint extension.
var oidIDP = asn1.ObjectIdentifier{2, 5, 29, 28}

// crl builds the CRL mode asks for:
//
//	good, chunked  signed by the CA, listing the revoked serials
//	pem            good, PEM-encoded
//	wrongkey       signed by another key under the CA's name
//	otherca        signed by another CA
//	renamed        signed with the CA's key under another name
//	stale          NextUpdate has passed
//	onlyca         limited to CA certificates (issuingDistributionPoint)
func (p *testPKI) crl(mode string) []byte {
	p.t.Helper()
	now := p.clock.Now()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(now.Unix()),
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(p.ttl),
	}
	p.mu.Lock()
	for s, reason := range p.revoked {
		n, _ := new(big.Int).SetString(s, 10)
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber:   n,
			RevocationTime: now.Add(-30 * time.Minute).Truncate(time.Second),
			ReasonCode:     reason,
		})
	}
	p.mu.Unlock()
	signer := p.ca
	switch mode {
	case "wrongkey":
		signer = p.sameNameCA
	case "otherca":
		signer = p.otherCA
	case "renamed":
		signer = p.renamed
	case "stale":
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(-2*time.Hour), now.Add(-time.Hour)
	case "onlyca":
		// SEQUENCE { [2] TRUE }
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidIDP, Critical: true, Value: []byte{0x30, 0x03, 0x82, 0x01, 0xff}}}
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, signer.cert, signer.key)
	if err != nil {
		p.t.Errorf("CreateRevocationList: %v", err)
		return nil
	}
	if mode == "pem" {
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	return der
}
