package smimesync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// ErrStalePlan is wrapped by the error Apply (and [Syncer.CheckPlan])
// returns for a plan made before the state was last saved, and for a plan
// read by [ReadPlan] that was made against another state (one that has
// moved since: another Apply saved it or recorded writes), or with another
// sink or source. Plan again.
var ErrStalePlan = errors.New("smimesync: plan is older than the saved state")

// MaxPending bounds how many skipped entries the state keeps to plan again
// (see Report.CookieAdvanced); beyond it they wait for the next full pass.
const MaxPending = 10000

// ErrChangesFailed is wrapped by the error Apply returns when writes or
// lookups failed (and nothing worse happened); the report lists them.
var ErrChangesFailed = errors.New("changes failed")

// Apply writes a plan's changes to the sink, at most Concurrency at a time,
// then saves the state: what each recipient now carries, and the source's
// delta cookie if and only if every change was applied (so a failed write
// is retried by the next pass). It refuses a plan that would take
// certificates from more recipients than the Guard allows, unless
// plan.Force is set; the error then wraps ErrGuardTripped and nothing is
// written. When the State is a [Preparer] and its Prepare fails, nothing
// is written either, and the plan may be applied again once the cause is
// fixed. Otherwise a plan can be applied once.
//
// A plan read by [ReadPlan] is applied exactly as it was saved: nothing is
// planned again, and what the directory holds now does not change what is
// written. Apply refuses it (wrapping [ErrStalePlan]) unless the Syncer's
// sink and source are the ones it was made with and the state is the one
// it was made against; the guard is checked as for any plan (set Force on
// the plan read to go past it).
//
// The returned report is never nil when the plan was valid; the error
// summarises the write failures, each of which the report lists.
//
// When the State is a [Locker], Apply holds its lock while it runs (taking
// it unless [Syncer.Lock] holds it already); when another process holds
// it, Apply writes nothing and its error wraps [ErrLocked].
//
// Cancellation: when ctx ends (is cancelled or passes its deadline), Apply
// starts no more writes. The writes already in flight see their context
// end after [Syncer.WriteGrace] (at once when it is 0): a sink call that
// finishes within it counts as written and is recorded. Every write not
// attempted is reported with OutcomeFailed and the error "not attempted:
// …". The write-back (Prune), forgetting the entries a full read no longer
// has, and moving the delta cookie are skipped; the state is still saved,
// with what was written, so the next pass plans what is left. The error
// wraps ctx's error (context.Canceled or context.DeadlineExceeded). When
// every write had started before ctx ended and all finished within the
// grace, nothing was cut short: Apply completes as if ctx had not ended.
func (s *Syncer) Apply(ctx context.Context, plan *Plan) (*Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.Lock()
	if err != nil {
		if !errors.Is(err, ErrLocked) && !errors.Is(err, ErrStateUnwritable) {
			err = fmt.Errorf("%w: %w", ErrStateUnwritable, err)
		}
		var rep *Report
		if plan != nil {
			rep = &Report{Plan: *plan, Errors: []string{"locking the state: " + err.Error()}, keep: plan}
			rep.Plan.spill = nil // the plan's: rep.Close leaves it
		}
		s.logger().Error("the state cannot be locked; nothing was written", "err", err)
		return rep, fmt.Errorf("smimesync: nothing was written: %w", err)
	}
	defer unlock()
	if plan != nil {
		defer plan.state.closeView()
	}
	rep, err := s.admit(ctx, plan)
	if err != nil {
		return rep, err
	}
	defer plan.closeApplied(s.logger())
	a := s.newApplyRun(plan, rep)
	cancelled := a.write(ctx)
	a.finish(ctx, cancelled)
	rep, err = a.save(ctx, cancelled)
	s.rememberEntries(ctx, rep)
	return rep, err
}

