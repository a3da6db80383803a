package smimesync

// KeepMappedPages turns b's shedding of its file's mapped pages off (keep)
// or on again, and ShedOften makes b shed at every look (every few hundred
// KB read, and after every commit): call them while b is not in use.
// Sheds is how many times b shed. For the tests of the shedding.
func KeepMappedPages(b *BoltState, keep bool) { b.shed.off = keep }

func ShedOften(b *BoltState) { b.shed.often = true }

func Sheds(b *BoltState) int64 { return b.shed.sheds.Load() }
