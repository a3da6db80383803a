package config

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// A configPath is a file (or, for a backup folder, a folder) the
// configuration names or implies.
type configPath struct {
	key    string // the YAML path that names it
	label  string // what it is, when it is not the key's own value
	path   string // as the configuration resolves it (absolute)
	real   string // with every symbolic link resolved
	writes bool   // smimesync writes, renames or replaces it
	folder bool   // a folder smimesync writes files into
}

// describe names p in an error about another key ("state.path
// (/srv/state.json)").
func (p configPath) describe() string {
	return cmp.Or(p.label, p.key) + " (" + p.path + ")"
}

// self names p in an error about its own key, which the error already
// names.
func (p configPath) self() string {
	if p.label != "" {
		return p.describe()
	}
	return p.path
}

// checkPaths refuses paths that are the same file once resolved: the
// files smimesync writes (sink file, state, its journal and lock, the
// second sink's state, report, log file) must differ from one another and
// from every file it reads (the configuration itself, LDIF source, CA and
// secret files, policy roots), and nothing may lie inside a prune backup
// folder. Symbolic links are followed, also to a file that does not exist
// yet (a missing file in a linked folder, a dangling link), and hard links
// to one file are caught when the file exists. Names are compared as they
// are spelled: on a case-insensitive file system (Windows, macOS) two
// spellings of one name are not caught unless the file exists.
func (c *File) checkPaths(configFile string) error {
	ps := c.paths(configFile)
	for i := range ps {
		ps[i].real = resolvePath(ps[i].path)
	}
	var errs []error
	for i, a := range ps {
		for _, b := range ps[:i] {
			if err := c.collide(b, a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// collide returns an error when a and b (a first in the file) may not
// coexist.
func (c *File) collide(a, b configPath) error {
	same := a.real == b.real || sameFile(a.path, b.path)
	switch {
	case a.folder && b.folder:
		// Several LDAP sources may share one backup folder: each backup's
		// name carries the entry's ID and the value's fingerprint.
		return nil
	case a.folder && (same || inside(b.real, a.real)):
		return c.errorf(b.key, "%s lies inside the prune backup folder %s", b.self(), a.describe())
	case b.folder && (same || inside(a.real, b.real)):
		return c.errorf(b.key, "the prune backup folder %s holds %s: it must hold nothing else smimesync uses", b.self(), a.describe())
	case !same || !a.writes && !b.writes:
		return nil
	}
	return c.errorf(b.key, "%s is the same file as %s: one would overwrite the other", b.self(), a.describe())
}

// paths lists the files the configuration names or implies, absolute.
func (c *File) paths(configFile string) []configPath {
	var ps []configPath
	add := func(key, label, p string, writes, folder bool) {
		if p != "" {
			ps = append(ps, configPath{key: key, label: label, path: c.path(p), writes: writes, folder: folder})
		}
	}
	add("--config", "", configFile, false, false)
	for i, s := range c.sources() {
		key := c.sourceKey(i)
		if s.LDIF != nil {
			add(key+".ldif.path", "", s.LDIF.Path, false, false)
		}
		if l := s.LDAP; l != nil {
			add(key+".ldap.ca_file", "", l.CAFile, false, false)
			add(key+".ldap.bind.password_file", "", l.Bind.PasswordFile, false, false)
			add(key+".ldap.bind.keytab", "", l.Bind.Keytab, false, false)
			add(key+".ldap.bind.krb5_conf", "", l.Bind.Krb5Conf, false, false)
			add(key+".ldap.prune.backup_dir", "", l.Prune.BackupDir, true, true)
		}
	}
	for _, list := range []struct {
		key   string
		files []string
	}{{"policy.roots", c.Policy.Roots}, {"policy.intermediates", c.Policy.Intermediates}, {"policy.managed_cas", c.Policy.ManagedCAs}} {
		for i, f := range list.files {
			add(fmt.Sprintf("%s[%d]", list.key, i), "", f, false, false)
		}
	}
	if x := c.Sink.Exchange; x != nil {
		add("sink.exchange.auth.secret_file", "", x.Auth.SecretFile, false, false)
		add("sink.exchange.auth.certificate_file", "", x.Auth.CertificateFile, false, false)
		add("sink.exchange.auth.token_file", "", x.Auth.TokenFile, false, false)
	}
	if g := c.Sink.Graph; g != nil {
		add("sink.graph.auth.secret_file", "", g.Auth.Auth.SecretFile, false, false)
		add("sink.graph.auth.certificate_file", "", g.Auth.Auth.CertificateFile, false, false)
		add("sink.graph.auth.token_file", "", g.Auth.Auth.TokenFile, false, false)
	}
	if f := c.Sink.File; f != nil {
		add("sink.file.path", "", f.Path, true, false)
	}
	for i, name := range c.sinkNames() {
		st := c.Store(name, i)
		if st == nil {
			continue
		}
		label := "state.path"
		if i > 0 {
			label = fmt.Sprintf("the state of sink %s (beside state.path)", name)
		}
		// The store is its own lock (smimesync.BoltState). The JSON state
		// it imports, and that file's journal, are kept (renamed to a
		// backup) and must not be anything else's either.
		add("state.path", "the store of "+label, st.Path, true, false)
		if st.Import != "" {
			add("state.path", label, st.Import, true, false)
			add("state.path", "the journal of "+label, st.Import+".journal", true, false)
		}
	}
	if c.Report.Path != "" {
		add("report.path", "", c.Report.Path, true, false)
	} else if c.ReportPath() != "" {
		// The store, and the JSON report of an earlier release it
		// imports (kept, renamed to a backup).
		add("state.path", "the report store beside state.path", c.ReportPath(), true, false)
		add("state.path", "the JSON report beside state.path", c.ReportImport(), true, false)
	}
	switch {
	case c.Service.LogFile != "":
		add("service.log_file", "", c.Service.LogFile, true, false)
	case runtime.GOOS == "windows" && c.State.Path != "":
		// A Windows service logs beside the state (see File.LogFile).
		add("state.path", "the Windows service's log beside state.path", c.LogFile(true), true, false)
	}
	return ps
}

// sinkNames lists the configured sinks' names, in the order sinks builds
// them (their states are named by position: see File.Store).
func (c *File) sinkNames() []string {
	if c.Sink.File != nil {
		return []string{"file"}
	}
	var out []string
	if c.Sink.Exchange != nil {
		out = append(out, "exchange")
	}
	if c.Sink.Graph != nil {
		out = append(out, "graph")
	}
	return out
}

// resolvePath returns p with every symbolic link resolved, also when p, or
// the file a link points to, does not exist yet: the longest part that
// exists is resolved and the rest appended.
func resolvePath(p string) string {
	p = filepath.Clean(p)
	for range 64 { // a loop of links gives up and compares as spelled
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		if target, err := os.Readlink(p); err == nil { // a dangling link
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			p = filepath.Clean(target)
			continue
		}
		dir, base := filepath.Split(p)
		dir = filepath.Clean(dir)
		if dir == p || base == "" {
			return p
		}
		return filepath.Join(resolvePath(dir), base)
	}
	return p
}

// sameFile reports whether a and b exist and are one file (hard links).
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// CheckFile refuses a file the program would use beside those the
// configuration names (a plan file) when it is one of them: a file written
// (writes) may not be any file the configuration uses, and a file only
// read may not be one that smimesync writes; neither may lie inside a
// prune backup folder. It compares as checkPaths does (symbolic links
// resolved, hard links caught). The error is an *Error naming path and
// the file it collides with, but no key.
func (c *File) CheckFile(path string, writes bool) error {
	abs, err := filepath.Abs(c.name)
	if err != nil {
		abs = c.name
	}
	real := resolvePath(path)
	for _, p := range c.paths(abs) {
		pr := resolvePath(p.path)
		same := pr == real || sameFile(p.path, path)
		switch {
		case p.folder && (same || inside(real, pr)):
			return &Error{Msg: fmt.Sprintf("%s lies inside the prune backup folder %s: it must hold nothing else smimesync uses", path, p.describe())}
		case same && (writes || p.writes):
			return &Error{Msg: fmt.Sprintf("%s is the same file as %s: one would overwrite the other", path, p.describe())}
		}
	}
	return nil
}

// inside reports whether p lies strictly inside folder dir.
func inside(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