// admit is Apply's check before anything is written: the plan is one Plan
// made and not yet applied, the settings are valid, the guard lets it
// through, no other Apply saved the state since the plan was made, and the
// State (when a Preparer) is ready to record writes. It marks the plan
// applied only when all of that holds. A non-nil report comes back with
// the guard's and Prepare's errors.
func (s *Syncer) admit(ctx context.Context, plan *Plan) (*Report, error) {
	if plan == nil || (plan.state == nil && !plan.loaded) {
		return nil, errors.New("smimesync: Apply needs a plan made by Plan or read by ReadPlan")
	}
	if plan.applied {
		return nil, errors.New("smimesync: plan was already applied")
	}
	if err := plan.usable(); err != nil {
		return nil, err
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	log := s.logger()
	rep := &Report{Plan: *plan, keep: plan}
	rep.Plan.spill = nil // the plan's until it is applied: rep.Close leaves it
	if err := s.checkGuard(plan); err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		log.Warn("guard tripped", "losing", err.Losing, "pruning", err.Pruning, "max", err.Max)
		return rep, err
	}
	// A plan made before another Apply saved the state would write from
	// stale knowledge and move the cookie back; a plan read from a file
	// must also have been made with this sink and source.
	cur, err := s.currentState(ctx, plan)
	if err != nil {
		return nil, err
	}
	if err := s.checkFresh(plan, cur); err != nil {
		return nil, err
	}
	if plan.loaded {
		// The state it was made against, as it is now: Apply brings it
		// up to date.
		plan.state = cur
	}
	// Whatever records the writes must be ready before the first one:
	// a write the state cannot record would be made again, or forgotten,
	// after a crash.
	if p, ok := s.state().(Preparer); ok && plan.Summary.Add+plan.Summary.Replace+plan.Summary.Remove+plan.Summary.Depart > 0 {
		if err := p.Prepare(ctx); err != nil {
			rep.Errors = append(rep.Errors, "preparing the state: "+err.Error())
			log.Error("the state cannot record writes; nothing was written", "err", err)
			return rep, fmt.Errorf("smimesync: nothing was written: %w", err)
		}
	}
	plan.applied = true
	// The report's rows are the plan's with their outcomes, in a
	// temporary file of its own (the plan's is removed when Apply ends).
	rep.keep = nil
	rep.Plan.rows = newReportRows(attachReportSpill(rep))
	return rep, nil
}

// applyRun is one Apply after admit: the report being filled in, the
// snapshot being brought up to date, and the counts the write workers
// share (under mu).
type applyRun struct {
	s        *Syncer
	plan     *Plan
	rep      *Report
	st       *Snapshot
	log      *slog.Logger
	recorder Recorder
	now      time.Time
	total    int

	mu        sync.Mutex
	failed    int
	attempts  int
	recordErr error
	// reportErr is the first failure to keep the report's rows (its
	// temporary file): the report is incomplete, and counted as failed.
	reportErr error
	// overFailed is set once a save of the records changed so far
	// (flushOver) failed: the rest wait for the end.
	overFailed bool
	// unavailable is the first write failure that every other write
	// would meet too (cloud.ErrUnavailable): no more writes start, and
	// the run reports it once.
	unavailable error
}

func (s *Syncer) newApplyRun(plan *Plan, rep *Report) *applyRun {
	a := &applyRun{s: s, plan: plan, rep: rep, st: plan.state, log: s.logger(), now: s.now(),
		total: plan.Summary.Add + plan.Summary.Replace + plan.Summary.Remove + plan.Summary.Depart}
	a.recorder, _ = s.state().(Recorder)
	if a.st.Pending == nil {
		a.st.Pending = map[string]*directory.Entry{}
	}
	if a.st.Departed == nil {
		a.st.Departed = map[string]Published{}
	}
	return a
}

// applyWindow is how many rows Apply holds at a time: it records them,
// starts their writes (at most Concurrency at once), and hands them to the
// report once every write among them has finished, in the plan's order.
const applyWindow = 512

// overFlush is how many records an Apply changes in memory before it
// saves them with the state's header as it stands (a RecordStore): the
// changes of a pass over a large directory are not held to its end. (A
// write acknowledged and recorded by a Recorder is not held at all.)
const overFlush = 16384

