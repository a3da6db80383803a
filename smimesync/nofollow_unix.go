//go:build unix

package smimesync

import (
	"errors"

	"golang.org/x/sys/unix"
)

// oNoFollow makes an open fail on a symbolic link.
const oNoFollow = unix.O_NOFOLLOW

// isSymlinkLoop reports the error O_NOFOLLOW gives for a link.
func isSymlinkLoop(err error) bool { return errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK) }
