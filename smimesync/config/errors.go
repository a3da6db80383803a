package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/smimesync"
)

// Error is a slip in the configuration file. It names the file, the line
// and the key's YAML path ("source.ldap.bind.password_env"), never a Go
// type:
//
//	smimesync.yaml:12: sink.exchange.page_size: 5000 is out of range: use 0 (the default, 1000) or 1 to 1000
//
// A program that reads its configuration with this package treats every
// *Error as a usage error (examples/smimesync exits 2).
type Error struct {
	// File is the configuration file as named to Load or Parse; empty
	// when the error is not about one file's content.
	File string
	// Line is the line of the key, or of its nearest ancestor the file
	// holds; 0 when unknown.
	Line int
	// Key is the YAML path of the key ("sources[1].ldap.url"); empty for
	// the file as a whole.
	Key string
	// Msg says what is wrong with it.
	Msg string
	// Err is the cause, when there is one (an *ldapsource.ConfigError, a
	// *yaml.TypeError's message, an I/O error).
	Err error
}

// Error is "file:line: key: msg", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Key)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Bounds of the numeric keys that are not left to the libraries.
const (
	// maxConcurrency bounds concurrency and sink.exchange.concurrency,
	// as the library bounds a Syncer's.
	maxConcurrency = smimesync.MaxConcurrency
)

// numericBounds are the keys with an upper bound, or a negative value with
// a meaning; every other integer or duration key must not be negative. A
// path matches with its list indexes removed (sources.ldap.page_size).
var numericBounds = map[string]struct {
	min, max int64
	why      string
}{
	"concurrency":                    {0, maxConcurrency, fmt.Sprintf("0 (the default) or 1 to %d", maxConcurrency)},
	"sink.exchange.concurrency":      {0, maxConcurrency, fmt.Sprintf("0 (the default) or 1 to %d", maxConcurrency)},
	"sink.exchange.page_size":        {0, 1000, "0 (the default, 1000) or 1 to 1000"},
	"sink.graph.page_size":           {0, 999, "0 (the default, 999) or 1 to 999"},
	"sink.graph.batch_size":          {0, 20, "0 (the default, 20) or 1 to 20"},
	"sink.graph.batches_in_flight":   {0, maxConcurrency, fmt.Sprintf("0 (the default) or 1 to %d", maxConcurrency)},
	"sink.graph.write_budget.writes": {-1, 1 << 62, "-1 (pacing off), 0 (the default) or 1 or more"},
	"guard.max_removals":             {-1, 1 << 62, "-1 (the guard off) or 1 or more"},
}

// decode decodes b strictly (every section refuses unknown keys) and
// keeps its node tree, so that later errors can name a key's line.
func decode(b []byte, file string) (*File, error) {
	cfg := &File{name: file, stores: &stateStores{}}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, syntaxError(file, err)
	}
	if len(root.Content) == 0 {
		return nil, &Error{File: file, Msg: "empty configuration"}
	}
	cfg.root = root.Content[0]
	// The decoder's strict mode does not reach into a type's own
	// UnmarshalYAML: no configuration type may have one that decodes a
	// struct (see TestConfigTypoInEverySection).
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, syntaxError(file, err)
		}
		var errs []error
		for _, m := range te.Errors {
			errs = append(errs, cfg.typeError(m))
		}
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func syntaxError(file string, err error) error {
	e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	return e
}

