// Package testrows reads the rows of a smimesync plan or report in tests:
// a Syncer's plan keeps them in its temporary file (Plan.Rows).
package testrows

import (
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// Of returns every row of p, a *smimesync.Plan or a *smimesync.Report,
// failing the test when they cannot be read.
func Of(t testing.TB, p interface {
	CollectRows() ([]*smimesync.Change, error)
}) []*smimesync.Change {
	t.Helper()
	rows, err := p.CollectRows()
	if err != nil {
		t.Fatalf("reading the rows: %v", err)
	}
	return rows
}
