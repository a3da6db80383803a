package cloud_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

func ExampleFileSink() {
	dir, err := os.MkdirTemp("", "smimesync-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	sink := &cloud.FileSink{
		Path: filepath.Join(dir, "recipients.json"),
		Now:  func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) },
	}

	entry := &directory.Entry{DN: "CN=Alice,DC=corp", Mail: "Alice@Example.com"}
	r, err := sink.Find(ctx, entry)
	if err != nil {
		log.Fatal(err)
	}
	// Real values are DER certificates; these bytes keep the output short.
	err = sink.Write(ctx, r, cloud.Certificates{UserCertificate: [][]byte{{0x30, 0x03, 0x02, 0x01, 0x01}}})
	if err != nil {
		log.Fatal(err)
	}
	cur, err := sink.Current(ctx, r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.ID, cur.Len())
	b, err := os.ReadFile(sink.Path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(b))
	// Output:
	// alice@example.com 1
	// {
	//   "recipients": {
	//     "alice@example.com": {
	//       "updated": "2025-01-02T03:04:05Z",
	//       "userCertificate": [
	//         "MAMCAQE="
	//       ]
	//     }
	//   }
	// }
}
