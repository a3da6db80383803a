package smimesync

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/smimesync/go-smimesync/cloud"
)

// MaxDeparted bounds how many records of entries that left the directory
// the state keeps (Snapshot.Departed); beyond it, a departed entry is
// shown once, logged, and forgotten.
const MaxDeparted = 10000

// fingerprints returns every fingerprint of the record, sorted.
func (p Published) fingerprints() []Fingerprint {
	out := slices.Concat(p.UserCertificate, p.UserSMIMECertificate)
	slices.SortFunc(out, compareFingerprints)
	return slices.Compact(out)
}

func compareFingerprints(a, b Fingerprint) int { return cmp.Compare(a.String(), b.String()) }

// departure is an entry that left the directory with something published.
type departure struct {
	key     string
	rec     Published
	deleted *Change // the delta's deletion, when it said so
	retried bool
}

// departures turns into rows the entries that left the directory while
// something this Syncer published stays on their recipient: a delta's
// deletions with a record, on a full read every record the read did not
// return, and (on a full read, or with RemoveDeparted on every pass) the
// records kept of earlier departures. It returns the rows to add to the
// plan's (rows, indexed): those departures, and the deletions (deleted)
// that are none. A record with no fingerprint (nothing was published) is
// no departure: a deletion stays SkipDeleted, and a full pass forgets it
// as before. The entries u only counted are read, not departed.
func (s *Syncer) departures(ctx context.Context, st *Snapshot, rows *rowSet, deleted []*Change, full bool, u *unlisted) ([]*Change, error) {
	seen := make(map[string]bool, len(deleted)) // beyond rows and u: the deletions, and the departures found
	var gone []departure
	var out []*Change
	for _, c := range deleted {
		k := stateKey(c.Source, c.ID)
		seen[k] = true
		p, ok, err := st.lookup(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("smimesync: reading the state: %w", err)
		}
		if ok && len(p.fingerprints()) > 0 {
			gone = append(gone, departure{key: k, rec: p, deleted: c})
			continue
		}
		out = append(out, c)
	}
	read := func(k string) bool {
		if seen[k] {
			return true
		}
		h := hashKey(k) // once for both
		return rows.hasHash(h) || u.hasHash(h)
	}
	add := func(k string, p Published, retried bool) {
		if !read(k) && len(p.fingerprints()) > 0 {
			seen[k] = true
			gone = append(gone, departure{key: k, rec: p, retried: retried})
		}
	}
	if full {
		// The records of entries this read returned are not even decoded.
		unread := 0
		err := st.eachPublished(ctx, read, func(k string, p Published) error {
			unread++
			add(k, p, false)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("smimesync: reading the state: %w", err)
		}
		if unread == 0 && st.part != nil {
			// Every record is of an entry the plan has (a row, or
			// unlisted): Apply's forgetUnseen finds none to forget.
			st.part.allRead = true
		}
	}
	if full || s.RemoveDeparted {
		for _, k := range slices.Sorted(maps.Keys(st.Departed)) {
			add(k, st.Departed[k], !full)
		}
	}
	if len(gone) == 0 {
		return out, nil
	}

	// A recipient that belongs to an entry still in the directory is
	// that entry's now: its own plan decides what it carries.
	owners := map[string]string{}
	for _, d := range gone {
		rid := d.rec.Recipient
		if _, ok := owners[rid]; ok {
			continue
		}
		for _, off := range rows.byRecipient(rid) {
			c, err := rows.at(off)
			if err != nil {
				return nil, fmt.Errorf("smimesync: %w", err)
			}
			if c.Recipient.ID == rid {
				owners[rid] = c.User
			}
		}
	}
	if !full || u.len() > 0 {
		// Entries that hold a departed entry's recipient in the state
		// and have no row: those this read only counted (unchanged on
		// their memo) and, on a delta, those it did not include.
		rids := map[string]bool{}
		for _, d := range gone {
			rids[d.rec.Recipient] = true
		}
		held, err := st.holders(ctx, rids)
		if err != nil {
			return nil, fmt.Errorf("smimesync: reading the state: %w", err)
		}
		for rid, keys := range held {
			i := slices.IndexFunc(keys, func(k string) bool { return u.has(k) || (!full && !read(k)) })
			if i < 0 {
				continue
			}
			p, _, err := st.published(ctx, keys[i])
			if err != nil {
				return nil, fmt.Errorf("smimesync: reading the state: %w", err)
			}
			owners[rid] = cmp.Or(p.User, strings.ReplaceAll(keys[i], "\x00", ":"))
		}
	}
	left := make([]*Change, len(gone))
	cleaning := map[string]bool{}
	var (
		wg      sync.WaitGroup
		sem     = make(chan struct{}, s.concurrency())
		mu      sync.Mutex
		runWide error
	)
	for i, d := range gone {
		c := departedChange(d)
		left[i] = c
		switch rid := d.rec.Recipient; {
		case owners[rid] != "":
			c.Detail = fmt.Sprintf("the recipient now belongs to %s; the record of what was published is forgotten", owners[rid])
			c.forget = true
		case !s.RemoveDeparted:
		case cleaning[rid]:
			// Two departures on one recipient: one write at a time, or
			// the second would put back what the first took away.
			c.Detail = "another departed entry's values are removed from this recipient first; the next pass removes these"
		default:
			cleaning[rid] = true
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				s.planDeparture(ctx, c)
				if c.runWide != nil {
					mu.Lock()
					runWide = cmp.Or(runWide, c.runWide)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if runWide != nil {
		return nil, fmt.Errorf("smimesync: %w", runWide)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := s.logger()
	for _, c := range left {
		log.Info("entry left the directory", "user", c.User, "recipient", recipientName(c.Recipient),
			"published", len(c.Published), "action", c.Action, "removes", len(c.Removes), "detail", c.Detail, "err", c.Error)
	}
	return append(out, left...), nil
}

// departedChange is the row of a departure, as it stands when nothing is
// removed (SkipDeparted).
func departedChange(d departure) *Change {
	p := d.rec
	source, id, ok := strings.Cut(d.key, "\x00")
	if !ok {
		source, id = "", d.key
	}
	c := &Change{ID: id, Source: source, Keep: []Value{}, Drop: []Value{}, Retried: d.retried,
		Action: ActionSkip, Reason: SkipDeparted, Published: p.fingerprints(),
		Recipient: &cloud.Recipient{ID: p.Recipient, Name: cmp.Or(p.Name, p.Recipient), Kind: p.Kind}}
	c.User = cmp.Or(p.User, id)
	if e := d.deleted; e != nil {
		c.User, c.DN = cmp.Or(p.User, e.User), e.DN
	}
	return c
}

// planDeparture decides what RemoveDeparted does with c's recipient: the
// values it carries now without those this Syncer published
// (ActionDepart), or nothing when none of them is left there or the
// recipient is gone (the record is then forgotten).
func (s *Syncer) planDeparture(ctx context.Context, c *Change) {
	mine := map[Fingerprint]bool{}
	for _, f := range c.Published {
		mine[f] = true
	}
	cur, err := s.Sink.Current(ctx, c.Recipient)
	switch {
	case err == nil:
		c.CurrentFrom = CurrentFromSink
		var rest cloud.Certificates
		for i, vals := range [][][]byte{cur.UserCertificate, cur.UserSMIMECertificate} {
			for _, v := range vals {
				f := Fingerprint(sha256.Sum256(v))
				switch {
				case !mine[f] && i == 0:
					rest.UserCertificate = append(rest.UserCertificate, v)
				case !mine[f]:
					rest.UserSMIMECertificate = append(rest.UserSMIMECertificate, v)
				case !slices.Contains(c.Removes, f):
					c.Removes = append(c.Removes, f)
				}
			}
		}
		if len(c.Removes) == 0 {
			c.Detail = "the recipient no longer carries what was published; the record is forgotten"
			c.forget = true
			return
		}
		slices.SortFunc(c.Removes, compareFingerprints)
		c.desired = rest
	case errors.Is(err, cloud.ErrUnreadable):
		// As for every write to such a sink: the State's record stands
		// for what the recipient carries.
		c.CurrentFrom = CurrentFromState
		c.Removes = slices.Clone(c.Published)
		c.desired = cloud.Certificates{}
	case errors.Is(err, cloud.ErrNotFound):
		c.Detail = "the recipient no longer exists; the record is forgotten"
		c.forget = true
		return
	case errors.Is(err, cloud.ErrUnavailable):
		c.runWide = err
		return
	default:
		c.Error = fmt.Sprintf("reading %s: %v", recipientName(c.Recipient), err)
		return
	}
	c.Action, c.Reason = ActionDepart, ""
}
