package file

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// collector is a fake op.Output keeping what it receives.
type collector struct {
	mu        sync.Mutex
	schema    *arrow.Schema
	recs      []arrow.RecordBatch
	rejects   [][2]string
	rejectErr error
}

func (c *collector) Schema() *arrow.Schema { return c.schema }
func (c *collector) Emit(ctx context.Context, b batch.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, b.Rec)
	b.Ack.Done(nil)
	return nil
}
func (c *collector) Reject(record, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rejects = append(c.rejects, [2]string{record, reason})
	return c.rejectErr
}
func (c *collector) release() {
	for _, r := range c.recs {
		r.Release()
	}
}

// rows renders every row as JSON through arrow's marshalling.
func (c *collector) rows(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, rec := range c.recs {
		for r := 0; r < int(rec.NumRows()); r++ {
			var parts []string
			for i, f := range rec.Schema().Fields() {
				var v any
				if !rec.Column(i).IsNull(r) {
					v = rec.Column(i).GetOneForMarshal(r)
				}
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				parts = append(parts, f.Name+"="+string(b))
			}
			out = append(out, strings.Join(parts, " "))
		}
	}
	return out
}

func resolve(v *spec.Value) *arrow.Schema {
	if v == nil || len(v.Entries) == 0 {
		return nil
	}
	var fs []arrow.Field
	for _, e := range v.Entries {
		t, err := types.Parse(e.Value.Str)
		if err != nil {
			return nil
		}
		fs = append(fs, arrow.Field{Name: e.Key, Type: t, Nullable: true})
	}
	return arrow.NewSchema(fs, nil)
}

