package smimesync_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/internal/testpki"
	"github.com/smimesync/go-smimesync/smimesync"
)

// exampleCert makes a self-signed S/MIME certificate for addr, valid from
// notBefore to notAfter, with the module's test PKI.
func exampleCert(addr string, notBefore, notAfter time.Time) []byte {
	c, err := testpki.SelfSigned(testpki.Email(addr), testpki.SerialNumber(1), testpki.Validity(notBefore, notAfter),
		testpki.KeyUsage(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement))
	if err != nil {
		log.Fatal(err)
	}
	return c.DER
}

// A Syncer composes a directory source, a cloud sink, a policy and a state:
// here an LDIF file, a JSON file of what each recipient carries, the default
// policy and a state file. Plan decides and writes nothing; Apply writes
// what changed.
func ExampleSyncer() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A directory of one user with a valid certificate and an expired one.
	now := time.Now()
	f, err := os.Create(filepath.Join(dir, "users.ldif"))
	if err != nil {
		log.Fatal(err)
	}
	err = directory.WriteLDIF(f, &directory.Entry{
		DN:   "CN=Alice,OU=Staff,DC=example,DC=com",
		Mail: "alice@example.com",
		UserCertificate: [][]byte{
			exampleCert("alice@example.com", now.Add(-time.Hour), now.Add(365*24*time.Hour)),
			exampleCert("alice@example.com", now.Add(-800*24*time.Hour), now.Add(-24*time.Hour)),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	f.Close()

	s := &smimesync.Syncer{
		Source: &directory.LDIFFile{Path: filepath.Join(dir, "users.ldif")},
		Sink:   &cloud.FileSink{Path: filepath.Join(dir, "published.json")},
		State:  smimesync.FileState(filepath.Join(dir, "state.json")),
	}
	ctx := context.Background()
	for run := 1; run <= 2; run++ {
		plan, err := s.Plan(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for c, err := range plan.Rows() {
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("run %d: %s: %s, keep %d, drop %d", run, c.User, c.Action, len(c.Keep), len(c.Drop))
			for _, d := range c.Drop {
				fmt.Printf(" (%s)", d.Reasons[0])
			}
			fmt.Println()
		}
		rep, err := s.Apply(ctx, plan)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("run %d: %d written\n", run, rep.Summary.Written)
	}
	// Output:
	// run 1: alice@example.com: add, keep 1, drop 1 (expired)
	// run 1: 1 written
	// run 2: alice@example.com: unchanged, keep 1, drop 1 (expired)
	// run 2: 0 written
}

// Evaluate tells, for every value of a directory entry, whether the policy
// keeps it and why not.
func ExamplePolicy_Evaluate() {
	now := time.Now()
	e := &directory.Entry{
		Mail: "bob@example.com",
		UserCertificate: [][]byte{
			exampleCert("bob@example.com", now.Add(-time.Hour), now.Add(24*time.Hour)),
			exampleCert("mallory@example.com", now.Add(-time.Hour), now.Add(24*time.Hour)),
			[]byte("damaged"),
		},
		// Outlook's security-settings blob, not a certificate container.
		UserSMIMECertificate: [][]byte{{0x01, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00}},
	}
	p := &smimesync.Policy{MaxValues: 15}
	for _, d := range p.Evaluate(context.Background(), e).Decisions() {
		fmt.Println(d.Attribute, d.Index, d.Keep, d.Reasons)
	}
	// Output:
	// userCertificate 0 true []
	// userCertificate 1 false [no-matching-address]
	// userCertificate 2 false [unparseable]
	// userSMIMECertificate 0 false [security-settings]
}
