package revocation

import (
	"container/list"
	"sync"
	"time"
)

// cache is a bounded least-recently-used map whose entries expire. It is
// bounded both by entries and by the bytes its values are estimated to
// hold. It is safe for concurrent use.
type cache struct {
	mu       sync.Mutex
	max      int
	maxBytes int64
	bytes    int64
	order    list.List // of *cacheEntry, most recently used first
	items    map[string]*list.Element
}

type cacheEntry struct {
	key   string
	val   any
	until time.Time
	size  int64
}

func newCache(max int, maxBytes int64) *cache {
	return &cache{max: max, maxBytes: maxBytes, items: make(map[string]*list.Element)}
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
		c.remove(el)
		return nil, time.Time{}, false
	}
	c.order.MoveToFront(el)
	return e.val, e.until, true
}

// put stores val, estimated to hold size bytes, under key until the given
// time, evicting the least recently used entries beyond the bounds. A
// value larger than the whole byte bound is not stored (and an older value
// under key is dropped); put reports whether it stored val.
func (c *cache) put(key string, val any, until time.Time, size int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	size += int64(len(key)) + entryOverhead
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	if size > c.maxBytes {
		return false
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, val: val, until: until, size: size})
	c.bytes += size
	for c.order.Len() > c.max || c.bytes > c.maxBytes {
		c.remove(c.order.Back())
	}
	return true
}

func (c *cache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.order.Remove(el)
	delete(c.items, e.key)
	c.bytes -= e.size
}

// usage returns the number of entries and their estimated bytes.
func (c *cache) usage() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.bytes
}

// entryOverhead estimates what one entry costs beyond its key and value:
// the list element, the map slot and the cacheEntry.
const entryOverhead = 160
