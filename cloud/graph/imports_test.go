package graph_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const msgraph = "github.com/microsoftgraph/msgraph-sdk-go"

// allowedMsgraph are the msgraph-sdk-go packages cloud/graph may import:
// the root package takes minutes and gigabytes to compile.
var allowedMsgraph = map[string]bool{
	msgraph + "/users":                              true,
	msgraph + "/models":                             true,
	msgraph + "/models/odataerrors":                 true,
	"github.com/microsoftgraph/msgraph-sdk-go-core": true,
}

// TestOnlyThisPackageImportsMsgraph parses every Go file of the module and
// fails if a package other than cloud/graph imports msgraph-sdk-go (or its
// core), or if cloud/graph imports more of it than users, models and core.
func TestOnlyThisPackageImportsMsgraph(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", root, err)
	}
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			// A file another engineer is editing may not parse; its
			// imports cannot be judged, but say so.
			t.Logf("skipping %s: %v", path, err)
			return nil
		}
		files++
		rel, _ := filepath.Rel(root, path)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, "github.com/microsoftgraph/") {
				continue
			}
			switch {
			case filepath.Dir(path) != self:
				t.Errorf("%s imports %s: only cloud/graph may import msgraph", rel, p)
			case !allowedMsgraph[p]:
				t.Errorf("%s imports %s: cloud/graph may import only %v", rel, p, keys(allowedMsgraph))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("parsed only %d files under %s", files, root)
	}
}

// TestEmulatorDoesNotDependOnMsgraph asks the go command for graphtest's
// dependencies: other packages' tests use it, and must not pay for
// compiling msgraph.
func TestEmulatorDoesNotDependOnMsgraph(t *testing.T) {
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to list dependencies with")
		}
	}
	out, err := exec.Command(gobin, "list", "-deps", "./graphtest").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/microsoftgraph/") || strings.HasPrefix(dep, "github.com/microsoft/kiota") {
			t.Errorf("graphtest depends on %s", dep)
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
