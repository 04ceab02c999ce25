package validate_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fakeOp is a test operator: sources read their schema from a SchemaRef
// field; everything else passes its input schema through.
type fakeOp struct {
	sp  spec.Spec
	sec ast.Section
}

func (o *fakeOp) OperatorSpec() *spec.Spec     { return &o.sp }
func (o *fakeOp) OperatorSection() ast.Section { return o.sec }
func (o *fakeOp) Check(c *validate.Check) (*arrow.Schema, any) {
	switch o.sec {
	case ast.Sources:
		return c.Schema(c.Config.Get("schema")), o.sp.Name
	case ast.Sinks:
		return nil, o.sp.Name
	}
	if o.sp.Name == "drop" {
		in := c.In()
		col := c.Config.String("column")
		idx := in.FieldIndices(col)
		if len(idx) == 0 {
			c.Errorf(c.Config.PosOf("column"), "no column '%s' in the input", col)
			return nil, nil
		}
		fields := append([]arrow.Field{}, in.Fields()[:idx[0]]...)
		fields = append(fields, in.Fields()[idx[0]+1:]...)
		return arrow.NewSchema(fields, nil), o.sp.Name
	}
	return c.In(), o.sp.Name
}

type fakeCatalog map[ast.Section]map[string]validate.Operator

func (c fakeCatalog) Lookup(s ast.Section, name string) (validate.Operator, bool) {
	o, ok := c[s][name]
	return o, ok
}

func (c fakeCatalog) Names(s ast.Section) []string {
	var out []string
	for n := range c[s] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func newCatalog() fakeCatalog {
	cat := fakeCatalog{}
	add := func(sec ast.Section, name string, cfg *spec.Field) {
		if cat[sec] == nil {
			cat[sec] = map[string]validate.Operator{}
		}
		cat[sec][name] = &fakeOp{sp: spec.Spec{Name: name, Summary: "test " + name, Config: cfg}, sec: sec}
	}
	add(ast.Sources, "gen", spec.Obj(
		spec.F("rows", spec.Int, "rows to generate").Def(10),
		spec.F("interval", spec.Duration, "time between batches").Def(time.Second),
		spec.F("schema", spec.SchemaRef, "output schema").Req(),
	))
	add(ast.Transforms, "pass", spec.Obj(spec.F("note", spec.String, "ignored")))
	add(ast.Transforms, "filter", &spec.Field{Kind: spec.Object, Scalar: "expr", Fields: []*spec.Field{spec.F("expr", spec.Expr, "keep rows where true").Req()}})
	add(ast.Transforms, "drop", spec.Obj(spec.F("column", spec.String, "column to drop").Req()))
	add(ast.Windows, "tumble", spec.Obj(spec.F("size", spec.Duration, "window length").Req()))
	add(ast.Sinks, "out", spec.Obj(
		spec.F("path", spec.String, "file to write").Req(),
		spec.F("format", spec.Enum, "file format").OneOf("json", "csv").Def("json"),
	))
	return cat
}

func lookup(name string) (string, bool) {
	if name == "DIR" {
		return "/tmp/out", true
	}
	return "", false
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatal("no testdata", err)
	}
	cat := newCatalog()
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, errs := validate.Load(f, text, lookup, cat)
			var got string
			if len(errs) > 0 {
				got = errs.Render()
			} else {
				var names []string
				for _, n := range res.Nodes {
					names = append(names, n.Name())
				}
				got = fmt.Sprintf("ok: %s\n", strings.Join(names, " "))
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestResultWiring(t *testing.T) {
	text, err := os.ReadFile("testdata/ok.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, errs := validate.Load("ok.yaml", text, lookup, newCatalog())
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	a, both, out, bad := res.Lookup("a"), res.Lookup("both"), res.Lookup("out"), res.Lookup("bad")
	if a.DeadLetter != bad || len(a.Consumers) != 1 || a.Consumers[0] != both {
		t.Errorf("a: dead letter %v consumers %v", a.DeadLetter, a.Consumers)
	}
	if len(both.Inputs) != 2 || both.Inputs[1].Name() != "b" || both.Output.NumFields() != 3 {
		t.Errorf("both: %v %v", both.Inputs, both.Output)
	}
	if out.Output != nil || out.Build != "out" || out.Config.String("format") != "csv" {
		t.Errorf("out: %+v", out)
	}
	if got := out.AST.Config.Content[1].Value; got != "/tmp/out/out/pins.jsonl" {
		t.Errorf("substituted path = %q", got)
	}
	if got := bad.AST.Config.Content[1].Value; got != "${literal}/dead.jsonl" {
		t.Errorf("escaped path = %q", got)
	}
	if w := res.Lookup("w"); w.Config.Duration("size").String() != "1m0s" {
		t.Errorf("window size %v", w.Config.Duration("size"))
	}
	if got := res.Pipeline.Vars; got["OUT"] != "out" || got["DIR"] != "/tmp/out" {
		t.Errorf("vars %v", got)
	}
}
