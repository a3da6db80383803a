package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/ber"
	"github.com/smimesync/go-smimesync/internal/cmssign"
	"github.com/smimesync/go-smimesync/internal/testpki"
)

// cmdDemo is the embedded default: it makes a small directory at run time
// with Go's crypto (good, expired, wrong usage, wrong address, too many
// certificates, a BER blob, a signing-only certificate, …), then plans and
// syncs it from an LDIF source to a file sink in a temporary folder, and
// prints the plan and the report.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "folder for the demo's files (default: a new temporary folder, removed afterwards)")
	jsonOut := fs.Bool("json", false, "print the plan and the report as JSON")
	if err := fs.Parse(args); err != nil {
		return usagef("demo: %v", err)
	}
	if fs.NArg() > 0 {
		return usagef("demo: unexpected arguments %v", fs.Args())
	}
	keep := *dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "smimesync-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	} else if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}

	now := clock()
	entries, stories, tenant, err := demoDirectory(now)
	if err != nil {
		return fmt.Errorf("demo: making certificates: %w", err)
	}
	ldif := filepath.Join(*dir, "users.ldif")
	f, err := os.Create(ldif)
	if err != nil {
		return err
	}
	if err := directory.WriteLDIF(f, entries...); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The tenant as it is before the first sync: one recipient synced
	// from on premises (read-only here), one carrying a certificate that
	// is no longer in the directory.
	if err := tenant(filepath.Join(*dir, "published.json")); err != nil {
		return fmt.Errorf("demo: seeding the tenant: %w", err)
	}
	config := filepath.Join(*dir, "smimesync.yaml")
	if err := os.WriteFile(config, []byte(demoConfig), 0o600); err != nil {
		return err
	}

	if !*jsonOut {
		fmt.Fprintf(stdout, "smimesync demo: %d directory users made at run time in %s\n\n", len(entries), *dir)
		for _, st := range stories {
			fmt.Fprintf(stdout, "  %s\n", st)
		}
		fmt.Fprintln(stdout)
		fmt.Fprintf(stdout, "  users.ldif (the directory), published.json (the tenant), smimesync.yaml:\n\n%s\n", indent(demoConfig))
		fmt.Fprintf(stdout, "$ smimesync plan --config %s\n\n", config)
	}
	planArgs := []string{"--config", config}
	if *jsonOut {
		planArgs = append(planArgs, "--json")
	}
	if err := cmdPlan(ctx, planArgs, stdout, stderr); err != nil {
		return err
	}
	if !*jsonOut {
		fmt.Fprintf(stdout, "\n$ smimesync sync --config %s\n\n", config)
	}
	if err := cmdSync(ctx, planArgs, stdout, stderr); err != nil {
		return err
	}
	if !*jsonOut {
		fmt.Fprintf(stdout, "\n$ smimesync sync --config %s   # again: nothing left to write\n\n", config)
		if err := cmdSync(ctx, planArgs, stdout, stderr); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\n$ smimesync report --config %s\n\n", config)
		if err := cmdReport(ctx, planArgs, stdout, stderr); err != nil {
			return err
		}
		if keep {
			fmt.Fprintf(stdout, "\nThe files are in %s.\n", *dir)
		}
	}
	return nil
}

const demoConfig = `source: {ldif: {path: users.ldif}}
sink:   {file: {path: published.json}}
policy: {max_values: 15}
state:  {path: state.json}
guard:  {max_removals: 500}
`

// demoDirectory makes the demo's users and a function that seeds the
// tenant.
func demoDirectory(now time.Time) ([]*directory.Entry, []string, func(path string) error, error) {
	ca, err := newDemoCA("Example Corp Issuing CA", now)
	if err != nil {
		return nil, nil, nil, err
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
		return nil, nil, nil, err
	}
	return result, stories, seed, nil
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

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}