// write goes through the changes in the plan's order: it records in the
// snapshot what each change that writes nothing means (record), and starts
// a write worker for each change that writes, at most Concurrency at a
// time; the rows go to the report, in the plan's order, as their windows
// finish. It stops starting writes when ctx ends or a write cannot be
// recorded; the rows from there on are reported, each write among them
// failed as not attempted (settle). It returns, when every write started
// has finished, why it stopped early (the error that kept a write from
// being recorded, or ctx's error), or nil.
func (a *applyRun) write(ctx context.Context) error {
	loop, stop := context.WithCancel(ctx)
	defer stop()
	writes, release := a.writeContext(ctx, loop)
	defer release()
	sem := make(chan struct{}, a.s.concurrency())
	var wg sync.WaitGroup
	stoppedEarly := false
	window := make([]*Change, 0, applyWindow)
	flush := func() {
		wg.Wait()
		for _, c := range window {
			a.emit(c)
		}
		clear(window)
		window = window[:0]
		a.flushOver(ctx)
	}
	var left []*Change // the rows from where the writes stopped
	for c, err := range a.plan.Rows() {
		if err != nil {
			a.mu.Lock()
			if a.recordErr == nil {
				a.recordErr = err
				a.rep.Errors = append(a.rep.Errors, "reading the plan: "+err.Error())
			}
			a.mu.Unlock()
			stop()
			stoppedEarly = true
			break
		}
		if stoppedEarly {
			left = append(left, c)
			if len(left) >= applyWindow {
				a.settle(left, a.cancelled(writes, loop, ctx, true))
				clear(left)
				left = left[:0]
			}
			continue
		}
		a.mu.Lock()
		a.record(ctx, c)
		if !c.Writes() {
			a.settled(c)
		}
		a.mu.Unlock()
		window = append(window, c)
		if c.Writes() {
			select {
			case sem <- struct{}{}:
			case <-loop.Done():
			}
			if loop.Err() != nil {
				// This write and every row after it are left.
				stoppedEarly = true
				window = window[:len(window)-1]
				flush()
				left = append(left, c)
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				a.writeOne(writes, stop, c)
			})
		}
		if len(window) == cap(window) {
			flush()
		}
	}
	flush()
	cancelled := a.cancelled(writes, loop, ctx, stoppedEarly)
	if cancelled != nil {
		a.settle(left, cancelled)
		a.rep.Errors = append(a.rep.Errors, "apply cancelled: "+cancelled.Error())
	}
	return cancelled
}

// cancelled is why the writes stopped early, once every write started has
// finished: a failure every write would meet, a write that could not be
// recorded, or ctx's end; nil when they did not.
func (a *applyRun) cancelled(writes, loop, ctx context.Context, stoppedEarly bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.unavailable != nil {
		return a.unavailable
	}
	if a.recordErr != nil {
		return a.recordErr
	}
	if loop.Err() != nil && (stoppedEarly || writes.Err() != nil) {
		// Writes were left unstarted, or cut short: the apply was
		// cancelled. (Every write started and finished within the
		// grace: it was not.)
		return ctx.Err()
	}
	return nil
}

// emit hands a row, settled, to the report. The report keeps the entry
// of a row only to prune it (Syncer.prune): the entry of one that waits
// for a recipient is in the snapshot already (record), and would be
// written to the report's file and read back for nothing.
func (a *applyRun) emit(c *Change) {
	if len(c.prune) == 0 {
		c.entry = nil
	}
	if err := a.rep.rows.add(c); err != nil {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.reportErr == nil {
			a.reportErr = err
			a.failed++
			a.rep.Errors = append(a.rep.Errors, "keeping the report's rows: "+err.Error())
		}
	}
}

// flushOver saves the records this Apply changed so far, with the header
// as it stands, once there are overFlush of them (over a RecordStore). A
// failure is logged; the records stay for the save at the end.
func (a *applyRun) flushOver(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.st
	if st.part == nil || len(st.part.over) < overFlush || a.overFailed {
		return
	}
	if err := st.part.store.SaveChanges(context.WithoutCancel(ctx), st, st.part.over); err != nil {
		// Not again: they all wait for the save at the end, which
		// reports what fails.
		a.overFailed = true
		a.log.Warn("saving the records changed so far; they wait for the end of the apply", "records", len(st.part.over), "err", err)
		return
	}
	st.part.over = nil
}

// writeContext is the context of the writes: loop itself without a
// WriteGrace; with one, a context that ends at once when the apply stops
// itself (loop ends while ctx goes on), and WriteGrace after ctx ends.
// release frees its timers.
func (a *applyRun) writeContext(ctx, loop context.Context) (writes context.Context, release func()) {
	grace := a.s.WriteGrace
	if grace <= 0 {
		return loop, func() {}
	}
	writes, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	var (
		mu    sync.Mutex
		timer *time.Timer
	)
	stopAfter := context.AfterFunc(loop, func() {
		if ctx.Err() == nil {
			cancel(context.Cause(loop))
			return
		}
		a.log.Info("stopping: the writes in flight may finish", "grace", grace)
		mu.Lock()
		timer = time.AfterFunc(grace, func() { cancel(context.Cause(ctx)) })
		mu.Unlock()
	})
	return writes, func() {
		stopAfter()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel(nil)
	}
}

