//go:build !linux

package smimesync

// roomToWrite reports whether the file system of dir is mounted writable
// and has at least room bytes free: on this system it cannot tell, so
// BoltState.Prepare always proves the store writable with a commit.
func roomToWrite(dir string, room uint64) bool { return false }
