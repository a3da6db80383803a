//go:build !unix

package smimesync

// oNoFollow: this system's open has no such flag; openNoFollow's Lstat
// check stands alone.
const oNoFollow = 0

func isSymlinkLoop(error) bool { return false }
