package exprc

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
)

var update = flag.Bool("update", false, "rewrite golden files")

var pinSchema = arrow.NewSchema([]arrow.Field{
	{Name: "index", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "title", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "follower_count", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "save_location", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "is_video", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "created", Type: types.Timestamp, Nullable: true},
	{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
}, nil)

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// place embeds an expression in a small pipeline file in the given YAML
// style and returns its ExprSrc as spec.Decode would.
func place(name, expr, style string) spec.ExprSrc {
	head := "transforms:\n  t:\n    filter: "
	var text string
	src := spec.ExprSrc{Src: expr}
	switch style {
	case "plain":
		text = head + expr + "\n"
		src.Pos = source.Pos{Line: 3, Column: 13}
	case "quoted":
		text = head + `"` + expr + "\"\n"
		src.Pos = source.Pos{Line: 3, Column: 13}
		src.Quoted = true
	case "block":
		text = head + "|\n"
		for _, l := range strings.Split(expr, "\n") {
			text += "      " + l + "\n"
		}
		src.Pos = source.Pos{Line: 4, Column: 7}
	}
	src.Pos.File = source.NewFile(name+".yaml", []byte(text))
	return src
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name, expr, style string
		opts              []Option
	}{
		{"unknown-column", "titel != nil", "plain", nil},
		{"unknown-column-quoted", `parse_count(folower_count) > 10`, "quoted", nil},
		{"unknown-column-block", "index > 3 &&\n  titel != \"\"", "block", nil},
		{"unknown-function", "parse_cont(follower_count)", "plain", nil},
		{"unknown-function-far", "frobnicate(title)", "plain", nil},
		{"type-mismatch", "title + 1", "plain", nil},
		{"type-mismatch-quoted", "index + title", "quoted", nil},
		{"bad-argument", "parse_count(is_video)", "plain", nil},
		{"syntax", "index > ", "plain", nil},
		{"syntax-block", "index > 1 &&\n(title", "block", nil},
		{"want-bool", "title", "plain", []Option{WantBool()}},
		{"want-bool-named", "index", "plain", []Option{WantBool(), Name("where")}},
		{"want-type", "title", "plain", []Option{WantType(arrow.PrimitiveTypes.Int64)}},
		{"untyped", `fromJSON(title)`, "plain", nil},
		{"bad-regexp", `regex_match(title, 'a(b')`, "quoted", nil},
		{"empty", "  ", "plain", nil},
	}
	var out strings.Builder
	for _, c := range cases {
		p, errs := Compile(place(c.name, c.expr, c.style), pinSchema, c.opts...)
		fmt.Fprintf(&out, "== %s: %s\n", c.name, strings.ReplaceAll(c.expr, "\n", `\n`))
		if p != nil || len(errs) == 0 {
			t.Errorf("%s: compiled without error", c.name)
			continue
		}
		out.WriteString(errs.Render())
	}
	golden(t, "testdata/errors.golden", out.String())
}

func TestCompileOK(t *testing.T) {
	cases := []struct {
		expr string
		opts []Option
		typ  string
		cols []int
	}{
		{"parse_count(follower_count)", nil, "int64", []int{2}},
		{`trimPrefix(save_location, "Local save in ")`, nil, "string", []int{3}},
		{"title != nil && index > 3", []Option{WantBool()}, "bool", []int{0, 1}},
		{"coalesce(score, 0)", nil, "float64", []int{4}},
		{"index", []Option{WantType(arrow.PrimitiveTypes.Float64)}, "float64", []int{0}},
		{"to_timestamp(title)", nil, "timestamp", []int{1}},
		{"created", nil, "timestamp", []int{6}},
		{`split(title, " ")`, nil, "list<string>", []int{1}},
		{`$env["title"]`, nil, "string", []int{1}},
		{`int($env[title])`, nil, "int64", []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"len(tags) > 0 ? 1 : 2", nil, "int64", []int{7}},
		{"1 + 2", nil, "int64", nil},
	}
	for _, c := range cases {
		p, errs := Compile(spec.ExprSrc{Src: c.expr}, pinSchema, c.opts...)
		if errs != nil {
			t.Errorf("%s: %v", c.expr, errs)
			continue
		}
		if got := types.Name(p.Type()); got != c.typ {
			t.Errorf("%s: type %s, want %s", c.expr, got, c.typ)
		}
		if !reflect.DeepEqual(p.Columns(), c.cols) {
			t.Errorf("%s: columns %v, want %v", c.expr, p.Columns(), c.cols)
		}
		if p.Source() != c.expr {
			t.Errorf("Source() = %q", p.Source())
		}
	}
}

