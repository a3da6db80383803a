// Package demo makes the directory and tenant of `smimesync demo` at run
// time with Go's crypto: a small LDIF directory whose users each show one
// case of the policy (good, expired, wrong usage, wrong address, too many
// certificates, a BER blob, a signing-only certificate, …), the file
// sink's tenant as it is before the first sync, and a configuration that
// syncs one to the other.
package demo

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/ber"
	"github.com/smimesync/go-smimesync/internal/cmssign"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// The files Write makes in its folder.
const (
	LDIFFile   = "users.ldif"     // the directory
	TenantFile = "published.json" // the tenant (the file sink)
	ConfigFile = "smimesync.yaml" // Config
)

// Config is the demo's configuration: the LDIF source, the file sink, a
// state file, all relative to the folder Write fills.
const Config = `source: {ldif: {path: users.ldif}}
sink:   {file: {path: published.json}}
policy: {max_values: 15}
state:  {path: state.json}
guard:  {max_removals: 500}
`

// Directory is the demo's directory.
type Directory struct {
	// Entries are the users, in order.
	Entries []*directory.Entry
	// Stories say, one line per user, what the user shows.
	Stories []string
	seed    func(path string) error
}

// WriteTenant writes the tenant as it is before the first sync to path, in
// the file sink's format: one recipient synced from on premises (read-only
// here), one carrying a certificate that is no longer in the directory.
func (d *Directory) WriteTenant(path string) error { return d.seed(path) }

