// Package archtest checks rules about the code base itself: every package is
// documented, and the packages that must stay pure do no I/O.
package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/qbroker/qbroker"

type pkg struct {
	dir     string
	hasDoc  bool
	imports map[string][]string // import path → files importing it (non-test)
}

func loadPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*pkg{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "tools" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		p := out[rel]
		if p == nil {
			p = &pkg{dir: rel, imports: map[string][]string{}}
			out[rel] = p
		}
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name) || f.Doc != nil && f.Name.Name == "main" && strings.HasPrefix(f.Doc.Text(), "Command ") {
			p.hasDoc = true
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			p.imports[ip] = append(p.imports[ip], filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryPackageIsDocumented(t *testing.T) {
	for dir, p := range loadPackages(t) {
		if !p.hasDoc {
			t.Errorf("%s: no package doc comment (\"// Package x ...\")", dir)
		}
	}
}

// Pure packages take data in and give decisions or results out. I/O in them
// would make decisions depend on the environment and hide attack surface.
func TestPurePackagesDoNoIO(t *testing.T) {
	io := []string{"os", "os/exec", "net", "net/http", "database/sql", "io/ioutil", "syscall", "log", "log/slog"}
	pure := map[string][]string{
		"internal/core":            nil,
		"internal/circuit":         nil,
		"internal/circuit/diagram": nil, // drawings of untrusted programs
		"internal/circuit/qasm":    nil, // the parser of untrusted programs
		"internal/circuit/quil":    nil, // likewise, for Quil
		"internal/sim":             nil,
		"internal/policy":          {"load.go"}, // LoadFiles reads policy files; decisions never do
		"api":                      nil,
	}
	pkgs := loadPackages(t)
	for dir, allowed := range pure {
		p, ok := pkgs[dir]
		if !ok {
			t.Errorf("%s: package not found", dir)
			continue
		}
		for ip, files := range p.imports {
			if !slices.Contains(io, ip) {
				continue
			}
			for _, f := range files {
				if !slices.Contains(allowed, f) {
					t.Errorf("%s/%s imports %s; this package must not do I/O", dir, f, ip)
				}
			}
		}
	}
}

// Dependencies point inward: the gateway never touches the store (it asks
// the broker), nothing but the composition root and the CLI imports
// internal/server, and the api package imports only the standard library.
func TestDependencyDirection(t *testing.T) {
	pkgs := loadPackages(t)
	for dir, p := range pkgs {
		for ip := range p.imports {
			switch {
			case dir == "internal/gateway" && strings.HasPrefix(ip, module+"/internal/store"):
				t.Errorf("internal/gateway imports %s: the gateway must ask the broker, not the store", ip)
			case ip == module+"/internal/server" && dir != "internal/cli":
				t.Errorf("%s imports internal/server: only the CLI may", dir)
			case dir == "api" && strings.Contains(ip, "."):
				t.Errorf("api imports %s: wire types must stay standard-library only", ip)
			case strings.HasPrefix(dir, "internal/provider/") && strings.HasPrefix(ip, module+"/internal/provider/") && !strings.HasPrefix(ip, module+"/"+dir):
				t.Errorf("%s imports %s: providers never import each other", dir, ip)
			}
		}
	}
}

func TestMain(m *testing.M) {
	if _, err := os.Stat("../../go.mod"); err != nil {
		panic("archtest must run from internal/archtest")
	}
	os.Exit(m.Run())
}
