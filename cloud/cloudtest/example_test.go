package cloudtest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
)

func ExampleMemorySink() {
	ctx := context.Background()
	sink := cloudtest.NewMemorySink()
	sink.SetReadOnly("bob@example.org", "directory-synced")
	sink.FailWrites("alice@example.com", 1, errors.New("throttled"))

	for _, e := range []*directory.Entry{{Mail: "alice@example.com"}, {Mail: "bob@example.org"}} {
		r, err := sink.Find(ctx, e)
		if err != nil {
			fmt.Println(err)
			continue
		}
		c := cloud.Certificates{UserCertificate: [][]byte{{0x30}}}
		for attempt := 1; attempt <= 2; attempt++ {
			err := sink.Write(ctx, r, c)
			fmt.Printf("%s attempt %d: %v\n", r.ID, attempt, err)
			if err == nil || errors.Is(err, cloud.ErrNotWritable) {
				break
			}
		}
	}
	fmt.Println("alice written", sink.WriteCount("alice@example.com"), "time(s)")
	// Output:
	// alice@example.com attempt 1: throttled
	// alice@example.com attempt 2: <nil>
	// bob@example.org attempt 1: cloud: recipient bob@example.org is not writable: directory-synced
	// alice written 1 time(s)
}
