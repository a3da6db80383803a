package directory_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/smimesync/go-smimesync/directory"
)

func ExampleLDIFFile() {
	src := directory.LDIFFile{Path: "testdata/ad-ldifde.ldif"}
	res, err := src.Read(context.Background(), directory.Pass{}, func(e *directory.Entry) error {
		if e.Deleted {
			fmt.Println(e.ID, "deleted")
			return nil
		}
		fmt.Println(e.ID, e.Addresses(), len(e.UserCertificate), len(e.UserSMIMECertificate))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("full pass:", res.Full)
	// Output:
	// 3f2504e0-4f89-11d3-9a0c-0305e82c3301 [alice@example.com alice.example@corp.example.com] 1 1
	// 04030201-0605-0807-090a-0b0c0d0e0f10 [bob@example.org] 2 0
	// 6b1c4e2a-5d3f-4a7b-9c8d-0e1f2a3b4c5d deleted
	// full pass: true
}

func ExampleReadLDIF() {
	const in = `version: 1

# an OpenLDAP user
dn: uid=dave,ou=people,dc=example,dc=org
entryUUID: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
mail: dave@example.org
userCertificate;binary:: MIIB
`
	err := directory.ReadLDIF(context.Background(), strings.NewReader(in), func(e *directory.Entry) error {
		fmt.Printf("%s %s %s % x\n", e.ID, e.DN, e.Mail, e.UserCertificate[0])
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 uid=dave,ou=people,dc=example,dc=org dave@example.org 30 82 01
}

func ExampleReadLDIF_error() {
	const in = "dn: cn=a,dc=example\nchangetype: modify\nreplace: mail\n"
	err := directory.ReadLDIF(context.Background(), strings.NewReader(in), func(*directory.Entry) error { return nil })
	fmt.Println(err)
	// Output:
	// LDIF line 2 (dn "cn=a,dc=example"): directory: unsupported LDIF: change record (changetype: modify); only content records and add records are read
}

func ExampleWriteLDIF() {
	e := &directory.Entry{
		ID:              "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
		DN:              "CN=José Example,OU=Staff,DC=corp,DC=example,DC=com",
		Mail:            "jose@example.com",
		ProxyAddresses:  []string{"SMTP:jose@example.com"},
		UserCertificate: [][]byte{{0x30, 0x82, 0x01, 0x0a}},
	}
	if err := directory.WriteLDIF(os.Stdout, e); err != nil {
		log.Fatal(err)
	}
	// Output:
	// version: 1
	//
	// dn:: Q049Sm9zw6kgRXhhbXBsZSxPVT1TdGFmZixEQz1jb3JwLERDPWV4YW1wbGUsREM9Y29t
	// objectGUID:: 4AQlP4lP0xGaDAMF6CwzAQ==
	// mail: jose@example.com
	// proxyAddresses: SMTP:jose@example.com
	// userCertificate:: MIIBCg==
}
