package smimesync

import (
	"errors"
	"fmt"
	"strings"
)

// ErrLookupsFailed is wrapped by [Plan.LookupsFailed]'s error: the sink
// could not look some recipients up (a refused token, a sink that does
// not answer), so the plan is incomplete.
var ErrLookupsFailed = errors.New("recipient lookups failed")

// LookupsFailed returns an error wrapping [ErrLookupsFailed] when the sink
// could not look some of the plan's recipients up (changes skipped with
// SkipError), counting them and naming the first with the first line of
// its error; nil when every lookup succeeded. The plan is still whole for
// the other entries; a program that prints it should say it is incomplete
// (`smimesync plan` exits 1).
func (p *Plan) LookupsFailed() error {
	if p.Summary.Skip == 0 && p.rows != nil {
		return nil // a failed lookup is a skip: no need to read the rows
	}
	var (
		first  *Change
		failed int
		rows   int
	)
	for c, err := range p.Rows() {
		if err != nil {
			return err
		}
		rows++
		if c.Action == ActionSkip && c.Reason == SkipError {
			failed++
			if first == nil {
				first = c
			}
		}
	}
	if failed == 0 {
		return nil
	}
	line, _, _ := strings.Cut(first.Error, "\n") // the Azure SDK's errors run to many lines
	return fmt.Errorf("%d of %d %w, so the plan is incomplete (first: %s: %s)",
		failed, rows+p.unlisted.len(), ErrLookupsFailed, first.User, strings.TrimSpace(line))
}
