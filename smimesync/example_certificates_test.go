package smimesync_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// An audit tool lists every certificate a user carries, both attributes,
// blobs unwrapped, without running the policy or touching a sink.
func ExampleCertificates() {
	now := time.Now()
	blob, err := os.ReadFile(filepath.Join("testdata", "rfc9216", "cms-der", "signedByAliceRSA.p7m"))
	if err != nil {
		fmt.Println(err)
		return
	}
	e := &directory.Entry{
		Mail: "alice@example.com",
		UserCertificate: [][]byte{
			exampleCert("alice@example.com", now.Add(-time.Hour), now.Add(365*24*time.Hour)),
			[]byte("not a certificate"),
		},
		UserSMIMECertificate: [][]byte{blob},
	}
	for ref, err := range smimesync.Certificates(e) {
		if err != nil {
			fmt.Printf("%s[%d]: unreadable\n", ref.Attribute, ref.Index)
			continue
		}
		c := ref.Certificate
		fmt.Printf("%s[%d]: subject %s, issuer %s, CA %v\n", ref.Attribute, ref.Index, c.Subject(), c.Issuer(), c.IsCA)
	}
	// Output:
	// userCertificate[0]: subject CN=alice@example.com, issuer CN=alice@example.com, CA false
	// userCertificate[1]: unreadable
	// userSMIMECertificate[0]: subject CN=Alice Lovelace,OU=LAMPS WG,O=IETF, issuer CN=Sample LAMPS RSA Certification Authority,OU=LAMPS WG,O=IETF, CA false
}
