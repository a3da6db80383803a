package revocation

import (
	"container/list"
	"sync"
	"time"
)

// cache is a bounded least-recently-used map whose entries expire. It is
// safe for concurrent use.
type cache struct {
	mu    sync.Mutex
	max   int
	order list.List // of *cacheEntry, most recently used first
	items map[string]*list.Element
}

type cacheEntry struct {
	key   string
	val   any
	until time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, items: make(map[string]*list.Element)}
}

// get returns the value stored under key if it has not expired at now.
func (c *cache) get(key string, now time.Time) (any, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, time.Time{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.until) {
		c.order.Remove(el)
		delete(c.items, key)
		return nil, time.Time{}, false
	}
	c.order.MoveToFront(el)
	return e.val, e.until, true
}

// put stores val under key until the given time, evicting the least
// recently used entries beyond the bound.
func (c *cache) put(key string, val any, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		e.val, e.until = val, until
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, val: val, until: until})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}
