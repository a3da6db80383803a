package revocation

import (
	"context"
	"sync"
	"time"
)

// budget is the time the fetches in one scope (an entry or a pass) may
// take in total. It is safe for concurrent use.
type budget struct {
	limit time.Duration
	mu    sync.Mutex
	spent time.Duration
}

func (b *budget) remaining() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limit - b.spent
}

func (b *budget) charge(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.spent += d
}

type passBudgetKey struct{}
type entryBudgetKey struct{}

// BeginPass returns ctx with a fresh pass budget of PassBudget: every check
// made with it, or with a ctx derived from it, draws on the same budget.
// It implements [smimesync.RevocationBudgeter]; the Syncer calls it at the
// start of each plan. With PassBudget negative, ctx is returned unchanged.
func (c *Checker) BeginPass(ctx context.Context) context.Context {
	d := c.PassBudget
	if d < 0 {
		return ctx
	}
	if d == 0 {
		d = DefaultPassBudget
	}
	return context.WithValue(ctx, passBudgetKey{}, &budget{limit: d})
}

// BeginEntry returns ctx with a fresh entry budget of EntryBudget, shared by
// the checks made with it: the Policy calls it once per directory entry. A
// check whose ctx has no entry budget gets one of its own. With EntryBudget
// negative, ctx is returned unchanged and checks have no entry budget.
func (c *Checker) BeginEntry(ctx context.Context) context.Context {
	d := c.EntryBudget
	if d < 0 {
		return ctx
	}
	if d == 0 {
		d = DefaultEntryBudget
	}
	return context.WithValue(ctx, entryBudgetKey{}, &budget{limit: d})
}

// budgets returns the budgets in ctx.
func budgets(ctx context.Context) []*budget {
	var bs []*budget
	for _, k := range []any{entryBudgetKey{}, passBudgetKey{}} {
		if b, ok := ctx.Value(k).(*budget); ok {
			bs = append(bs, b)
		}
	}
	return bs
}

// hasEntryBudget tells whether ctx carries an entry budget.
func hasEntryBudget(ctx context.Context) bool {
	_, ok := ctx.Value(entryBudgetKey{}).(*budget)
	return ok
}
