package smimesync

import (
	"context"
	"fmt"
	"sync"
)

// waiting holds, until a plan's read ends, the rows of the entries taken
// on trust as having no recipient (Memoized, SkipNoRecipient). Such a row
// names no recipient, since the sink was not asked, so conflicts cannot
// see it: if a newcomer of the same pass found the recipient the waiting
// entry would find too, the newcomer would be written alone, while both
// claim it. So a pass in which the sink found any recipient for a row it
// asked about (the only way a newcomer comes in) asks the sink again about
// every waiting entry before conflicts are looked for, as a pass without
// memos would; a pass in which it found none (an unchanged pass) keeps the
// waiting rows as they are. For a sink that preloads an index of its
// tenant the index is then loaded anyway; a sink that looks each entry up
// (per_entry) makes one lookup per waiting entry in such passes.
//
// The rows hold the state's copy of their entries (Snapshot.Pending), so
// that waiting costs a few hundred bytes a row.
type waiting struct {
	mu    sync.Mutex
	rows  []*Change
	keys  map[string]bool
	asked bool // a row of the pass found a recipient by asking the sink
}

// route adds c to rows, or holds it when it waits for a recipient on
// trust; it notes whether c's recipient was found by asking the sink.
func (w *waiting) route(rows *rowSet, c *Change) error {
	switch {
	case c.Memoized && c.Action == ActionSkip && c.Reason == SkipNoRecipient:
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.keys == nil {
			w.keys = map[string]bool{}
		}
		w.rows = append(w.rows, c)
		w.keys[stateKey(c.Source, c.ID)] = true
		return nil
	case !c.Memoized && c.Recipient != nil:
		w.mu.Lock()
		w.asked = true
		w.mu.Unlock()
	}
	return rows.add(c)
}

// has reports whether the entry of key waits.
func (w *waiting) has(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keys[key]
}

// settle adds the waiting rows to rows: as they are, or, when the sink
// found a recipient for another row of the pass, judged and looked up
// again (their memos are then replaced or dropped by Apply).
func (s *Syncer) settle(ctx context.Context, pol *Policy, st *Snapshot, mp *memoPass, sp *spill, w *waiting, rows *rowSet) error {
	if w.asked && len(w.rows) > 0 {
		// Judged again as the read judges: the Syncer's concurrency at
		// once (a sink that looks each entry up makes a request each).
		next := make(chan int)
		var wg sync.WaitGroup
		for range min(s.concurrency(), len(w.rows)) {
			wg.Go(func() {
				for i := range next {
					c := w.rows[i]
					again := s.judge(ctx, pol, st, c.entry, mp, sp, entryHash(c.entry), true)
					again.Retried = c.Retried
					w.rows[i] = again
				}
			})
		}
		for i := range w.rows {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	for i, c := range w.rows {
		if c.runWide != nil {
			return fmt.Errorf("smimesync: %w", c.runWide)
		}
		if err := rows.add(c); err != nil {
			return fmt.Errorf("smimesync: %w", err)
		}
		w.rows[i] = nil
	}
	w.rows, w.keys = nil, nil
	return nil
}
