package smimesync

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrSymlink is wrapped by the errors of [FileState]'s Lock, Prepare and
// Record when the lock file or the journal is a symbolic link (or not a
// regular file): they are opened only as what they claim to be, so that a
// link planted beside the state cannot make smimesync truncate or append
// to another file.
var ErrSymlink = errors.New("smimesync: refusing a symbolic link or a file that is not a regular file")

// openNoFollow opens path like os.OpenFile, but not through a symbolic
// link at its last element (O_NOFOLLOW where the system has it, so that a
// link made between the check and the open is refused too; on Windows the
// Lstat check alone), and only as a regular file.
func openNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is %s", ErrSymlink, path, fileKind(fi.Mode()))
	}
	f, err := os.OpenFile(path, flag|oNoFollow, perm)
	if err != nil {
		if isSymlinkLoop(err) {
			return nil, fmt.Errorf("%w: %s is a symbolic link", ErrSymlink, path)
		}
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s is %s", ErrSymlink, path, fileKind(fi.Mode()))
	}
	return f, nil
}

// fileKind names what a file that is not a regular file is.
func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a folder"
	}
	return "not a regular file"
}

// resolvedPath is path, absolute, with its symbolic links resolved: the
// whole path when it exists, else its folder (and the name appended). Two
// names for one file give one resolvedPath. When even the folder cannot be
// resolved (it does not exist yet), the absolute path is returned.
func resolvedPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	if r, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(r, filepath.Base(abs))
	}
	return abs
}