// Write makes the demo in dir (which must exist): LDIFFile, TenantFile and
// ConfigFile.
func Write(dir string, now time.Time) (*Directory, error) {
	d, err := New(now)
	if err != nil {
		return nil, fmt.Errorf("demo: making certificates: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, LDIFFile))
	if err != nil {
		return nil, err
	}
	if err := directory.WriteLDIF(f, d.Entries...); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := d.WriteTenant(filepath.Join(dir, TenantFile)); err != nil {
		return nil, fmt.Errorf("demo: seeding the tenant: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(Config), 0o600); err != nil {
		return nil, err
	}
	return d, nil
}

// New makes the demo's users on the clock reading now: an issuing CA and
// certificates valid, expired, future, for the wrong use or address, too
// many, damaged, BER-encoded, and a user each for the file sink's
// read-only and stale-certificate cases.
func New(now time.Time) (*Directory, error) {
	ca, err := newDemoCA("Example Corp Issuing CA", now)
	if err != nil {
		return nil, err
	}
	const domain = "example.com"
	addr := func(u string) string { return u + "@" + domain }
	year := 365 * 24 * time.Hour
	good := func(u string) ([]byte, *demoKey, error) {
		return ca.issue(demoCert{email: addr(u), notBefore: now.Add(-30 * 24 * time.Hour), notAfter: now.Add(year), usage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment})
	}
	var entries []*directory.Entry
	var stories []string
	add := func(u, story string, e *directory.Entry) {
		stories = append(stories, fmt.Sprintf("%-8s %s", u, story))
		e.ID = demoGUID(len(entries))
		e.DN = "CN=" + u + ",OU=Staff,DC=example,DC=com"
		if e.Mail == "" && u != "peggy" {
			e.Mail = addr(u)
		}
		e.UserPrincipalName = addr(u)
		entries = append(entries, e)
	}
	var firstErr error
	must := func(b []byte, _ *demoKey, err error) []byte {
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return b
	}
	var result []*directory.Entry
	var seed func(path string) error
	err = func() error {
		add("alice", "one good certificate", &directory.Entry{UserCertificate: [][]byte{must(good("alice"))}})
		add("bob", "renewed; the old one expired last month", &directory.Entry{UserCertificate: [][]byte{
			must(ca.issue(demoCert{email: addr("bob"), notBefore: now.Add(-2 * year), notAfter: now.Add(-30 * 24 * time.Hour), usage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment})),
			must(good("bob")),
		}})
		add("carol", "a TLS client certificate, not for mail", &directory.Entry{UserCertificate: [][]byte{
			must(ca.issue(demoCert{email: addr("carol"), notBefore: now.Add(-time.Hour), notAfter: now.Add(year), usage: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})),
		}})
		add("dave", "someone else's certificate pasted onto his account", &directory.Entry{UserCertificate: [][]byte{must(good("erin"))}})
		var many [][]byte
		for i := range 20 {
			many = append(many, must(ca.issue(demoCert{email: addr("erin"), notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Duration(i+1) * 30 * 24 * time.Hour), usage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment})))
		}
		add("erin", "20 certificates; only 15 fit", &directory.Entry{UserCertificate: many})
		fcert, fkey, err := good("frank")
		if err != nil {
			return err
		}
		blob, err := signedBlob(fcert, fkey, ca.DER, now, true)
		if err != nil {
			return err
		}
		add("frank", "Outlook published a BER (indefinite-length) signed blob", &directory.Entry{UserSMIMECertificate: [][]byte{blob}})
		add("grace", "a signing-only certificate (kept: Outlook publishes these too)", &directory.Entry{UserCertificate: [][]byte{
			must(ca.issue(demoCert{email: addr("grace"), notBefore: now.Add(-time.Hour), notAfter: now.Add(year), usage: x509.KeyUsageDigitalSignature})),
		}})
		add("heidi", "issued for next month", &directory.Entry{UserCertificate: [][]byte{
			must(ca.issue(demoCert{email: addr("heidi"), notBefore: now.Add(30 * 24 * time.Hour), notAfter: now.Add(year), usage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment})),
		}})
		ivanCert := must(good("ivan"))
		add("ivan", "a damaged value and Outlook's security-settings blob", &directory.Entry{
			UserCertificate:      [][]byte{ivanCert, ivanCert[:len(ivanCert)/2]},
			UserSMIMECertificate: [][]byte{{0x01, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00}},
		})
		judy := must(ca.issue(demoCert{email: addr("judy"), notBefore: now.Add(-time.Hour), notAfter: now.Add(year), usage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement, ec: true}))
		add("judy", "an EC certificate, stored twice", &directory.Entry{UserCertificate: [][]byte{judy, judy}})
		add("mallory", "synced from on premises by Microsoft's tool: read-only here", &directory.Entry{UserCertificate: [][]byte{must(good("mallory"))}})
		add("oscar", "his certificate was removed from the directory; the tenant still carries it", &directory.Entry{})
		add("peggy", "no mailbox at all", &directory.Entry{UserCertificate: [][]byte{must(good("peggy"))}})
		add("trent", "an alias address in proxyAddresses, and a certificate for it", &directory.Entry{
			ProxyAddresses:  []string{"SMTP:" + addr("trent"), "smtp:security@" + domain},
			UserCertificate: [][]byte{must(ca.issue(demoCert{email: "security@" + domain, notBefore: now.Add(-time.Hour), notAfter: now.Add(year), usage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}))},
		})

		oscarOld := must(good("oscar"))
		seed = func(path string) error {
			// The file sink's documented format (see cloud.FileSink).
			doc := map[string]map[string]*cloud.FileRecipient{"recipients": {
				addr("mallory"): {ReadOnly: "directory-synced: only Entra Connect may change it"},
				addr("oscar"):   {UserCertificate: [][]byte{oscarOld}},
			}}
			b, err := json.MarshalIndent(doc, "", "  ")
			if err != nil {
				return err
			}
			return os.WriteFile(path, b, 0o600)
		}
		result = entries
		return firstErr
	}()
	if err != nil {
		return nil, err
	}
	return &Directory{Entries: result, Stories: stories, seed: seed}, nil
}

// demoGUID makes a fixed, readable objectGUID string per user.
func demoGUID(i int) string {
	return fmt.Sprintf("5e1f0c2a-7d3b-4c8e-9a61-%012x", i+1)
}

type demoKey struct {
	signer crypto.Signer
}

type demoCA struct {
	*testpki.CA
	serial int64
}

type demoCert struct {
	email               string
	notBefore, notAfter time.Time
	usage               x509.KeyUsage
	eku                 []x509.ExtKeyUsage
	ec                  bool
}

// newDemoCA makes the demo's issuing CA on the demo's clock, through the
// module's test PKI (internal/testpki).
func newDemoCA(name string, now time.Time) (*demoCA, error) {
	ca, err := testpki.New(name, testpki.Clock(func() time.Time { return now }), testpki.SerialNumber(1),
		testpki.Subject(pkix.Name{CommonName: name, Organization: []string{"Example Corp"}}),
		testpki.Validity(now.Add(-5*365*24*time.Hour), now.Add(10*365*24*time.Hour)))
	if err != nil {
		return nil, err
	}
	return &demoCA{CA: ca, serial: 1000}, nil
}

// issue makes an end-entity certificate for d; RSA-2048 unless d.ec.
func (ca *demoCA) issue(d demoCert) ([]byte, *demoKey, error) {
	kt := testpki.RSA
	if d.ec {
		kt = testpki.ECDSA
	}
	eku := d.eku
	if eku == nil {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	}
	ca.serial++
	c, err := ca.Issue(testpki.FreshKey(kt), testpki.SerialNumber(ca.serial),
		testpki.Subject(pkix.Name{CommonName: d.email, Organization: []string{"Example Corp"}}),
		testpki.Email(d.email), testpki.Validity(d.notBefore, d.notAfter),
		testpki.KeyUsage(d.usage), testpki.ExtKeyUsage(eku...), testpki.BasicConstraints(false))
	if err != nil {
		return nil, nil, err
	}
	return c.DER, &demoKey{signer: c.Key}, nil
}

// signedBlob makes a userSMIMECertificate value as Outlook does: a CMS
// SignedData signed with the user's key, carrying the user's certificate and
// the issuing CA's, signed at signedAt (the demo's clock: pkcs7's builder
// would stamp time.Now()). indefinite re-encodes its outer layers with
// indefinite lengths, as NSS and Outlook often do.
func signedBlob(certDER []byte, key *demoKey, caDER []byte, signedAt time.Time, indefinite bool) ([]byte, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	der, err := cmssign.Sign([]byte("S/MIME capabilities published by the demo"), cert, key.signer, []*x509.Certificate{ca}, signedAt)
	if err != nil {
		return nil, err
	}
	if !indefinite {
		return der, nil
	}
	return ber.Indefinite(der, 3)
}