// record builds a batch over pinSchema from rows of Go values.
func record(t testing.TB, mem memory.Allocator, rows [][]any) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, pinSchema)
	defer b.Release()
	apps := make([]arrowx.Appender, len(pinSchema.Fields()))
	for i := range apps {
		apps[i] = arrowx.NewAppender(b.Field(i))
	}
	for _, r := range rows {
		for i, v := range r {
			if err := apps[i](v); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.NewRecordBatch()
}

func TestEval(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ts := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	rec := record(t, mem, [][]any{
		{1, "DIY ideas", "124k", "Local save in /data/a", 2.5, true, ts, []string{"x", "y"}},
		{2, nil, "1.2k", nil, nil, nil, nil, nil},
		{3, " Travel ", "User Info Error", "Local save in /b", 0.5, false, ts, []string{}},
	})
	defer rec.Release()
	cases := []struct {
		expr string
		want []any // per row; an error is written as "error: <substring>"
	}{
		{"parse_count(follower_count)", []any{124000, 1200, `error: parse_count: cannot parse "User Info Error"`}},
		{`trimPrefix(save_location, "Local save in ")`, []any{"/data/a", nil, "/b"}},
		{"title != nil", []any{true, false, true}},
		{"upper(trim(title))", []any{"DIY IDEAS", nil, "TRAVEL"}},
		{"coalesce(score, 0)", []any{2.5, 0.0, 0.5}},
		{"coalesce(title, \"none\")", []any{"DIY ideas", "none", " Travel "}},
		{"nullif(follower_count, \"User Info Error\")", []any{"124k", "1.2k", nil}},
		{"is_video ? 1 : 0", []any{1, `error: `, 0}},
		{"created", []any{ts, nil, ts}},
		{"tags", []any{[]string{"x", "y"}, nil, []string{}}},
		{"len(tags ?? [])", []any{2, 0, 0}},
		{"index * 2", []any{2, 4, 6}},
		{"to_string(index) + \"-\" + lower(title ?? \"\")", []any{"1-diy ideas", "2-", "3- travel "}},
		{"hash(title) == hash(title)", []any{true, true, true}},
		{"title == \"DIY ideas\"", []any{true, false, false}},
		{"title != \"DIY ideas\"", []any{false, true, true}},
		{"hash(title ?? \"\") == hash(\"\")", []any{false, true, false}},
		{"split(title, \" \")", []any{[]string{"DIY", "ideas"}, nil, []string{"", "Travel", ""}}},
		{"regex_replace(save_location, \"^.* \", \"\")", []any{"/data/a", nil, "/b"}},
		{"int(score)", []any{2, nil, 0}},
		{"to_bool(follower_count)", []any{`error: to_bool: cannot parse "124k"`, `error: `, `error: `}},
	}
	for _, c := range cases {
		p, errs := Compile(spec.ExprSrc{Src: c.expr}, pinSchema)
		if errs != nil {
			t.Errorf("%s: %v", c.expr, errs)
			continue
		}
		ev := p.NewEvaluator()
		for pass := 0; pass < 2; pass++ { // rebinding reuses the evaluator
			ev.Bind(rec)
			for row, want := range c.want {
				got, err := ev.Eval(row)
				if w, ok := want.(string); ok && strings.HasPrefix(w, "error: ") {
					if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(w, "error: ")) {
						t.Errorf("%s row %d: got %v, %v; want %s", c.expr, row, got, err, w)
					}
					continue
				}
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("%s row %d: got %#v, %v; want %#v", c.expr, row, got, err, want)
				}
			}
		}
	}
}

