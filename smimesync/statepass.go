package smimesync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// A pass's state. With a State that is not a [RecordStore], a pass works
// on the whole Snapshot (Load at the start, Save at the end), as it always
// has. With a RecordStore, the pass's Snapshot holds only the header
// (Published stays empty) and its part reads the records through a
// StateView, with this Apply's changes laid over them; Apply saves the
// header and those changes only (RecordStore.SaveChanges).
//
// Conflicts and takeovers (markConflicts, departures) ask who else holds
// a recipient: the store answers from its recipient index (BoltState's
// bucketHolders, kept in the transactions that write the records), so a
// delta pass never needs every record in memory. A full pass goes
// through the records with a cursor (eachPublished): departures and
// forgetUnseen keep only the keys the read returned, which the plan holds
// anyway.

// partial is the record side of a pass's Snapshot over a RecordStore.
type partial struct {
	store RecordStore
	// view is open during a Plan and during an Apply; nil between them.
	view StateView
	// over is this Apply's changes: a Published whose Recipient is empty
	// removes its key.
	over map[string]Published
	// allRead is set by a full plan whose walk of the records
	// (departures) found none but those of entries the plan read: the
	// Apply of that plan (the state unchanged since, or the plan is
	// stale) has no record to forget (forgetUnseen), and does not walk
	// them again.
	allRead bool
}

// loadState is the state a Plan starts from: the whole snapshot, or, for a
// RecordStore, its header with a view open on the records (closeView
// closes it).
func (s *Syncer) loadState(ctx context.Context) (*Snapshot, error) {
	rs, ok := s.state().(RecordStore)
	if !ok {
		return s.state().Load(ctx)
	}
	return openPart(ctx, rs)
}

// openPart opens a view of rs and returns its header, reading the records
// through the view.
func openPart(ctx context.Context, rs RecordStore) (*Snapshot, error) {
	v, err := rs.View(ctx)
	if err != nil {
		return nil, err
	}
	st, err := v.Header(ctx)
	if err != nil {
		v.Close()
		return nil, err
	}
	st.part = &partial{store: rs, view: v}
	return st, nil
}

// closeView closes the view of a snapshot over a RecordStore, if one is
// open.
func (st *Snapshot) closeView() error {
	if st == nil || st.part == nil || st.part.view == nil {
		return nil
	}
	v := st.part.view
	st.part.view = nil
	return v.Close()
}

// reopen opens a view for an Apply of a plan made over a RecordStore, and
// returns the saved header, for the stale-plan check.
func (st *Snapshot) reopen(ctx context.Context, current State) (*Snapshot, error) {
	rs, ok := current.(RecordStore)
	if !ok {
		return nil, fmt.Errorf("%w: the plan was made with a state of records, and the Syncer's State is no longer one; plan again", ErrStalePlan)
	}
	cur, err := openPart(ctx, rs)
	if err != nil {
		return nil, err
	}
	st.part.store = rs
	st.part.view, cur.part = cur.part.view, nil
	return cur, nil
}

// saveState saves st at the end of an Apply: whole, or the header and this
// Apply's changes.
func (s *Syncer) saveState(ctx context.Context, st *Snapshot) error {
	if st.part == nil {
		return s.state().Save(ctx, st)
	}
	return st.part.store.SaveChanges(ctx, st, st.part.over)
}

// published returns the record of key.
func (st *Snapshot) published(ctx context.Context, key string) (Published, bool, error) {
	if st.part == nil {
		p, ok := st.Published[key]
		return p, ok, nil
	}
	if p, ok := st.part.over[key]; ok {
		return p, !p.forgets(), nil
	}
	return st.part.view.Published(ctx, key)
}

// setPublished makes p the record of key.
func (st *Snapshot) setPublished(key string, p Published) {
	if st.part == nil {
		st.Published[key] = p
		return
	}
	if st.part.over == nil {
		st.part.over = map[string]Published{}
	}
	st.part.over[key] = p
}

// deletePublished removes the record of key.
func (st *Snapshot) deletePublished(key string) {
	if st.part == nil {
		delete(st.Published, key)
		return
	}
	if st.part.over == nil {
		st.part.over = map[string]Published{}
	}
	st.part.over[key] = Published{}
}

