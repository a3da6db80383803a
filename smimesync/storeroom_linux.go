//go:build linux

package smimesync

import "golang.org/x/sys/unix"

// roomToWrite reports whether the file system of dir is mounted writable
// and has at least room bytes free for an unprivileged writer. False when
// it cannot tell.
func roomToWrite(dir string, room uint64) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return false
	}
	return fs.Flags&unix.ST_RDONLY == 0 && fs.Bsize > 0 && fs.Bavail >= room/uint64(fs.Bsize)+1
}
