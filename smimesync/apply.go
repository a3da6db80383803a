package smimesync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// ErrStalePlan is wrapped by the error Apply returns for a plan made before
// the state was last saved.
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
// The returned report is never nil when the plan was valid; the error
// summarises the write failures, each of which the report lists.
func (s *Syncer) Apply(ctx context.Context, plan *Plan) (*Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if plan == nil || plan.state == nil {
		return nil, errors.New("smimesync: Apply needs a plan made by Plan")
	}
	if plan.applied {
		return nil, errors.New("smimesync: plan was already applied")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	log := s.logger()
	rep := &Report{Plan: *plan}
	if err := s.checkGuard(plan); err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		log.Warn("guard tripped", "losing", err.Losing, "pruning", err.Pruning, "max", err.Max)
		return rep, err
	}
	// A plan made before another Apply saved the state would write from
	// stale knowledge and move the cookie back.
	if cur, err := s.state().Load(ctx); err != nil {
		return nil, err
	} else if cur.Generation != plan.state.Generation {
		return nil, fmt.Errorf("%w: the state was saved again after this plan was made (generation %d, plan %d); plan again", ErrStalePlan, cur.Generation, plan.state.Generation)
	}
	// Whatever records the writes must be ready before the first one:
	// a write the state cannot record would be made again, or forgotten,
	// after a crash.
	if p, ok := s.state().(Preparer); ok && plan.Summary.Add+plan.Summary.Replace+plan.Summary.Remove > 0 {
		if err := p.Prepare(ctx); err != nil {
			rep.Errors = append(rep.Errors, "preparing the state: "+err.Error())
			log.Error("the state cannot record writes; nothing was written", "err", err)
			return rep, fmt.Errorf("smimesync: nothing was written: %w", err)
		}
	}
	plan.applied = true
	st := plan.state
	now := s.now()
	if st.Pending == nil {
		st.Pending = map[string]*directory.Entry{}
	}

	recorder, _ := s.state().(Recorder)
	var recordErr error
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu       sync.Mutex
		failed   int
		sem      = make(chan struct{}, s.concurrency())
		wg       sync.WaitGroup
		total    = plan.Summary.Add + plan.Summary.Replace + plan.Summary.Remove
		attempts int
	)
	for _, c := range rep.Changes {
		key := stateKey(c.Source, c.ID)
		mu.Lock()
		if c.pending() {
			if len(st.Pending) < MaxPending || st.Pending[key] != nil {
				st.Pending[key] = c.entry
			} else {
				log.Warn("too many entries waiting for a recipient; this one waits for the next full pass", "user", c.User, "max", MaxPending)
			}
		} else {
			delete(st.Pending, key)
		}
		switch {
		case c.Action == ActionSkip && (c.Reason == SkipDeleted || c.Reason == SkipNoRecipient):
			// Gone, or no longer has a recipient: what was published
			// for it no longer holds a recipient.
			delete(st.Published, key)
		case c.Action == ActionUnchanged:
			if _, ok := st.Published[key]; !ok || c.CurrentFrom == "sink" {
				st.Published[key] = published(c, now)
			}
		case c.Action == ActionSkip && c.Reason == SkipError:
			failed++
			c.Outcome = "failed"
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %s", c.User, c.Error))
		}
		mu.Unlock()
		if !c.Writes() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			err := s.Sink.Write(ctx, c.Recipient, c.desired)
			var rerr error
			pub := published(c, s.now())
			if err == nil && recorder != nil {
				// Durably, before anything else: a crash from here on
				// must not forget this write.
				rerr = recorder.Record(context.WithoutCancel(ctx), key, pub)
			}
			mu.Lock()
			defer mu.Unlock()
			attempts++
			if s.Progress != nil {
				s.Progress(Progress{Stage: "apply", Done: attempts, Total: total})
			}
			if rerr != nil && recordErr == nil {
				// Stop starting writes: each one more without a durable
				// record could be repeated after a crash.
				recordErr = rerr
				stop()
				rep.Errors = append(rep.Errors, "recording writes: "+rerr.Error())
				log.Error("cannot record writes; stopping the apply", "err", rerr)
			}
			switch {
			case err == nil:
				c.Outcome = "written"
				st.Published[key] = pub
				log.Info("written", "user", c.User, "recipient", recipientName(c.Recipient), "action", c.Action,
					"certificates", c.desired.Len())
			case errors.Is(err, cloud.ErrNotWritable):
				c.Outcome, c.Error = "not-writable", err.Error()
				log.Warn("not writable", "user", c.User, "recipient", recipientName(c.Recipient), "err", err)
			default:
				c.Outcome, c.Error = "failed", err.Error()
				failed++
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s (%s): %v", c.User, recipientName(c.Recipient), err))
				log.Error("write failed", "user", c.User, "recipient", recipientName(c.Recipient), "err", err)
			}
		})
	}
	wg.Wait()
	cancelled := ctx.Err()
	if recordErr != nil {
		cancelled = recordErr
	}
	if cancelled != nil {
		for _, c := range rep.Changes {
			if c.Writes() && c.Outcome == "" {
				c.Outcome, c.Error = "failed", "not attempted: "+cancelled.Error()
				failed++
			}
		}
		rep.Errors = append(rep.Errors, "apply cancelled: "+cancelled.Error())
	}

	if failed == 0 && cancelled == nil {
		s.prune(ctx, rep)
	}

	if plan.Full && cancelled == nil {
		// Entries gone from a full read are out of scope: forget them, so
		// they do not hold their recipient against a newcomer.
		seen := make(map[string]bool, len(rep.Changes))
		for _, c := range rep.Changes {
			seen[stateKey(c.Source, c.ID)] = true
		}
		for k := range st.Published {
			if !seen[k] {
				delete(st.Published, k)
			}
		}
		for k := range st.Pending {
			if !seen[k] {
				delete(st.Pending, k)
			}
		}
	}
	st.LastRun = s.now()
	if failed == 0 && cancelled == nil {
		st.Cookie = plan.cookie
		st.LastGood = st.LastRun
		rep.CookieAdvanced = true
	}
	// Save even after a cancel: what was written must be remembered.
	saveCtx := context.WithoutCancel(ctx)
	if err := s.state().Save(saveCtx, st); err != nil {
		rep.Errors = append(rep.Errors, "saving state: "+err.Error())
		rep.CookieAdvanced = false
		rep.Summary = summarize(rep.Changes)
		rep.Finished = s.now()
		if !errors.Is(err, ErrStateUnwritable) {
			err = fmt.Errorf("%w: %w", ErrStateUnwritable, err)
		}
		return rep, fmt.Errorf("smimesync: saving state: %w", err)
	}
	rep.StateSaved = true
	rep.Summary = summarize(rep.Changes)
	rep.Finished = s.now()
	log.Info("applied", "written", rep.Summary.Written, "failed", rep.Summary.Failed,
		"notWritable", rep.Summary.NotWritable, "cookieAdvanced", rep.CookieAdvanced)
	if cancelled != nil {
		return rep, fmt.Errorf("smimesync: apply cancelled after %d writes: %w", rep.Summary.Written, cancelled)
	}
	if failed > 0 {
		return rep, fmt.Errorf("smimesync: %d %w (first: %s)", failed, ErrChangesFailed, rep.Errors[0])
	}
	return rep, nil
}

// prune removes dropped values from the directory when asked to.
func (s *Syncer) prune(ctx context.Context, rep *Report) {
	pr, ok := s.Source.(directory.Pruner)
	if !ok || len(s.Prune.Reasons) == 0 {
		return
	}
	for _, c := range rep.Changes {
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
	return Published{Recipient: c.Recipient.ID, At: at, UserCertificate: c.desiredFP[0], UserSMIMECertificate: c.desiredFP[1]}
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
