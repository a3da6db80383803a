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
	"github.com/smimesync/go-smimesync/directory"
)

// Plan reads the source, runs the policy on every entry, looks up each
// recipient and what it carries, and returns what Apply would do. It writes
// nothing, to the sink or to the state. The source is asked for the changes
// since the saved cookie (a delta), or for everything when there is none.
// The plan's rows and the certificates its writes send wait in a
// temporary file (in os.TempDir; a disk that cannot take them fails the
// plan with [ErrSpill]), so that its memory does not grow with the
// directory: read them with [Plan.Rows]. Apply removes the file;
// [Plan.Close] a plan that is not applied.
func (s *Syncer) Plan(ctx context.Context) (*Plan, error) {
	return s.plan(ctx, false)
}

// PlanFull is Plan with the saved cookie ignored: the source reads every
// entry in scope. Applying the plan saves the new cookie as usual. A
// service runs one now and then, so that anything a delta could miss is
// caught.
func (s *Syncer) PlanFull(ctx context.Context) (*Plan, error) {
	return s.plan(ctx, true)
}

func (s *Syncer) plan(ctx context.Context, full bool) (_ *Plan, err error) {
	if s.Source == nil || s.Sink == nil {
		return nil, errors.New("smimesync: Syncer needs a Source and a Sink")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := s.policy().Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	for _, r := range s.Prune.Reasons {
		if !slices.Contains(PrunableReasons(), r) {
			return nil, fmt.Errorf("%w: %q (prunable: %v)", ErrUnsafePrune, r, PrunableReasons())
		}
	}
	log := s.logger()
	if b, ok := s.policy().Revocation.(RevocationBudgeter); ok {
		// One pass budget for every revocation check of this plan.
		ctx = b.BeginPass(ctx)
	}
	plan := &Plan{Started: s.now()}
	sp := attachSpill(plan)
	defer func() {
		if err != nil {
			_ = plan.Close()
		}
	}()
	if p, ok := s.Sink.(cloud.Preparer); ok {
		// Sign in on every pass, even one that will find nothing to do:
		// a refused secret must not pass for a quiet directory.
		if err := p.Prepare(ctx); err != nil {
			return nil, fmt.Errorf("smimesync: preparing the sink: %w", err)
		}
	}
	st, err := s.loadState(ctx)
	if err != nil {
		return nil, err
	}
	defer st.closeView()
	plan.state = st
	plan.origin = &planOrigin{Sink: identity(s.Sink), Source: identity(s.Source), StateGeneration: st.Generation}

	cookie := st.Cookie
	if full {
		cookie = nil
	}
	mp := s.beginMemo(ctx, s.policy())
	plan.unlisted, plan.rows = &unlisted{}, newRowSet(sp)
	wait := &waiting{}
	deleted, res, err := s.read(ctx, st, cookie, mp, sp, plan.rows, plan.unlisted, wait)
	if errors.Is(err, directory.ErrStaleCookie) && cookie != nil {
		log.Warn("the source refused its delta cookie; reading everything", "err", err)
		cookie = nil
		// The rows of the refused read stay in the file, unread.
		plan.unlisted, plan.rows, wait = &unlisted{}, newRowSet(sp), &waiting{}
		deleted, res, err = s.read(ctx, st, nil, mp, sp, plan.rows, plan.unlisted, wait)
	}
	if err != nil {
		return nil, err
	}
	plan.unlisted.seal()
	plan.cookie = res.Cookie
	plan.Full = res.Full || cookie == nil
	rows := plan.rows
	if !plan.Full {
		// Entries an earlier pass skipped (no recipient yet, a conflict, a
		// failed lookup) are planned again until they are published: a
		// delta will not bring them back by itself. (rows.has needs the
		// rows read so far written and indexed.)
		if err := rows.flush(); err != nil {
			return nil, fmt.Errorf("smimesync: %w", err)
		}
		rows.index()
		seen := make(map[string]bool, len(deleted))
		for _, c := range deleted {
			seen[stateKey(c.Source, c.ID)] = true
		}
		pol := s.policy()
		for _, k := range slices.Sorted(maps.Keys(st.Pending)) {
			if e := st.Pending[k]; e != nil && !seen[k] && !rows.has(k) && !plan.unlisted.has(k) && !wait.has(k) {
				c := s.planOrMemo(ctx, pol, st, e, mp, sp)
				if c.runWide != nil {
					return nil, fmt.Errorf("smimesync: %w", c.runWide)
				}
				c.Retried = true
				if err := wait.route(rows, c); err != nil {
					return nil, fmt.Errorf("smimesync: %w", err)
				}
			}
		}
	}
	if err := s.settle(ctx, s.policy(), st, mp, sp, wait, rows); err != nil {
		return nil, err
	}
	if err := rows.flush(); err != nil {
		return nil, fmt.Errorf("smimesync: %w", err)
	}
	rows.index()

	more, err := s.departures(ctx, st, rows, deleted, plan.Full, plan.unlisted)
	if err != nil {
		return nil, err
	}
	for _, c := range more {
		if err := rows.add(c); err != nil {
			return nil, fmt.Errorf("smimesync: %w", err)
		}
	}
	if err := rows.flush(); err != nil {
		return nil, fmt.Errorf("smimesync: %w", err)
	}
	rows.index()
	if err := markConflicts(ctx, rows, st, plan.Full, plan.unlisted); err != nil {
		return nil, err
	}
	plan.Summary = plan.summarize()
	plan.Finished = s.now()
	log.Info("plan", "entries", plan.Summary.Entries, "add", plan.Summary.Add, "replace", plan.Summary.Replace,
		"remove", plan.Summary.Remove, "unchanged", plan.Summary.Unchanged, "skip", plan.Summary.Skip,
		"departed", plan.Summary.Departed, "retried", plan.Summary.Retried, "memoized", plan.Summary.Memoized, "full", plan.Full, "duration", plan.Finished.Sub(plan.Started))
	return plan, nil
}

// compareChanges orders a plan's rows for people: by user, then ID, then
// source, so that two plans of the same directory can be diffed line by
// line whatever order the source and the workers produced them in.
func compareChanges(a, b *Change) int {
	return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Source, b.Source))
}