func TestEvalError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := record(t, mem, [][]any{{1, "t", "User Info Error", nil, nil, nil, nil, nil}})
	defer rec.Release()
	src := place("eval", "parse_count(follower_count)", "plain")
	p, errs := Compile(src, pinSchema)
	if errs != nil {
		t.Fatal(errs)
	}
	ev := p.NewEvaluator()
	ev.Bind(rec)
	_, err := ev.Eval(0)
	want := `eval.yaml:3:13: expression "parse_count(follower_count)": parse_count: cannot parse "User Info Error"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Expr != src.Src {
		t.Fatalf("not an EvalError: %#v", err)
	}
}

// TestNilSemantics calls every function with a nil main input: the result
// is nil, never a panic or error.
func TestNilSemantics(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewRecordBuilder(mem, schema)
	b.Field(0).AppendNull()
	b.Field(1).AppendNull()
	rec := b.NewRecordBatch()
	b.Release()
	defer rec.Release()
	calls := map[string]string{
		"parse_count": "parse_count(s)", "nullif": `nullif(s, "x")`, "null_if_empty": "null_if_empty(s)",
		"coalesce": "coalesce(s, s)", "split": `split(s, ",")`, "trim": "trim(s)", "trimPrefix": `trimPrefix(s, "a")`,
		"trimSuffix": `trimSuffix(s, "a")`, "upper": "upper(s)", "lower": "lower(s)", "replace": `replace(s, "a", "b")`,
		"regex_match": `regex_match(s, "a")`, "regex_replace": `regex_replace(s, "a", "b")`, "to_timestamp": "to_timestamp(s)",
		"hash": "hash(s)", "bucket": "bucket(s, 3)", "to_bool": "to_bool(s)", "to_int": "to_int(s)", "to_float": "to_float(n)", "to_string": "to_string(n)",
		"int": "int(s)", "float": "float(s)", "string": "string(n)",
	}
	for _, d := range Docs() {
		if d.Name == "now" {
			continue
		}
		call, ok := calls[d.Name]
		if !ok {
			t.Errorf("no nil test for %s", d.Name)
			continue
		}
		p, errs := Compile(spec.ExprSrc{Src: call}, schema)
		if errs != nil {
			t.Errorf("%s: %v", call, errs)
			continue
		}
		ev := p.NewEvaluator()
		ev.Bind(rec)
		if got, err := ev.Eval(0); got != nil || err != nil {
			t.Errorf("%s: got %v, %v; want nil", call, got, err)
		}
	}
}

func TestParseCount(t *testing.T) {
	cases := map[string]any{
		"523": 523, "124k": 124000, "1.2k": 1200, "6M": 6000000, "1.5B": 1500000000, " 12 ": 12,
		"10K": 10000, "1,234": 1234, "0": 0, "": nil, "2.5 m": 2500000,
	}
	for in, want := range cases {
		got, err := parseCount(in)
		if err != nil || got != want {
			t.Errorf("%q: got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"User Info Error", "k", "1.2.3k", "NaN", "Infk", "0x10", "99999999999B"} {
		if got, err := parseCount(bad); err == nil {
			t.Errorf("%q: got %v, want error", bad, got)
		}
	}
	if _, err := parseCount("User Info Error"); err.Error() != `parse_count: cannot parse "User Info Error"` {
		t.Errorf("message: %v", err)
	}
}

// TestDocs runs every documented example and regenerates docs/functions.md.
func TestDocs(t *testing.T) {
	var md strings.Builder
	md.WriteString("# Expression functions\n\n<!-- Generated by `go test ./dsl/exprc -run TestDocs -update`; do not edit. -->\n\n")
	md.WriteString("Expressions (`filter`, `map`, ...) are [expr-lang](https://expr-lang.org/docs/language-definition) ")
	md.WriteString("with one variable per column. A null column value is `nil`; every function below returns `nil` when its first argument is `nil`. ")
	md.WriteString("The other expr-lang builtins (`len`, `hasPrefix`, `join`, `round`, ...) are available unchanged.\n\n")
	md.WriteString("Nulls: `==` and `!=` treat null as a value (`category == \"art\"` is false for a null category, `x == nil` tests for null). ")
	md.WriteString("Arithmetic, ordering (`<`, `>`), `&&`/`||` and `?:` on a null fail the row, which goes to the node's dead-letter output; ")
	md.WriteString("give a default with `??` (`(follower_count ?? 0) > 1000`) or `coalesce`.\n\n")
	for _, d := range Docs() {
		p, errs := Compile(spec.ExprSrc{Src: d.Example}, arrow.NewSchema(nil, nil))
		if errs != nil {
			t.Errorf("%s: example %q: %v", d.Name, d.Example, errs)
			continue
		}
		ev := p.NewEvaluator()
		got, err := ev.Eval(0)
		if err != nil || fmt.Sprintf("%v", got) != d.Result {
			t.Errorf("%s: example %q = %v, %v; documented %q", d.Name, d.Example, got, err, d.Result)
		}
		fmt.Fprintf(&md, "## %s\n\n`%s`\n\n%s\n\n```\n%s  # => %s\n```\n\n", d.Name, d.Signature, d.Doc, d.Example, d.Result)
	}
	golden(t, filepath.Join("..", "..", "docs", "functions.md"), md.String())
}

// TestShared evaluates one Program from several goroutines, each with its
// own Evaluator (run with -race).
func TestShared(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := record(t, mem, [][]any{{1, "a", "2k", "x", nil, nil, nil, nil}})
	defer rec.Release()
	p, errs := Compile(spec.ExprSrc{Src: `regex_match(title, title) && parse_count(follower_count) == 2000`}, pinSchema)
	if errs != nil {
		t.Fatal(errs)
	}
	done := make(chan error, 4)
	for range 4 {
		go func() {
			ev := p.NewEvaluator()
			ev.Bind(rec)
			for range 100 {
				if got, err := ev.Eval(0); err != nil || got != true {
					done <- fmt.Errorf("got %v, %v", got, err)
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestNullOperatorMessage(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := record(t, mem, [][]any{{nil, nil, nil, nil, nil, nil, nil, nil}})
	defer rec.Release()
	for _, src := range []string{"index > 100", "score * 2 > 1.0", "is_video ? 1 : 0", "parse_count(title) + 3 > 0"} {
		p, errs := Compile(spec.ExprSrc{Src: src}, pinSchema)
		if errs != nil {
			t.Fatal(errs)
		}
		ev := p.NewEvaluator()
		ev.Bind(rec)
		_, err := ev.Eval(0)
		if err == nil || !strings.Contains(err.Error(), "a null value reached an operation") {
			t.Errorf("%s: got %v", src, err)
		}
	}
}
