package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// op is one request sent inside a $batch.
type op struct {
	label string // for errors: "PATCH user …"
	info  *abs.RequestInformation
	write bool // counts against the write budget

	ctx       context.Context
	done      chan opResult
	readyAt   time.Time // when it may go (enqueued, or after a backoff)
	tries     int       // transient failures so far
	throttled int       // 429s so far
}

// opResult is a batch item's answer.
type opResult struct {
	status int
	header map[string]string
	body   json.RawMessage
	err    error
}

// batcher packs the requests of concurrent callers into $batch requests of
// up to BatchSize, waiting at most BatchWait for a batch to fill, with at
// most Concurrency batches on the wire. Graph throttles each item of a
// batch on its own and the SDK does not retry inside a batch, so the
// batcher does: an item answered 429 goes back in the queue, and the
// sink's gate stays shut for its Retry-After; an item answered with a
// transient status is retried after a backoff. A goroutine runs while
// there is work and exits when there is none.
type batcher struct {
	s *Sink

	mu       sync.Mutex
	queue    []*op
	running  bool
	inflight int
	wake     chan struct{}
	pace     *pacer // nil: writes are not paced

	batches atomic.Int64 // $batch requests sent
}

func newBatcher(s *Sink) *batcher {
	b := &batcher{s: s, wake: make(chan struct{}, 1)}
	if wb := s.cfg.WriteBudget; wb.Writes > 0 {
		b.pace = &pacer{budget: wb.Writes, window: wb.Window}
	}
	return b
}

// pacer keeps the writes sent within a sliding window of the budget Graph
// documents (3,000 writes per 150 s per app and tenant), so that one sink
// on its own is not throttled at all. Other processes of the same app
// share the service's budget but not this one: 429s are still handled.
type pacer struct {
	budget int
	window time.Duration
	sent   []time.Time // send times within the window, oldest first
}

func (p *pacer) prune(now time.Time) {
	i := 0
	for i < len(p.sent) && now.Sub(p.sent[i]) >= p.window {
		i++
	}
	if i > 0 {
		p.sent = append(p.sent[:0], p.sent[i:]...)
	}
}

// available returns how many writes may be sent at now.
func (p *pacer) available(now time.Time) int {
	if p == nil {
		return math.MaxInt
	}
	p.prune(now)
	return p.budget - len(p.sent)
}

// next returns when the next write may be sent, when none may at now
// (because the budget is spent, or about to be by writes chosen at now).
func (p *pacer) next(now time.Time) time.Time {
	if len(p.sent) == 0 {
		return now.Add(p.window)
	}
	return p.sent[0].Add(p.window)
}

// settle moves n writes recorded as sent at sent to done, when their
// answer came: the service counted them somewhere in between, so the
// later time keeps the pacer from running ahead of the service's window.
func (p *pacer) settle(sent, done time.Time, n int) {
	if p == nil {
		return
	}
	for i := range p.sent {
		if n == 0 {
			return
		}
		if p.sent[i].Equal(sent) {
			p.sent[i] = done
			n--
		}
	}
}

func (p *pacer) add(now time.Time, n int) {
	if p == nil {
		return
	}
	for range n {
		p.sent = append(p.sent, now)
	}
}

func (b *batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// do sends o in a $batch and returns its answer, or ctx's error when ctx
// ends first (the item may still be sent).
func (b *batcher) do(ctx context.Context, o *op) opResult {
	o.ctx = ctx
	o.done = make(chan opResult, 1)
	o.readyAt = time.Now()
	stop := context.AfterFunc(ctx, b.signal)
	defer stop()
	b.mu.Lock()
	b.queue = append(b.queue, o)
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	b.signal()
	select {
	case r := <-o.done:
		return r
	case <-ctx.Done():
		return opResult{err: fmt.Errorf("graph: %s: %w", o.label, ctx.Err())}
	}
}

func (b *batcher) loop() {
	cfg := b.s.cfg
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		b.mu.Lock()
		b.queue = slices.DeleteFunc(b.queue, func(o *op) bool { return o.ctx.Err() != nil })
		if len(b.queue) == 0 && b.inflight == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		now := time.Now()
		wait := time.Duration(-1) // -1: until signalled
		if g := b.s.gate.Remaining(now); g > 0 {
			wait = g
		} else if b.inflight < cfg.Concurrency && len(b.queue) > 0 {
			var ready []*op
			oldest, next := now, time.Time{}
			avail := b.pace.available(now)
			for _, o := range b.queue {
				readyAt := o.readyAt
				if o.write && avail <= 0 && !readyAt.After(now) {
					readyAt = b.pace.next(now)
				}
				if readyAt.After(now) {
					if next.IsZero() || readyAt.Before(next) {
						next = readyAt
					}
					continue
				}
				if o.write {
					avail--
				}
				ready = append(ready, o)
				if o.readyAt.Before(oldest) {
					oldest = o.readyAt
				}
				if len(ready) == cfg.BatchSize {
					break
				}
			}
			if len(ready) >= cfg.BatchSize || len(ready) > 0 && now.Sub(oldest) >= cfg.BatchWait {
				take := ready
				writes := 0
				for _, o := range take {
					if o.write {
						writes++
					}
				}
				b.pace.add(now, writes)
				b.queue = slices.DeleteFunc(b.queue, func(o *op) bool { return slices.Contains(take, o) })
				b.inflight++
				b.mu.Unlock()
				go b.send(take, now, writes)
				continue
			}
			if len(ready) > 0 {
				wait = cfg.BatchWait - now.Sub(oldest)
			}
			if !next.IsZero() && (wait < 0 || next.Sub(now) < wait) {
				wait = next.Sub(now)
			}
		}
		b.mu.Unlock()
		if wait >= 0 {
			timer.Reset(wait)
			select {
			case <-b.wake:
			case <-timer.C:
			}
			timer.Stop()
		} else {
			<-b.wake
		}
	}
}