// read streams the source through the policy and the sink's lookups, with
// Concurrency workers. The entries found unchanged on their memo are only
// counted, in u; the rows of the others go to rows, but for the deletions
// (SkipDeleted), which it returns: departures decides what they are.
func (s *Syncer) read(ctx context.Context, st *Snapshot, cookie []byte, mp *memoPass, sp *spill, rows *rowSet, u *unlisted, wait *waiting) ([]*Change, directory.Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Buffered, one entry a worker: unbuffered, each entry went from
	// the source's goroutine to a worker on the same processor, the two
	// taking turns on it, and a pass over an unchanged directory (the
	// workers' part as short as the source's) used one processor of two.
	entries := make(chan *directory.Entry, s.concurrency())
	var (
		mu      sync.Mutex
		deleted []*Change
		done    int
		wg      sync.WaitGroup
	)
	var runWide error // the first failure that every other lookup would meet too
	pol := s.policy()
	for range s.concurrency() {
		wg.Go(func() {
			for e := range entries {
				c := s.planOrMemo(ctx, pol, st, e, mp, sp)
				del := c.Action == ActionSkip && c.Reason == SkipDeleted
				if c.runWide == nil {
					switch {
					case unlistable(st, c):
						u.add(c)
					case !del:
						if err := wait.route(rows, c); err != nil {
							c.runWide = err
						}
					}
				}
				mu.Lock()
				if c.runWide != nil {
					if runWide == nil {
						runWide = c.runWide
						cancel()
					}
					mu.Unlock()
					continue
				}
				if del {
					deleted = append(deleted, c)
				}
				done++
				if s.Progress != nil {
					s.Progress(Progress{Stage: StagePlan, Done: done})
				}
				mu.Unlock()
			}
		})
	}
	res, err := s.Source.Read(ctx, directory.Pass{Cookie: cookie}, func(e *directory.Entry) error {
		select {
		case entries <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(entries)
	wg.Wait()
	if runWide != nil {
		// Reported once, for the pass, not as every user's failure.
		return nil, res, fmt.Errorf("smimesync: %w", runWide)
	}
	if err != nil {
		return nil, res, fmt.Errorf("smimesync: reading the directory: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, res, err
	}
	return deleted, res, nil
}

// unlistable reports whether c, a row of an entry read, is only counted
// (see [Plan.Unlisted]): unchanged on its memo, with no departure of the
// same key on record.
func unlistable(st *Snapshot, c *Change) bool {
	if !c.Memoized || c.Action != ActionUnchanged {
		return false
	}
	_, departed := st.Departed[stateKey(c.Source, c.ID)]
	return !departed
}

// planEntry evaluates one entry and compares it with its recipient. The
// change keeps certificate bytes only where Apply needs them: the values of
// a write (in the plan's temporary file, sp), and the entry when it is to
// be pruned or planned again; a plan of a large directory would hold them
// all otherwise.
func (s *Syncer) planEntry(ctx context.Context, pol *Policy, st *Snapshot, e *directory.Entry, sp *spill) *Change {
	c := s.decide(ctx, pol, st, e)
	for _, v := range c.desired.UserCertificate {
		c.desiredFP[0] = append(c.desiredFP[0], sha256.Sum256(v))
	}
	for _, v := range c.desired.UserSMIMECertificate {
		c.desiredFP[1] = append(c.desiredFP[1], sha256.Sum256(v))
	}
	if !c.Writes() {
		c.desired = cloud.Certificates{}
	}
	if c.prune == nil && !c.pending() {
		c.entry = nil
	}
	if c.runWide == nil {
		if err := sp.keep(c); err != nil {
			c.runWide = err
		}
	}
	return c
}

// decide is planEntry's judgement.
func (s *Syncer) decide(ctx context.Context, pol *Policy, st *Snapshot, e *directory.Entry) *Change {
	log := s.logger()
	c := &Change{ID: e.ID, User: userName(e), DN: e.DN, Source: e.Source, Keep: []Value{}, Drop: []Value{}}
	if e.Deleted {
		c.Action, c.Reason = ActionSkip, SkipDeleted
		return c
	}
	now := pol.now() // before Evaluate's: no boundary slips between them
	v := pol.Evaluate(ctx, e)
	c.recheckBy = nextBoundary(v, now)
	for _, d := range v.Decisions() {
		val := valueOf(&d)
		if d.Keep {
			c.Keep = append(c.Keep, val)
			continue
		}
		c.Drop = append(c.Drop, val)
		if s.pruneReason(d.Reasons) {
			if c.prune == nil {
				c.prune = map[string][][]byte{}
			}
			c.prune[d.Attribute] = append(c.prune[d.Attribute], d.Raw)
		}
		log.Debug("drop", "user", c.User, "attribute", d.Attribute, "sha256", d.SHA256.String(), "reasons", d.Reasons)
	}
	c.desired = v.Kept()
	c.entry = e
	if c.prune != nil {
		// Never prune a value the policy keeps (the same bytes may stand
		// twice).
		kept := fingerprints(c.desired)
		for attr, vals := range c.prune {
			c.prune[attr] = slices.DeleteFunc(vals, func(v []byte) bool { _, ok := kept[sha256.Sum256(v)]; return ok })
		}
	}

	r, err := s.Sink.Find(ctx, e)
	switch {
	case errors.Is(err, cloud.ErrUnavailable):
		c.runWide = err
		return c
	case errors.Is(err, cloud.ErrNotFound):
		c.Action, c.Reason = ActionSkip, SkipNoRecipient
		return c
	case err != nil:
		c.Action, c.Reason, c.Error = ActionSkip, SkipError, err.Error()
		return c
	}
	c.Recipient = r
	if r.ReadOnly != "" {
		c.Action, c.Reason, c.Detail = ActionSkip, SkipReadOnly, r.ReadOnly
		return c
	}

	want := fingerprints(c.desired)
	var have map[Fingerprint]string
	cur, err := s.Sink.Current(ctx, r)
	switch {
	case err == nil:
		c.CurrentFrom = CurrentFromSink
		have = fingerprints(cur)
	case errors.Is(err, cloud.ErrUnreadable):
		p, ok, err := st.lookup(ctx, stateKey(e.Source, e.ID))
		if err != nil {
			c.runWide = fmt.Errorf("reading the state: %w", err)
			return c
		}
		if ok && p.Recipient == r.ID {
			c.CurrentFrom = CurrentFromState
			have = map[Fingerprint]string{}
			for _, f := range p.UserCertificate {
				have[f] = cloud.AttrUserCertificate
			}
			for _, f := range p.UserSMIMECertificate {
				have[f] = cloud.AttrUserSMIMECertificate
			}
		} else {
			c.CurrentFrom = CurrentUnknown
		}
	case errors.Is(err, cloud.ErrUnavailable):
		c.runWide = err
		return c
	default:
		c.Action, c.Reason, c.Error = ActionSkip, SkipError, err.Error()
		return c
	}

	switch {
	case have == nil && len(want) == 0:
		c.Action, c.Reason = ActionSkip, SkipCurrentUnknown
	case have == nil:
		c.Action = ActionReplace
	case maps.Equal(have, want): // the same fingerprints, each in the same attribute
		c.Action = ActionUnchanged
	case len(want) == 0:
		c.Action = ActionRemove
	case len(have) == 0:
		c.Action = ActionAdd
	default:
		c.Action = ActionReplace
	}
	for f := range have {
		if _, ok := want[f]; !ok {
			c.Removes = append(c.Removes, f)
		}
	}
	slices.SortFunc(c.Removes, func(a, b Fingerprint) int { return cmp.Compare(a.String(), b.String()) })
	return c
}

// pending reports whether a skipped change is to be planned again by later
// passes: it had no recipient yet, or its lookup failed. (A conflict is
// left to the next full pass, which sees both entries.)
func (c *Change) pending() bool {
	if c.Action != ActionSkip || c.entry == nil {
		return false
	}
	return c.Reason == SkipNoRecipient || c.Reason == SkipError
}

// stateKey is the key of an entry in the state: its ID, qualified by its
// source's name when there are several sources.
func stateKey(source, id string) string {
	if source == "" {
		return id
	}
	return source + "\x00" + id
}

func (s *Syncer) pruneReason(rs []Reason) bool {
	for _, r := range rs {
		if slices.Contains(s.Prune.Reasons, r) {
			return true
		}
	}
	return false
}

// markConflicts skips every change whose recipient is also the recipient
// of another entry: in this plan, an entry it read and only counted (u:
// unchanged on its memo, which its record in the state backs) or, when the
// plan is a delta, an entry of an earlier run (in the state) that this
// read did not include. An unlisted entry keeps its recipient and what it
// carries: it is the newcomer that is skipped. The rows are all written
// and indexed; those it skips are replaced in place.
func markConflicts(ctx context.Context, rows *rowSet, st *Snapshot, full bool, u *unlisted) error {
	owners := map[string][]int64{} // a recipient's rows, when it has several or is held elsewhere
	read := map[int64]*Change{}
	err := rows.sharedRecipients(func(offs []int64) error {
		byID := map[string][]int64{}
		for _, off := range offs {
			c, err := rows.at(off)
			if err != nil {
				return err
			}
			read[off] = c
			byID[c.Recipient.ID] = append(byID[c.Recipient.ID], off)
		}
		for rid, o := range byID {
			if len(o) > 1 {
				owners[rid] = o
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("smimesync: %w", err)
	}
	earlier := map[string]string{}
	if !full || u.len() > 0 {
		other := func(k string) bool { return !rows.has(k) && (!full || u.has(k)) }
		batch := map[string]bool{}
		ask := func() error {
			held, err := st.holders(ctx, batch)
			if err != nil {
				return fmt.Errorf("smimesync: reading the state: %w", err)
			}
			for rid, keys := range held {
				if i := slices.IndexFunc(keys, other); i >= 0 {
					earlier[rid] = strings.ReplaceAll(keys[i], "\x00", ":")
				}
			}
			clear(batch)
			return nil
		}
		for c, err := range rows.all() {
			if err != nil {
				return fmt.Errorf("smimesync: %w", err)
			}
			if c.Recipient != nil && !c.Departed() {
				batch[c.Recipient.ID] = true
			}
			if len(batch) >= 4096 {
				if err := ask(); err != nil {
					return err
				}
			}
		}
		if len(batch) > 0 {
			if err := ask(); err != nil {
				return err
			}
		}
	}
	for rid := range earlier {
		if _, ok := owners[rid]; ok {
			continue
		}
		for _, off := range rows.byRecipient(rid) {
			c, err := rows.at(off)
			if err != nil {
				return fmt.Errorf("smimesync: %w", err)
			}
			if c.Recipient.ID == rid {
				read[off] = c
				owners[rid] = append(owners[rid], off)
			}
		}
	}
	for rid, offs := range owners {
		prev, held := earlier[rid]
		for _, off := range offs {
			c := read[off]
			var others []string
			for _, o := range offs {
				if o != off {
					oc := read[o]
					others = append(others, cmp.Or(oc.Source, "?")+":"+oc.ID)
				}
			}
			if held {
				others = append(others, prev)
			}
			slices.Sort(others)
			m := *c
			m.Action, m.Reason = ActionSkip, SkipConflict
			m.Error = fmt.Sprintf("recipient %s is also the recipient of %s", recipientName(c.Recipient), strings.Join(others, ", "))
			m.Removes = nil
			rows.replace(off, c, &m)
		}
	}
	return nil
}

// valueOf is a decision as a plan shows it: the fingerprint, the verdict,
// and the certificate's names, serial and expiry.
func valueOf(d *Decision) Value {
	v := Value{SHA256: d.SHA256, Attribute: d.Attribute, Reasons: d.Reasons, Notes: d.Notes}
	c := d.Certificate
	if c == nil && d.Blob != nil {
		for _, bc := range d.Blob.Certificates {
			if !bc.IsCA {
				c = bc
				break
			}
		}
	}
	if c != nil {
		v.Subject, v.Issuer, v.NotAfter = c.Subject(), c.Issuer(), c.NotAfter
		if c.Serial != nil {
			v.Serial = formatSerial(c.Serial)
		}
	}
	return v
}
