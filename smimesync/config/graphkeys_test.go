package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestGraphKeysMirror checks that the sink.graph keys this package reads
// (GraphKeys) are graph.Config's, read from its source (this package may
// not import cloud/graph), so that a typo is refused, a real key accepted,
// and GraphKeys.Decode fills every key of a graph.Config.
func TestGraphKeysMirror(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../cloud/graph/config.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	structs := map[string]*ast.StructType{}
	ast.Inspect(f, func(n ast.Node) bool {
		if ts, ok := n.(*ast.TypeSpec); ok {
			if st, ok := ts.Type.(*ast.StructType); ok {
				structs[ts.Name.Name] = st
			}
		}
		return true
	})
	// keys lists "key" and "key.sub" for the yaml keys of a struct of
	// cloud/graph/config.go.
	var keys func(name, prefix string) []string
	keys = func(name, prefix string) []string {
		var out []string
		for _, fld := range structs[name].Fields.List {
			if fld.Tag == nil {
				continue
			}
			tag, _ := strconv.Unquote(fld.Tag.Value)
			k, _, _ := strings.Cut(reflect.StructTag(tag).Get("yaml"), ",")
			if k == "" || k == "-" {
				continue
			}
			out = append(out, prefix+k)
			if id, ok := fld.Type.(*ast.Ident); ok && structs[id.Name] != nil {
				out = append(out, keys(id.Name, prefix+k+".")...)
			}
		}
		return out
	}
	want := keys("Config", "")
	var mirror func(t reflect.Type, prefix string) []string
	mirror = func(t reflect.Type, prefix string) []string {
		var out []string
		for i := 0; i < t.NumField(); i++ {
			k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			out = append(out, prefix+k)
			if ft := t.Field(i).Type; ft.Kind() == reflect.Struct && ft.PkgPath() == "" {
				out = append(out, mirror(ft, prefix+k+".")...)
			}
		}
		return out
	}
	got := mirror(reflect.TypeFor[GraphKeys](), "")
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) || len(want) < 10 {
		t.Errorf("GraphKeys has keys\n%v\ngraph.Config has\n%v", got, want)
	}
}