// settled tells OnChange about c. The caller holds a.mu.
func (a *applyRun) settled(c *Change) {
	if a.s.OnChange != nil && !c.settled {
		c.settled = true
		a.s.OnChange(c)
	}
}

// record brings the snapshot up to date for c before its write (if any):
// whether it is to be planned again, what is published for it when it is
// unchanged or gone, and a failed lookup. The caller holds a.mu.
func (a *applyRun) record(ctx context.Context, c *Change) {
	st, key := a.st, stateKey(c.Source, c.ID)
	if c.pending() {
		if len(st.Pending) < MaxPending || st.Pending[key] != nil {
			st.Pending[key] = c.entry
		} else {
			a.log.Warn("too many entries waiting for a recipient; this one waits for the next full pass", "user", c.User, "max", MaxPending)
		}
	} else {
		delete(st.Pending, key)
	}
	if c.Departed() {
		a.recordDeparture(ctx, c, key)
		return
	}
	if c.Action != ActionSkip || c.Reason != SkipError {
		// The entry is in the directory (again), or deleted with nothing
		// published: no departure to remember.
		delete(st.Departed, key)
	}
	switch {
	case c.Action == ActionSkip && (c.Reason == SkipDeleted || c.Reason == SkipNoRecipient):
		// Gone, or no longer has a recipient: what was published
		// for it no longer holds a recipient.
		st.deletePublished(key)
	case c.Action == ActionUnchanged && c.Memoized:
		// Taken on trust from its memo, which the record backs: it stands.
	case c.Action == ActionUnchanged:
		p, ok, err := st.published(context.WithoutCancel(ctx), key)
		switch {
		case err != nil:
			a.readFailed(c, err)
		case !ok || c.CurrentFrom == CurrentFromSink:
			st.setPublished(key, published(c, a.now))
		default:
			// Keep the names fresh (and fill them into a record written
			// before they existed); the values and their time stay.
			n := published(c, a.now)
			p.User, p.Name, p.Kind = n.User, n.Name, n.Kind
			st.setPublished(key, p)
		}
	case c.Action == ActionSkip && c.Reason == SkipError:
		a.failed++
		c.Outcome = OutcomeFailed
		a.rep.Errors = append(a.rep.Errors, fmt.Sprintf("%s: %s", c.User, c.Error))
	}
}

// recordDeparture notes in the snapshot what a departed entry's change
// means before its write (if any): the record moves from Published to
// Departed, where it stays until an ActionDepart write is acknowledged,
// or is dropped now when the change says so (nothing left to remove, the
// recipient gone or someone else's) or Departed is full. A failed read of
// the recipient counts as a failed lookup. The caller holds a.mu.
func (a *applyRun) recordDeparture(ctx context.Context, c *Change, key string) {
	if c.Error != "" {
		a.failed++
		c.Outcome = OutcomeFailed
		a.rep.Errors = append(a.rep.Errors, fmt.Sprintf("%s (left the directory): %s", c.User, c.Error))
	}
	st := a.st
	rec, ok, err := st.lookup(context.WithoutCancel(ctx), key) // the plan's row was made from it
	if err != nil {
		a.readFailed(c, err)
		return
	}
	st.deletePublished(key)
	delete(st.Pending, key)
	switch {
	case c.forget || !ok:
		delete(st.Departed, key)
	case len(st.Departed) >= MaxDeparted && st.Departed[key].Recipient == "":
		a.log.Warn("too many entries that left the directory are remembered; this one is forgotten", "user", c.User,
			"recipient", recipientName(c.Recipient), "max", MaxDeparted)
	default:
		st.Departed[key] = rec
	}
}