var (
	unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type`)
	cannotRE       = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into")
)

// typeError turns one message of a yaml.TypeError into an *Error
// naming the YAML path.
func (c *File) typeError(m string) error {
	e := &Error{File: c.name, Msg: m}
	lm := lineRE.FindStringSubmatch(m)
	if lm == nil {
		return e
	}
	e.Line, _ = strconv.Atoi(lm[1])
	e.Msg = lm[2]
	if fm := unknownFieldRE.FindStringSubmatch(lm[2]); fm != nil {
		if p, ok := findKey(c.root, "", func(k, _ *yaml.Node) bool { return k.Line == e.Line && k.Value == fm[1] }); ok {
			e.Key = p
			e.Msg = "unknown key"
			if known := knownKeys(parentPath(p)); len(known) > 0 {
				e.Msg += " (known here: " + strings.Join(known, ", ") + ")"
			}
		}
		return e
	}
	if cm := cannotRE.FindStringSubmatch(lm[2]); cm != nil {
		p, ok := findKey(c.root, "", func(_, v *yaml.Node) bool {
			return v.Line == e.Line && (cm[2] == "" || v.Kind == yaml.ScalarNode && v.Value == cm[2])
		})
		if ok {
			e.Key = p
			got := strings.TrimPrefix(cm[1], "!!")
			if cm[2] != "" {
				got = strconv.Quote(cm[2])
			} else {
				got = "a " + map[string]string{"seq": "list", "map": "mapping"}[got]
			}
			e.Msg = got + " is not " + describe(typeAt(p))
		}
	}
	return e
}

// describe says in words what a YAML value of type t looks like.
func describe(t reflect.Type) string {
	if t == nil {
		return "valid here"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "a duration (such as 30s, 5m or 1h)"
	case t == reflect.TypeFor[ldapsource.StringList]():
		return "a string or a list of strings"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	return "valid here"
}

// findKey walks the node tree in document order and returns the YAML path
// of the last mapping entry for which match is true (the innermost, on a
// line that holds several).
func findKey(n *yaml.Node, path string, match func(k, v *yaml.Node) bool) (string, bool) {
	var found string
	var ok bool
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if match(k, v) {
				found, ok = p, true
			}
			if f, o := findKey(v, p, match); o {
				found, ok = f, true
			}
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			if f, o := findKey(v, fmt.Sprintf("%s[%d]", path, i), match); o {
				found, ok = f, true
			}
		}
	}
	return found, ok
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// splitPath splits "sources[1].ldap.url" into sources, [1], ldap, url.
func splitPath(p string) []string {
	var out []string
	for _, seg := range strings.Split(p, ".") {
		name, idx, _ := strings.Cut(seg, "[")
		if name != "" {
			out = append(out, name)
		}
		for idx != "" {
			var i string
			i, idx, _ = strings.Cut(idx, "[")
			out = append(out, "["+i)
		}
	}
	return out
}

func parentPath(p string) string {
	segs := splitPath(p)
	if len(segs) == 0 {
		return ""
	}
	var b strings.Builder
	for i, s := range segs[:len(segs)-1] {
		if i > 0 && !strings.HasPrefix(s, "[") {
			b.WriteString(".")
		}
		b.WriteString(s)
	}
	return b.String()
}

// line returns the line of the key at path, or of its nearest ancestor
// that the file holds; 0 when none.
func (c *File) line(path string) int {
	n, line := c.root, 0
	if n != nil {
		line = n.Line
	}
	for _, seg := range splitPath(path) {
		if n == nil {
			break
		}
		var next *yaml.Node
		switch {
		case strings.HasPrefix(seg, "["):
			i, err := strconv.Atoi(strings.TrimSuffix(seg[1:], "]"))
			if n.Kind == yaml.SequenceNode && err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		case n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg {
					next = n.Content[i+1]
					line = n.Content[i].Line
				}
			}
		}
		n = next
	}
	return line
}

// errorf returns an *Error for the key at path.
func (c *File) errorf(path, format string, args ...any) error {
	return &Error{File: c.name, Line: c.line(path), Key: path, Msg: fmt.Sprintf(format, args...)}
}

// sourceKey is the YAML path of the i-th source.
func (c *File) sourceKey(i int) string {
	if c.Source != nil {
		return "source"
	}
	return fmt.Sprintf("sources[%d]", i)
}

// sectionError maps a library's configuration errors, found in err, to
// *Errors under the section at prefix (source.ldap, sink.exchange):
// each names its key and line. Any other error names the section.
func (c *File) sectionError(prefix string, err error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok && !isLeafConfigError(err) {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, c.sectionError(prefix, e))
		}
		return errors.Join(errs...)
	}
	var le *ldapsource.ConfigError
	if errors.As(err, &le) {
		key := joinPath(prefix, le.Field)
		return &Error{File: c.name, Line: c.line(key), Key: key, Msg: le.Reason, Err: err}
	}
	var xe *exchange.ConfigError
	if errors.As(err, &xe) {
		key := joinPath(prefix, xe.Field)
		return &Error{File: c.name, Line: c.line(key), Key: key, Msg: xe.Reason, Err: err}
	}
	var ae *azauth.ConfigError
	if errors.As(err, &ae) {
		key := joinPath(prefix, ae.Field)
		return &Error{File: c.name, Line: c.line(key), Key: key, Msg: ae.Reason, Err: err}
	}
	return &Error{File: c.name, Line: c.line(prefix), Key: prefix, Msg: err.Error(), Err: err}
}

// isLeafConfigError reports whether err is itself a library's
// configuration error (ldapsource's unwraps to a list).
func isLeafConfigError(err error) bool {
	_, ok := err.(*ldapsource.ConfigError)
	return ok
}

// PassError maps an error of a pass (Syncer.Plan) that a configuration
// slip caused (a password variable that is not set, a base DN outside the
// server's naming contexts: an ldapsource.ConfigError) to an *Error naming
// the key and its line; other errors are returned as they are.
func (c *File) PassError(err error) error {
	var le *ldapsource.ConfigError
	if err == nil || !errors.As(err, &le) {
		return err
	}
	i := 0
	var se *directory.SourceError
	if errors.As(err, &se) {
		i = slices.IndexFunc(c.Sources, func(s Source) bool { return s.Name == se.Source })
	}
	key := joinPath(c.sourceKey(max(i, 0)), "ldap."+le.Field)
	return &Error{File: c.name, Line: c.line(key), Key: key, Msg: le.Reason, Err: err}
}

// checkNumbers refuses negative integers and durations anywhere in the
// configuration, and values outside numericBounds.
func (c *File) checkNumbers() error {
	var errs []error
	walkNumbers(reflect.ValueOf(c).Elem(), "", func(path string, v int64) {
		b, bounded := numericBounds[stripIndexes(path)]
		switch {
		case bounded && (v < b.min || v > b.max):
			errs = append(errs, c.errorf(path, "%d is out of range: use %s", v, b.why))
		case !bounded && v < 0:
			errs = append(errs, c.errorf(path, "must not be negative"))
		}
	})
	return errors.Join(errs...)
}

func stripIndexes(p string) string {
	var b strings.Builder
	depth := 0
	for _, r := range p {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// walkNumbers calls fn for every integer or duration field with a yaml
// key under v.
func walkNumbers(v reflect.Value, path string, fn func(string, int64)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkNumbers(v.Elem(), path, fn)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walkNumbers(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		fn(path, v.Int())
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name, inline, ok := yamlKey(t.Field(i))
			if !ok {
				continue
			}
			p := path
			if !inline {
				p = joinPath(path, name)
			}
			walkNumbers(v.Field(i), p, fn)
		}
	}
}

// yamlKey returns a struct field's YAML key, whether it is inlined, and
// whether the configuration reads it at all.
func yamlKey(f reflect.StructField) (string, bool, bool) {
	tag, has := f.Tag.Lookup("yaml")
	name, opts, _ := strings.Cut(tag, ",")
	switch {
	case name == "-":
		return "", false, false
	case slices.Contains(strings.Split(opts, ","), "inline"):
		return "", true, true
	case !has || !f.IsExported():
		return "", false, false
	case name == "":
		name = strings.ToLower(f.Name)
	}
	return name, false, true
}

// fieldsOf returns the YAML keys of struct type t, inlined ones included.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]reflect.Type{}
	if t == nil || t.Kind() != reflect.Struct {
		return out
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, inline, ok := yamlKey(f)
		switch {
		case !ok:
		case inline:
			for k, v := range fieldsOf(f.Type) {
				out[k] = v
			}
		default:
			out[name] = f.Type
		}
	}
	return out
}

// typeAt returns the Go type the key at path decodes into; nil when the
// configuration has no such key.
func typeAt(path string) reflect.Type {
	t := reflect.TypeFor[File]()
	for _, seg := range splitPath(path) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if strings.HasPrefix(seg, "[") {
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
			continue
		}
		ft, ok := fieldsOf(t)[seg]
		if !ok {
			return nil
		}
		t = ft
	}
	return t
}

// knownKeys lists the keys of the section at path, sorted.
func knownKeys(path string) []string {
	t := typeAt(path)
	if t == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	var keys []string
	for k := range fieldsOf(t) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
