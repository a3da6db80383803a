package report

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// ErrReadOnly is returned by Record and Flush of a Store that OpenRead
// opened.
var ErrReadOnly = errors.New("report: the store was opened for reading only")

// OpenRead opens the report at path for reading only, as `smimesync
// report` does: it imports, converts, sets aside and creates nothing, and
// writes nothing beside path (a reader may run on an archive, or as
// another user, while a service keeps the report). What is at the path
// decides:
//
//   - nothing: an empty report;
//   - a report store: it is read where it is; one this release cannot
//     read (another version, a damaged header) is an error wrapping
//     ErrBadReport that names the path;
//   - a JSON report of an earlier release (Version 1 or 2): it is read
//     into a temporary store in the system's temporary folder, which Close
//     removes;
//   - anything else: an error wrapping ErrNotReport.
//
// Close the Store when done. Its Record and Flush return ErrReadOnly.
func OpenRead(path string) (*Store, error) {
	s := &Store{path: path, log: slog.New(slog.DiscardHandler), known: map[string]header{},
		pending: map[string]header{}, readOnly: true}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("report: %w", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("report: %w: %s: %w", ErrBadReport, path, ErrNotReport)
	}
	bolted, err := isBolt(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if bolted {
		if err := s.check(); err != nil {
			return nil, err
		}
		return s, nil
	}
	raw, f, err := readJSON(path)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "smimesync-report-")
	if err != nil {
		return nil, fmt.Errorf("report: reading the JSON report %s: %w", path, err)
	}
	sum := sha256.Sum256(raw)
	tmp, err := importFile(filepath.Join(dir, "report.db"), f, sum[:])
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("report: reading the JSON report %s: %w", path, err)
	}
	s.path, s.tempDir = tmp, dir
	return s, nil
}

// Close removes what OpenRead made to read a JSON report (its temporary
// store). A Store that Open or OpenOptions opened holds nothing between
// calls: its Close does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tempDir == "" {
		return nil
	}
	err := os.RemoveAll(s.tempDir)
	s.tempDir = ""
	return err
}
