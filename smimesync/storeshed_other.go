//go:build !linux

package smimesync

import bolt "go.etcd.io/bbolt"

// shedder gives back the pages of a BoltState's file that the process has
// mapped, on Linux (storeshed_linux.go); here it does nothing: the pages a
// pass touched stay mapped until the store is closed.
type shedder struct{}

func (*shedder) touch(*bolt.Tx, int) {}
func (*shedder) wrote(*bolt.DB, int) {}
func (*shedder) committed(*bolt.DB)  {}
func (*shedder) setLimit(int64)      {}
func commitTouch(n int) int          { return n }
func lookupTouch(n int) int          { return n }
func walkTouch(k, v int) int         { return k + v }
