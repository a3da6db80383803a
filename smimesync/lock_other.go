//go:build !windows && !(unix && !aix)

package smimesync

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// lockFile: this system has no lock that the Syncer knows how to take.
func lockFile(f *os.File) (held bool, err error) {
	return false, fmt.Errorf("no file locking on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func unlockFile(f *os.File) error { return nil }