// eachPublished calls fn for every record whose key skip (when not nil)
// does not report: in key order for a whole snapshot; over a RecordStore,
// the saved ones in key order (as this Apply changed them), then those
// this Apply added. A skipped record of a store is not decoded. fn may
// change the records (setPublished, deletePublished).
func (st *Snapshot) eachPublished(ctx context.Context, skip func(key string) bool, fn func(key string, p Published) error) error {
	skipped := func(k string) bool { return skip != nil && skip(k) }
	if st.part == nil {
		for _, k := range slices.Sorted(maps.Keys(st.Published)) {
			if skipped(k) {
				continue
			}
			if p, ok := st.Published[k]; ok {
				if err := fn(k, p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	over := maps.Clone(st.part.over)
	err := st.part.view.EachPublished(ctx, func(k string) bool {
		if skipped(k) {
			delete(over, k) // its override is skipped with it
			return true
		}
		return false
	}, func(k string, p Published) error {
		if o, ok := over[k]; ok {
			delete(over, k)
			if o.forgets() {
				return nil
			}
			p = o
		}
		return fn(k, p)
	})
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(over)) {
		if p := over[k]; !p.forgets() && !skipped(k) {
			if err := fn(k, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// lookup returns the state's record of what was published for key: the
// live one, else the one kept for an entry that left the directory.
func (st *Snapshot) lookup(ctx context.Context, key string) (Published, bool, error) {
	p, ok, err := st.published(ctx, key)
	if ok || err != nil {
		return p, ok, err
	}
	p, ok = st.Departed[key]
	return p, ok, nil
}

// holders returns, for each recipient of rids, the keys of the records
// that name it, in key order. A whole snapshot is read once; a
// RecordStore is asked once per recipient.
func (st *Snapshot) holders(ctx context.Context, rids map[string]bool) (map[string][]string, error) {
	out := map[string][]string{}
	if len(rids) == 0 {
		return out, nil
	}
	if st.part == nil {
		for k, p := range st.Published {
			if rids[p.Recipient] {
				out[p.Recipient] = append(out[p.Recipient], k)
			}
		}
		for _, keys := range out {
			slices.Sort(keys)
		}
		return out, nil
	}
	for rid := range rids {
		keys, err := st.part.view.Holders(ctx, rid)
		if err != nil {
			return nil, err
		}
		// This Apply's changes over the saved records.
		keys = slices.DeleteFunc(keys, func(k string) bool {
			o, ok := st.part.over[k]
			return ok && o.Recipient != rid
		})
		for k, o := range st.part.over {
			if o.Recipient == rid && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			slices.Sort(keys)
			out[rid] = keys
		}
	}
	return out, nil
}

// stateSHA256 is snapshotSHA256 of the whole state st stands for. Over a
// RecordStore it reads the saved records and hashes the bytes
// snapshotSHA256 would hash, without holding them all. The records it
// reads must be those the plan read: the saved header must still be of
// the plan's generation and count of writes (see Snapshot.writes), before
// the records are read and after; else the error wraps ErrStalePlan.
func (st *Snapshot) stateSHA256(ctx context.Context) (string, error) {
	if st.part == nil {
		return snapshotSHA256(st)
	}
	v, err := st.part.store.View(ctx)
	if err != nil {
		return "", err
	}
	defer v.Close()
	if err := st.sameAsSaved(ctx, v); err != nil {
		return "", err
	}
	head := *st
	head.part, head.Published = nil, map[string]Published{}
	raw, err := json.Marshal(&head)
	if err != nil {
		return "", fmt.Errorf("smimesync: fingerprinting the state: %w", err)
	}
	mark := []byte(`"published":{`)
	i := bytes.Index(raw, mark)
	if i < 0 {
		return "", errors.New("smimesync: fingerprinting the state: no published member")
	}
	i += len(mark)
	h := sha256.New()
	h.Write(raw[:i])
	first := true
	err = v.EachPublished(ctx, nil, func(k string, p Published) error {
		kb, err := json.Marshal(k)
		if err != nil {
			return err
		}
		pb, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if !first {
			h.Write([]byte{','})
		}
		first = false
		h.Write(kb)
		h.Write([]byte{':'})
		h.Write(pb)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("smimesync: fingerprinting the state: %w", err)
	}
	// A Record of this process may have come between the two reads.
	if err := st.sameAsSaved(ctx, v); err != nil {
		return "", err
	}
	h.Write(raw[i:])
	h.Write([]byte{'\n'})
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sameAsSaved returns nil when the header v reads is of st's generation
// and count of writes, else an error wrapping ErrStalePlan.
func (st *Snapshot) sameAsSaved(ctx context.Context, v StateView) error {
	cur, err := v.Header(ctx)
	if err != nil {
		return err
	}
	return st.freshAgainst(cur)
}

// freshAgainst returns nil when cur, the saved header, is of the
// generation and count of writes of st, a plan's state over a
// RecordStore; else an error wrapping ErrStalePlan.
func (st *Snapshot) freshAgainst(cur *Snapshot) error {
	if cur.Generation != st.Generation {
		return fmt.Errorf("%w: the state was saved again after this plan was made (generation %d, plan %d); plan again", ErrStalePlan, cur.Generation, st.Generation)
	}
	if cur.writes != st.writes {
		return fmt.Errorf("%w: writes were recorded in the state after this plan was made (by an apply that did not save: generation %d, writes %d, plan %d); plan again", ErrStalePlan, cur.Generation, cur.writes, st.writes)
	}
	return nil
}

// currentState is the saved state an Apply checks its plan against (and,
// for a plan read by ReadPlan, applies it to): loaded whole, or, for a
// plan made over a RecordStore, its header, with the plan's view opened
// again for the Apply (Apply closes it).
func (s *Syncer) currentState(ctx context.Context, plan *Plan) (*Snapshot, error) {
	if plan.loaded || plan.state.part == nil {
		return s.state().Load(ctx)
	}
	return plan.state.reopen(ctx, s.state())
}

// header is the saved state's header: read alone from a RecordStore, else
// the whole snapshot.
func (s *Syncer) header(ctx context.Context) (*Snapshot, error) {
	rs, ok := s.state().(RecordStore)
	if !ok {
		return s.state().Load(ctx)
	}
	v, err := rs.View(ctx)
	if err != nil {
		return nil, err
	}
	st, err := v.Header(ctx)
	if cerr := v.Close(); err == nil {
		err = cerr
	}
	return st, err
}

// readFailed notes that the record of c could not be read while Apply
// brought the state up to date: the record stays as it was saved, and
// the pass does not count as whole (the cookie stays).
func (a *applyRun) readFailed(c *Change, err error) {
	a.failed++
	a.rep.Errors = append(a.rep.Errors, fmt.Sprintf("%s: reading the state: %v", c.User, err))
	a.log.Error("cannot read the state", "user", c.User, "err", err)
}