// send sends one $batch and hands each item's answer to its caller or
// puts the item back in the queue.
func (b *batcher) send(ops []*op, sent time.Time, writes int) {
	var again []*op
	defer func() {
		b.mu.Lock()
		b.pace.settle(sent, time.Now(), writes)
		b.inflight--
		b.queue = append(again, b.queue...)
		b.mu.Unlock()
		b.signal()
	}()

	// The batch is cancelled when every caller in it has gone.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var left atomic.Int32
	left.Store(int32(len(ops)))
	for _, o := range ops {
		stop := context.AfterFunc(o.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}

	pol := b.s.cfg.Retry
	req := msgraphcore.NewBatchRequest(b.s.adapter)
	byID := make(map[string]*op, len(ops))
	for _, o := range ops {
		item, err := req.AddBatchRequestStep(*o.info)
		if err != nil {
			o.done <- opResult{err: fmt.Errorf("graph: %s: building batch item: %w", o.label, err)}
			continue
		}
		byID[*item.GetId()] = o
	}
	if len(byID) == 0 {
		return
	}
	b.batches.Add(1)
	resp, err := b.post(ctx, req)
	if err != nil {
		err = serviceError("POST $batch", err)
		for _, o := range byID {
			o.done <- opResult{err: fmt.Errorf("graph: %s: %w", o.label, err)}
		}
		return
	}
	for _, item := range resp.GetResponses() {
		id := item.GetId()
		if id == nil {
			continue
		}
		o, ok := byID[*id]
		if !ok {
			continue
		}
		delete(byID, *id)
		status := 0
		if s := item.GetStatus(); s != nil {
			status = int(*s)
		}
		hdr := map[string]string(item.GetHeaders())
		var ra string
		for k, v := range hdr {
			if http.CanonicalHeaderKey(k) == "Retry-After" {
				ra = v
			}
		}
		switch {
		case status == http.StatusTooManyRequests && o.throttled < pol.MaxThrottled:
			o.throttled++
			w := pol.wait(ra, o.throttled)
			b.s.gate.Hold(time.Now().Add(w))
			o.readyAt = time.Now()
			again = append(again, o)
			continue
		case transient(status) && o.tries+1 < pol.MaxTries:
			o.tries++
			w := pol.wait(ra, o.tries)
			o.readyAt = time.Now().Add(w)
			again = append(again, o)
			continue
		}
		var body json.RawMessage
		if m := item.GetBody(); m != nil {
			body, err = json.Marshal(map[string]any(m))
			if err != nil {
				o.done <- opResult{err: fmt.Errorf("graph: %s: batch item body: %w", o.label, err)}
				continue
			}
		}
		o.done <- opResult{status: status, header: hdr, body: body}
	}
	for _, o := range byID {
		o.done <- opResult{err: fmt.Errorf("graph: %s: the $batch answer has no response for it", o.label)}
	}
}

// post sends a $batch as msgraph-sdk-go-core's BatchRequest.Send does, but
// with Graph's error type mapped, so that a refused batch says why.
func (b *batcher) post(ctx context.Context, req msgraphcore.BatchRequest) (msgraphcore.BatchResponse, error) {
	info := abs.NewRequestInformation()
	info.Method = abs.POST
	info.UrlTemplate = "{+baseurl}/$batch"
	info.PathParameters["baseurl"] = b.s.adapter.GetBaseUrl()
	info.Headers.TryAdd("Accept", "application/json")
	if err := info.SetContentFromParsable(ctx, b.s.adapter, "application/json", req); err != nil {
		return nil, fmt.Errorf("serialising $batch: %w", err)
	}
	res, err := b.s.adapter.Send(ctx, info, msgraphcore.CreateBatchResponseDiscriminator,
		abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err != nil {
		return nil, err
	}
	resp, ok := res.(msgraphcore.BatchResponse)
	if !ok || resp == nil {
		return nil, fmt.Errorf("the $batch answer has no body")
	}
	return resp, nil
}

// graphError is the body of a Graph error answer.
type graphError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// itemError turns a batch item's error answer into a *ServiceError.
func itemError(label string, r opResult) error {
	var ge graphError
	_ = json.Unmarshal(r.body, &ge)
	code, msg := ge.Error.Code, ge.Error.Message
	if code == "" {
		code = http.StatusText(r.status)
	}
	return &ServiceError{Op: label, Status: r.status, Code: code, Message: msg}
}