func prep(t *testing.T, text string) (*arrow.Schema, op.Constructor, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	f := source.NewFile("p.yaml", []byte(text))
	var errs source.Errors
	v := spec.Decode(f, doc.Content[0], Plugin.Spec.Config, &errs)
	s, ctor := Plugin.Prepare(&validate.Check{Config: v, Errs: &errs, Schema: resolve})
	return s, ctor, errs
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	writeParquet(t, filepath.Join(dir, "a.parquet"), memory.NewGoAllocator())
	tests := []struct{ name, cfg, err string }{
		{"json ok", `{path: "x/*.jsonl", schema: {a: int64}}`, ""},
		{"format set", `{path: "x/*.txt", format: csv, schema: {a: int64}, delimiter: ";"}`, ""},
		{"missing path", `{schema: {a: int64}, format: json}`, "p.yaml:1:1: missing required key 'path'"},
		{"bad glob", `{path: "x/[", schema: {a: int64}}`, `p.yaml:1:8: 'path': bad glob "x/[": syntax error in pattern`},
		{"unknown extension", `{path: "x/*.txt", schema: {a: int64}}`, `p.yaml:1:8: cannot tell the format of "x/*.txt" from its extension`},
		{"bad format", `{path: "x.txt", format: xml, schema: {a: int64}}`, `p.yaml:1:25: 'format' must be one of json, csv, parquet, not "xml"`},
		{"json needs schema", `{path: "x.jsonl"}`, "p.yaml:1:1: the json format needs a schema"},
		{"bad delimiter", `{path: "x.csv", delimiter: ";;", schema: {a: int64}}`, `p.yaml:1:28: 'delimiter' must be one character other than a quote or newline, not ";;"`},
		{"unsupported type for json", `{path: "x.jsonl", schema: {a: list<list<string>>}}`, "p.yaml:1:27: column 'a': type list<list<string>> cannot be read from json"},
		{"parquet no file no schema", `{path: "` + dir + `/none*.parquet"}`, `no parquet file matches`},
		{"parquet schema from file", `{path: "` + dir + `/*.parquet"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ctor, errs := prep(t, tt.cfg)
			if tt.err == "" {
				if len(errs) > 0 || ctor == nil || s == nil {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs.Error(), tt.err) {
				t.Fatalf("errors = %q, want %q", errs.Error(), tt.err)
			}
		})
	}
	s, _, _ := prep(t, `{path: "`+dir+`/*.parquet"}`)
	if got := s.String(); !strings.Contains(got, "n: type=int32") || !strings.Contains(got, "s: type=utf8") {
		t.Fatalf("inferred schema %s", got)
	}
}

func run(t *testing.T, mem memory.Allocator, cfg string, rows int, out *collector) error {
	t.Helper()
	s, ctor, errs := prep(t, cfg)
	if len(errs) > 0 {
		t.Fatal(errs.Error())
	}
	out.schema = s
	src, err := ctor(op.Resources{Alloc: mem, BatchRows: rows})
	if err != nil {
		t.Fatal(err)
	}
	return src.(op.Source).Run(context.Background(), out)
}

func TestJSON(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.jsonl"), `{"id": 3, "name": "c"}`+"\n")
	write(t, filepath.Join(dir, "a.jsonl"), "{\"id\": 1, \"name\": \"a\", \"x\": [1]}\r\n\n  \n{\"id\": \"bad\"}\n{\"id\": 2}\n{nope")
	out := &collector{}
	defer out.release()
	err := run(t, mem, `{path: "`+dir+`/*.jsonl", schema: {id: int64, name: string}}`, 2, out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.rows(t)
	want := []string{`id=1 name="a"`, `id=2 name=null`, `id=3 name="c"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s", strings.Join(got, "\n"))
	}
	if len(out.recs) != 2 || out.recs[0].NumRows() != 2 {
		t.Fatalf("batches: %d", len(out.recs))
	}
	a := filepath.Join(dir, "a.jsonl")
	wantRej := [][2]string{
		{`{"id": "bad"}`, a + `:4: field 'id': expected int64, got string "bad"`},
		{`{nope`, a + `:6: invalid JSON at offset 1: unexpected 'n', expected a string key`},
	}
	if len(out.rejects) != 2 || out.rejects[0] != wantRej[0] || out.rejects[1] != wantRej[1] {
		t.Fatalf("rejects: %q", out.rejects)
	}
}

func TestJSONLongLine(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	long := strings.Repeat("x", 3<<20)
	write(t, filepath.Join(dir, "a.jsonl"), `{"s":"`+long+`"}`+"\n"+`{"s":"y"}`)
	out := &collector{}
	defer out.release()
	if err := run(t, mem, `{path: "`+dir+`/a.jsonl", schema: {s: string}}`, 0, out); err != nil {
		t.Fatal(err)
	}
	if len(out.recs) != 1 || out.recs[0].NumRows() != 2 || out.recs[0].Column(0).(*array.String).Value(0) != long {
		t.Fatal("long line not read")
	}
}

func TestRejectError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.jsonl"), "{\"s\":1}\n{bad\n{\"s\":2}\n")
	out := &collector{rejectErr: errors.New("no dead-letter output")}
	defer out.release()
	err := run(t, mem, `{path: "`+dir+`/a.jsonl", schema: {s: int64}}`, 0, out)
	if err == nil || err.Error() != "no dead-letter output" {
		t.Fatalf("err = %v", err)
	}
}

func TestNoFiles(t *testing.T) {
	out := &collector{}
	err := run(t, memory.NewGoAllocator(), `{path: "`+t.TempDir()+`/*.jsonl", schema: {s: int64}}`, 0, out)
	if err == nil || !strings.Contains(err.Error(), "no file matches") {
		t.Fatalf("err = %v", err)
	}
}

func TestCancel(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.jsonl"), strings.Repeat("{\"s\":1}\n", 5000))
	_, ctor, _ := prep(t, `{path: "`+dir+`/a.jsonl", schema: {s: int64}}`)
	src, _ := ctor(op.Resources{Alloc: mem, BatchRows: 100})
	ctx, cancel := context.WithCancel(context.Background())
	out := &cancelOut{cancel: cancel}
	defer out.release()
	if err := src.(op.Source).Run(ctx, out); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if len(out.recs) > 11 {
		t.Fatalf("kept going after cancel: %d batches", len(out.recs))
	}
}

