package smimesync_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/smimesync/go-smimesync/internal/testrows"

	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
)

// A plan's rows come sorted by user, then ID, whatever order the directory
// returned the entries in and the workers judged them, so that two plans
// can be diffed.
func TestPlanRowsSortedByUserThenID(t *testing.T) {
	ca := newTestCA(t, "Order CA")
	var entries []*directory.Entry
	// IDs run opposite to the users' names; two entries share a user.
	for i := range 30 {
		name := fmt.Sprintf("user%02d", i)
		e := user(90-i, name, ca.issue(t, leaf{email: name + "@example.com"}))
		entries = append(entries, e)
	}
	twin := user(95, "user07")
	entries = append(entries, twin)
	src := writeLDIF(t, entries...)
	s := newSyncer(src, cloudtest.NewMemorySink(), nil)
	s.Concurrency = 8

	var rows [2][]string
	for i := range rows {
		p, err := s.Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range testrows.Of(t, p) {
			rows[i] = append(rows[i], c.User+" "+c.ID)
		}
		if !slices.IsSorted(rows[i]) {
			t.Errorf("plan %d rows are not sorted by user, then ID:\n%v", i+1, rows[i])
		}
	}
	if !slices.Equal(rows[0], rows[1]) {
		t.Errorf("two plans of the same directory differ in order:\n%v\n%v", rows[0], rows[1])
	}
}