// writeOne is a write worker: it writes c to the sink, records a
// successful write durably (when the State is a Recorder) before anything
// else, and notes the outcome. A write that cannot be recorded calls stop,
// so that no more writes start.
func (a *applyRun) writeOne(ctx context.Context, stop context.CancelFunc, c *Change) {
	s, key := a.s, stateKey(c.Source, c.ID)
	// The values come back from the plan's temporary file whole, or the
	// write fails with nothing sent.
	vals, err := a.plan.values(c)
	if err == nil {
		err = s.Sink.Write(ctx, c.Recipient, vals)
	}
	var rerr error
	pub := published(c, s.now())
	if c.Action == ActionDepart {
		pub = Published{} // nothing is published for the entry any more
	}
	if err == nil && a.recorder != nil {
		// Durably, before anything else: a crash from here on
		// must not forget this write.
		rerr = a.recorder.Record(context.WithoutCancel(ctx), key, pub)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.attempts++
	if s.Progress != nil {
		s.Progress(Progress{Stage: StageApply, Done: a.attempts, Total: a.total})
	}
	defer a.settled(c)
	if errors.Is(err, cloud.ErrUnavailable) {
		// Every other write would fail the same way: stop starting
		// them, and report the failure once.
		if a.unavailable == nil {
			a.unavailable = err
			stop()
			a.log.Error("the sink cannot be used; stopping the apply", "err", err)
		}
		c.Outcome, c.Error = OutcomeFailed, err.Error()
		a.failed++
		return
	}
	if rerr != nil && a.recordErr == nil {
		// Stop starting writes: each one more without a durable
		// record could be repeated after a crash.
		a.recordErr = rerr
		stop()
		a.rep.Errors = append(a.rep.Errors, "recording writes: "+rerr.Error())
		a.log.Error("cannot record writes; stopping the apply", "err", rerr)
	}
	switch {
	case err == nil && c.Action == ActionDepart:
		c.Outcome = OutcomeWritten
		a.st.deletePublished(key)
		delete(a.st.Departed, key)
		a.log.Info("removed what was published for an entry that left the directory", "user", c.User,
			"recipient", recipientName(c.Recipient), "removed", len(c.Removes), "left", vals.Len())
	case err == nil:
		c.Outcome = OutcomeWritten
		if a.recorder == nil || rerr != nil || a.st.part == nil {
			// Over a RecordStore, a write recorded is saved already:
			// nothing to hold for the save at the end.
			a.st.setPublished(key, pub)
		}
		a.log.Info("written", "user", c.User, "recipient", recipientName(c.Recipient), "action", c.Action,
			"certificates", vals.Len())
	case errors.Is(err, cloud.ErrNotWritable):
		c.Outcome, c.Error = OutcomeNotWritable, err.Error()
		a.log.Warn("not writable", "user", c.User, "recipient", recipientName(c.Recipient), "err", err)
	default:
		c.Outcome, c.Error = OutcomeFailed, err.Error()
		a.failed++
		a.rep.Errors = append(a.rep.Errors, fmt.Sprintf("%s (%s): %v", c.User, recipientName(c.Recipient), err))
		a.log.Error("write failed", "user", c.User, "recipient", recipientName(c.Recipient), "err", err)
	}
}

// settle reports the rows the writes did not reach once they stopped
// early (cancelled is why): each write among them failed, not attempted.
func (a *applyRun) settle(left []*Change, cancelled error) {
	why := "not attempted: " + cancelled.Error()
	if a.unavailable != nil {
		why = "not attempted: the sink cannot be used (see the run's error)"
	}
	for _, c := range left {
		a.mu.Lock()
		if c.Writes() && c.Outcome == "" {
			c.Outcome, c.Error = OutcomeFailed, why
			a.failed++
		}
		a.settled(c)
		a.mu.Unlock()
		a.emit(c)
	}
}

// finish does what follows a complete, successful set of writes: the
// write-back (prune), forgetting the entries a full read no longer has,
// and moving the delta cookie forward. Whatever stopped early or failed
// leaves the cookie where it was, so that the next pass tries again.
func (a *applyRun) finish(ctx context.Context, cancelled error) {
	rep, st := a.rep, a.st
	if err := rep.rows.flush(); err != nil && a.reportErr == nil {
		a.reportErr = err
		a.failed++
		rep.Errors = append(rep.Errors, "keeping the report's rows: "+err.Error())
	}
	if a.failed == 0 && cancelled == nil {
		a.s.prune(ctx, rep)
	}
	if a.plan.Full && cancelled == nil {
		if err := a.forgetUnseen(context.WithoutCancel(ctx)); err != nil {
			a.failed++
			rep.Errors = append(rep.Errors, "forgetting entries the full read did not return: "+err.Error())
		}
	}
	st.LastRun = a.s.now()
	if a.plan.Full && cancelled == nil {
		st.LastFull = st.LastRun
	}
	if a.failed == 0 && cancelled == nil {
		st.Cookie = a.plan.cookie
		st.LastGood = st.LastRun
		rep.CookieAdvanced = true
	}
}

// forgetUnseen drops from the snapshot the entries a full read did not
// return (the plan has no row for them, and did not count them as
// unlisted): they are out of scope, and must not hold their recipient
// against a newcomer. Their keys go to the report, whose memos of them
// rememberEntries drops. (An entry that left with something published has a
// row, SkipDeparted or ActionDepart, and its record moved to
// Snapshot.Departed when it was recorded.)
func (a *applyRun) forgetUnseen(ctx context.Context) error {
	seen := a.plan.seen
	if a.st.part == nil || !a.st.part.allRead {
		err := a.st.eachPublished(ctx, seen, func(k string, _ Published) error {
			a.st.deletePublished(k)
			a.rep.forgotten = append(a.rep.forgotten, k)
			return nil
		})
		if err != nil {
			return err
		}
	}
	for k := range a.st.Pending {
		if !seen(k) {
			delete(a.st.Pending, k)
			a.rep.forgotten = append(a.rep.forgotten, k)
		}
	}
	for k := range a.st.Departed {
		if !seen(k) {
			delete(a.st.Departed, k)
			a.rep.forgotten = append(a.rep.forgotten, k)
		}
	}
	return nil
}

// save saves the snapshot, even after a cancel (what was written must be
// remembered), completes the report and returns Apply's result.
func (a *applyRun) save(ctx context.Context, cancelled error) (*Report, error) {
	s, rep := a.s, a.rep
	if err := s.saveState(context.WithoutCancel(ctx), a.st); err != nil {
		rep.Errors = append(rep.Errors, "saving state: "+err.Error())
		rep.CookieAdvanced = false
		rep.Summary = rep.summarize()
		rep.Finished = s.now()
		if !errors.Is(err, ErrStateUnwritable) {
			err = fmt.Errorf("%w: %w", ErrStateUnwritable, err)
		}
		return rep, fmt.Errorf("smimesync: saving state: %w", err)
	}
	rep.StateSaved = true
	rep.Summary = rep.summarize()
	rep.Finished = s.now()
	a.log.Info("applied", "written", rep.Summary.Written, "failed", rep.Summary.Failed,
		"notWritable", rep.Summary.NotWritable, "cookieAdvanced", rep.CookieAdvanced)
	if cancelled != nil {
		return rep, fmt.Errorf("smimesync: apply cancelled after %d writes: %w", rep.Summary.Written, cancelled)
	}
	if a.failed > 0 {
		return rep, fmt.Errorf("smimesync: %d %w (first: %s)", a.failed, ErrChangesFailed, rep.Errors[0])
	}
	return rep, nil
}

// prune removes dropped values from the directory when asked to.
func (s *Syncer) prune(ctx context.Context, rep *Report) {
	pr, ok := s.Source.(directory.Pruner)
	if !ok || len(s.Prune.Reasons) == 0 {
		return
	}
	for c, err := range rep.Rows() {
		if err != nil {
			rep.Errors = append(rep.Errors, "pruning: "+err.Error())
			return
		}
		if c.entry == nil {
			continue
		}
		for _, attr := range []string{cloud.AttrUserCertificate, cloud.AttrUserSMIMECertificate} {
			vals := c.prune[attr]
			if len(vals) == 0 {
				continue
			}
			if err := pr.Prune(ctx, c.entry, attr, vals); err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s: pruning %s: %v", c.User, attr, err))
				s.logger().Error("prune failed", "user", c.User, "attribute", attr, "err", err)
			}
		}
	}
}

func published(c *Change, at time.Time) Published {
	p := Published{Recipient: c.Recipient.ID, At: at, UserCertificate: c.desiredFP[0], UserSMIMECertificate: c.desiredFP[1],
		User: c.User, Kind: c.Recipient.Kind}
	if c.Recipient.Name != c.Recipient.ID {
		p.Name = c.Recipient.Name
	}
	return p
}

// fingerprints maps every value of c to its attribute.
func fingerprints(c cloud.Certificates) map[Fingerprint]string {
	m := make(map[Fingerprint]string, c.Len())
	for _, v := range c.UserCertificate {
		m[sha256.Sum256(v)] = cloud.AttrUserCertificate
	}
	for _, v := range c.UserSMIMECertificate {
		m[sha256.Sum256(v)] = cloud.AttrUserSMIMECertificate
	}
	return m
}
