package report_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
	"github.com/smimesync/go-smimesync/smimesync/report"
)

// A program that plans shows the plan as `smimesync plan` does: one row
// per change, what happens and why, then the counts.
func ExampleWritePlan() {
	now := time.Date(2030, 1, 1, 6, 0, 0, 0, time.UTC)
	s := &smimesync.Syncer{
		Source: &directory.LDIFFile{Path: "testdata/users.ldif"},
		Sink:   &cloud.FileSink{Path: "testdata/tenant.json", Now: func() time.Time { return now }},
		Policy: &smimesync.Policy{Now: func() time.Time { return now }},
	}
	plan, err := s.Plan(context.Background()) // Plan writes nothing
	if err != nil {
		panic(err)
	}
	defer plan.Close() // only looked at
	// Only the rows that say why (a row with an empty last column ends in
	// the table's padding), in a plan made by hand.
	shown := &smimesync.Plan{Summary: plan.Summary, Full: plan.Full}
	for c, err := range plan.Rows() {
		if err != nil {
			panic(err)
		}
		if len(c.Drop) > 0 || c.Action == smimesync.ActionSkip {
			shown.Changes = append(shown.Changes, c)
		}
	}
	if err := report.WritePlan(os.Stdout, "file", shown); err != nil {
		panic(err)
	}
	// Output:
	// Plan for sink "file" (full read of the directory, 5 entries)
	//
	// USER                       ACTION     KEEP  DROP  WHY
	// bob@smime.example          unchanged  0     1     no-matching-address
	// dave@smime.example         skip       1     0     directory-synced
	// hanako.yamada@example.com  unchanged  0     1     expired
	//
	// 5 entries: 1 add, 0 replace, 0 remove, 3 unchanged, 1 skipped; 0 recipients would lose a certificate (guard limit applies)
	// 3 values kept, 2 dropped (expired 1, no-matching-address 1)
	// not writable: dave@smime.example (FileRecipient dave@smime.example): directory-synced
}

// A program that keeps a report prints its summary as `smimesync report`
// does: per sink, the counts, then the lists.
func ExampleSummary_WriteText() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state.report.json")
	store, err := report.Open(path, nil)
	if err != nil {
		panic(err)
	}
	at := time.Date(2030, 1, 1, 6, 0, 0, 0, time.UTC)
	pass := &smimesync.Report{Plan: smimesync.Plan{Full: true, Changes: []*smimesync.Change{
		{ID: "1", User: "alice@example.com", Action: smimesync.ActionUnchanged,
			Keep: []smimesync.Value{{Attribute: "userCertificate", NotAfter: at.AddDate(0, 0, 10)}}},
		{ID: "2", User: "bob@example.com", Action: smimesync.ActionUnchanged,
			Drop: []smimesync.Value{{Attribute: "userCertificate", Reasons: []smimesync.Reason{smimesync.ReasonExpired}}}},
	}}}
	if err := store.Record("file", "sync", pass, nil, at); err != nil {
		panic(err)
	}
	saved, err := report.Load(path)
	if err != nil {
		panic(err)
	}
	if err := report.Summarize(saved, "state.report.json", at, 30).WriteText(os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output:
	// smimesync report from state.report.json, as of 2030-01-01 06:00 UTC
	//
	// Sink "file": 2 users
	//   last pass                sync full, finished 2030-01-01 06:00 UTC: ok; 0 written, 0 failed, 0 not writable
	//   last good pass           2030-01-01 06:00 UTC
	//   last full pass           2030-01-01 06:00 UTC
	//   no usable certificate    1
	//   expiring within 30 days  1
	//   dropped values           1 (expired 1)
	//   not published            0
	//
	// No usable certificate (1)
	//   USER             WHY
	//   bob@example.com  all dropped: expired
	//
	// Expiring within 30 days (1)
	//   USER               EXPIRES               LEFT     ATTRIBUTE        SHA256
	//   alice@example.com  2030-01-11 06:00 UTC  10 days  userCertificate  0000000000000000
	//
	// Dropped values (1)
	//   USER             ATTRIBUTE        SHA256            WHY
	//   bob@example.com  userCertificate  0000000000000000  expired
}