type cancelOut struct {
	collector
	cancel context.CancelFunc
}

func (c *cancelOut) Emit(ctx context.Context, b batch.Batch) error {
	c.collector.Emit(ctx, b)
	c.cancel()
	return nil
}

func TestCSV(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.csv"), "\ufeffname;id;extra;tags\n\"a;b\";1;z;\"[\"\"x\"\"]\"\nc;oops;z;\n;3\n")
	out := &collector{}
	defer out.release()
	err := run(t, mem, `{path: "`+dir+`/a.csv", delimiter: ";", schema: {id: int64, name: string, when: timestamp, tags: list<string>}}`, 0, out)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(out.rows(t), "\n")
	want := `id=1 name="a;b" when=null tags=["x"]` + "\n" + `id=3 name="" when=null tags=null`
	if got != want {
		t.Fatalf("rows:\n%s", got)
	}
	if len(out.rejects) != 1 || out.rejects[0][1] != filepath.Join(dir, "a.csv")+`:3: field 'id': expected int64, got string "oops"` {
		t.Fatalf("rejects %q", out.rejects)
	}

	write(t, filepath.Join(dir, "b.csv"), "1,x,extra\n2\n")
	out2 := &collector{}
	defer out2.release()
	if err := run(t, mem, `{path: "`+dir+`/b.csv", header: false, schema: {id: int64, name: string}}`, 0, out2); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(out2.rows(t), "\n"); got != "id=1 name=\"x\"\nid=2 name=null" {
		t.Fatalf("rows:\n%s", got)
	}
}

// writeParquet writes n: int32, s: string, t: timestamp[ms], l: list<string>.
func writeParquet(t *testing.T, path string, mem memory.Allocator) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "n", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "t", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "l", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	}, nil)
	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	rb.Field(0).(*array.Int32Builder).AppendValues([]int32{1, 2, 3}, []bool{true, true, false})
	rb.Field(1).(*array.StringBuilder).AppendValues([]string{"a", "b", "c"}, nil)
	rb.Field(2).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1000, 2000, 3000}, nil)
	lb := rb.Field(3).(*array.ListBuilder)
	lb.Append(true)
	lb.ValueBuilder().(*array.StringBuilder).Append("x")
	lb.AppendNull()
	lb.Append(true)
	rec := rb.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(schema, f, parquet.NewWriterProperties(parquet.WithAllocator(mem)), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParquet(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	writeParquet(t, filepath.Join(dir, "a.parquet"), mem)
	out := &collector{}
	defer out.release()
	err := run(t, mem, `{path: "`+dir+`/*.parquet", schema: {l: list<string>, t: timestamp, n: int64}}`, 2, out)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(out.rows(t), "\n")
	want := `l=["x"] t="1970-01-01T00:00:01Z" n=1` + "\n" + `l=null t="1970-01-01T00:00:02Z" n=2` + "\n" + `l=[] t="1970-01-01T00:00:03Z" n=null`
	if got != want {
		t.Fatalf("rows:\n%s", got)
	}
	for _, r := range out.recs {
		if !r.Schema().Equal(out.schema) {
			t.Fatalf("schema %s", r.Schema())
		}
	}

	out2 := &collector{}
	defer out2.release()
	err = run(t, mem, `{path: "`+dir+`/*.parquet", schema: {missing: int64}}`, 2, out2)
	if err == nil || !strings.Contains(err.Error(), "has no column 'missing'") {
		t.Fatalf("err = %v", err)
	}
	err = run(t, mem, `{path: "`+dir+`/*.parquet", schema: {s: int64}}`, 2, out2)
	if err == nil || !strings.Contains(err.Error(), "column 's' is string, declared int64") {
		t.Fatalf("err = %v", err)
	}

	// Without a schema the file's own is used.
	out3 := &collector{}
	defer out3.release()
	if err := run(t, mem, `{path: "`+dir+`/*.parquet"}`, 0, out3); err != nil {
		t.Fatal(err)
	}
	if len(out3.rows(t)) != 3 {
		t.Fatal("rows missing")
	}
}
