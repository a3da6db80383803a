package inspect_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/inspect"
)

// A program shows what certificate files hold, and the policy's verdict,
// as `smimesync inspect` does.
func ExampleReadFiles() {
	pol := &smimesync.Policy{Now: func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }}
	doc, err := inspect.ReadFiles(context.Background(), pol, []string{"../testdata/rfc9216/certs/lamps-alice.crt"})
	if err != nil {
		fmt.Println(err)
	}
	if err := doc.WriteText(os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// == ../testdata/rfc9216/certs/lamps-alice.crt (certificate)
	// - sha256      61237c070284dcef14ebb5a05b0e8950d427ee46041cdb4891468330c13475a6
	//   subject     CN=Alice Lovelace,OU=LAMPS WG,O=IETF
	//   issuer      CN=Sample LAMPS RSA Certification Authority,OU=LAMPS WG,O=IETF
	//   emails      alice@smime.example
	//   not_before  2019-11-20T06:54:18Z
	//   not_after   2052-09-27T06:54:18Z
	//   key         RSA 2048
	//   can_encrypt false
	//   can_sign    true
	//   verdict     keep
	//   reasons
}
