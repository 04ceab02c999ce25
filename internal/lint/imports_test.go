package lint

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/flowrun/flowrun/"

// rule forbids packages under dir (relative to the repository root) from
// importing paths with one of the prefixes in deny, except those in allow.
type rule struct {
	dir   string
	deny  []string
	allow []string
	why   string
}

var rules = []rule{
	{dir: "dsl", deny: []string{module + "runtime", module + "operators", module + "cmd"},
		why: "dsl is the bottom layer: it never imports the runtime or operators"},
	{dir: "runtime", deny: []string{module + "operators", module + "cmd"},
		why: "the runtime owns the operator contract (runtime/op) and never imports an operator"},
	{dir: "runtime/op", deny: []string{module + "runtime/exec", "github.com/IBM/sarama", "github.com/jackc/pgx"},
		why: "the SDK imports no executor and no client library"},
	{dir: "operators", deny: []string{module + "cmd"}, why: "operators never import the CLI"},
}

// clientLibs may appear only in the listed folders.
var clientLibs = map[string][]string{
	"github.com/IBM/sarama":                  {"operators/source/kafka", "operators/sink/kafka", "operators/kafkaclient", "bench/", "tests/"},
	"github.com/twmb/franz-go/pkg/kfake":     {"operators/kafkaclient", "operators/source/kafka", "operators/sink/kafka"},
	"github.com/apache/thrift":               {"operators/hbaseclient"},
	"github.com/apache/arrow-go/v18/parquet": {"operators/source/file", "operators/sink/file", "operators/lakeio", "operators/sink/lake", "operators/source/lake", "cmd/flowrun", "bench/", "tests/"},
	"github.com/jackc/pgx":                   {"operators/sink/postgres", "bench/", "tests/"},
}

func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatal("repository root not found")
	}
	return dir
}

// imports maps every Go file (relative path) to its imports.
func imports(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != dir && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != dir {
				return filepath.SkipDir // another module (bench/benthos)
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out[filepath.ToSlash(rel)] = append(out[filepath.ToSlash(rel)], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if s == strings.TrimSuffix(p, "/") || strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func TestImportBoundaries(t *testing.T) {
	all := imports(t, root(t))
	if len(all) < 50 {
		t.Fatalf("only %d Go files found", len(all))
	}
	for file, imps := range all {
		for _, r := range rules {
			if !strings.HasPrefix(file, r.dir+"/") {
				continue
			}
			for _, imp := range imps {
				// Tests may borrow fixtures (a generator, a decoder) from
				// higher layers; the rule is about what ships.
				if strings.HasSuffix(file, "_test.go") {
					continue
				}
				if hasPrefix(imp, r.deny) && !hasPrefix(imp, r.allow) {
					t.Errorf("%s imports %s: %s", file, imp, r.why)
				}
			}
		}
		for _, imp := range imps {
			for lib, where := range clientLibs {
				if (imp == strings.TrimSuffix(lib, "/") || strings.HasPrefix(imp, lib)) && !hasPrefix(file, where) {
					t.Errorf("%s imports %s, which belongs in %v only", file, imp, where)
				}
			}
		}
	}
}

// TestOperatorsDoNotImportEachOther: a concrete operator (operators/<kind>/
// <name>) imports shared libraries, never another concrete operator, so one
// can be added or removed without touching the others.
func TestOperatorsDoNotImportEachOther(t *testing.T) {
	operator := func(path string) string { // "operators/source/kafka" or ""
		parts := strings.Split(path, "/")
		if len(parts) < 3 || parts[0] != "operators" {
			return ""
		}
		switch parts[1] {
		case "source", "transform", "window", "sink":
			if parts[2] == "internal" {
				return ""
			}
			return strings.Join(parts[:3], "/")
		}
		return ""
	}
	for file, imps := range imports(t, root(t)) {
		own := operator(file)
		if own == "" {
			continue
		}
		for _, imp := range imps {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			other := operator(strings.TrimPrefix(imp, module))
			if other != "" && other != own && !strings.HasSuffix(file, "_test.go") {
				t.Errorf("%s (operator %s) imports operator %s", file, own, other)
			}
		}
	}
}
