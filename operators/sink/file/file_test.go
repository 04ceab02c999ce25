package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/codec/jsondec"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "at", Type: types.Timestamp, Nullable: true},
	{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
}, nil)

func prep(t *testing.T, text string, upstream ...validate.Upstream) (op.Constructor, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	f := source.NewFile("p.yaml", []byte(text))
	var errs source.Errors
	v := spec.Decode(f, doc.Content[0], Plugin.Spec.Config, &errs)
	node := &ast.Node{Name: "out", Type: "file", TypePos: source.Pos{File: f, Line: 1, Column: 1}}
	out, ctor := Plugin.Prepare(&validate.Check{Node: node, Config: v, Errs: &errs, Upstream: upstream,
		Inputs: []validate.Input{{Name: "in", Schema: schema}}})
	if out != nil {
		t.Fatal("a sink has no output schema")
	}
	return ctor, errs
}

func TestPrepare(t *testing.T) {
	kafka := validate.Upstream{Name: "posts", Type: "kafka", Flow: validate.Flow{Unbounded: true, Commits: "offsets would never commit"}}
	once := validate.Upstream{Name: "posts", Type: "kafka", Flow: validate.Flow{Commits: "offsets would never commit"}}
	gen := validate.Upstream{Name: "gen", Type: "generate", Flow: validate.Flow{Unbounded: true}}
	files := validate.Upstream{Name: "in", Type: "file"}
	tests := []struct {
		name, cfg string
		up        []validate.Upstream
		err       string
	}{
		{"json", `{path: out/x.jsonl}`, nil, ""},
		{"parquet", `{path: out/x.parquet, compression: zstd}`, nil, ""},
		{"explicit format", `{path: out/x, format: json, append: true}`, nil, ""},
		{"unknown ext", `{path: out/x.txt}`, nil, `p.yaml:1:8: cannot tell the format of "out/x.txt" from its extension`},
		{"append parquet", `{path: x.parquet, append: true}`, nil, ""},
		{"replace behind a bounded source", `{path: x.parquet, append: false}`, []validate.Upstream{files}, ""},
		{"replace json behind kafka", `{path: x.jsonl, append: false}`, []validate.Upstream{files, once},
			`p.yaml:1:25: 'append: false' replaces x.jsonl at every start, but the kafka source 'posts' commits what this sink acknowledged`},
		{"replace parquet behind kafka", `{path: x.parquet, append: false}`, []validate.Upstream{once}, `p.yaml:1:27: 'append: false' replaces x.parquet`},
		{"json behind kafka", `{path: x.jsonl}`, []validate.Upstream{kafka}, ""},
		{"parquet behind kafka --once", `{path: x.parquet}`, []validate.Upstream{once}, ""},
		{"parquet behind kafka", `{path: x.parquet}`, []validate.Upstream{gen, kafka},
			`p.yaml:1:1: the parquet file sink acknowledges only when the run ends; behind the unbounded kafka source 'posts' offsets would never commit`},
		{"parquet behind generate", `{path: x.parquet}`, []validate.Upstream{gen},
			`p.yaml:1:1: the parquet file sink acknowledges only when the run ends; behind the unbounded generate source 'gen' every acknowledgement would be held`},
		{"bad compression", `{path: x.parquet, compression: lzo}`, nil, `'compression' must be one of snappy, zstd, none, not "lzo"`},
		{"row groups", `{path: x.parquet, row_group_rows: 0}`, nil, `'row_group_rows' must be positive`},
		{"missing path", `{format: json}`, nil, `missing required key 'path'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctor, errs := prep(t, tt.cfg, tt.up...)
			if tt.err == "" {
				if len(errs) > 0 || ctor == nil {
					t.Fatalf("unexpected errors %v", errs)
				}
				return
			}
			if !strings.Contains(errs.Error(), tt.err) {
				t.Fatalf("errors = %q, want %q", errs.Error(), tt.err)
			}
		})
	}
}

func records(t testing.TB, mem memory.Allocator, lines ...string) arrow.RecordBatch {
	t.Helper()
	d := jsondec.NewDecoder(schema, mem, jsondec.Options{})
	defer d.Release()
	for _, l := range lines {
		if err := d.Append([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	return d.Flush()
}

func open(t *testing.T, mem memory.Allocator, cfg string) *Sink {
	t.Helper()
	ctor, errs := prep(t, cfg)
	if len(errs) > 0 {
		t.Fatal(errs.Error())
	}
	s, err := ctor(op.Resources{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Sink)
}

var lines = []string{
	`{"id":1,"name":"a \"q\"","at":"2024-01-02T03:04:05Z","tags":["x","y"]}`,
	`{"id":null,"name":null,"at":null,"tags":null}`,
	`{"id":3,"name":"é","at":"2024-01-02T03:04:05.123456Z","tags":[]}`,
}

func TestJSON(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "dir", "out.jsonl")
	s := open(t, mem, `{path: "`+path+`"}`)
	var acked atomic.Int32
	ack := func() *batch.Ack { return batch.NewAck(func(err error) { acked.Add(1) }) }
	ctx := context.Background()
	if err := s.Write(ctx, batch.Batch{Rec: records(t, mem, lines[:2]...), Ack: ack()}); err != nil {
		t.Fatal(err)
	}
	if acked.Load() != 0 {
		t.Fatal("acked before flush")
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if acked.Load() != 1 {
		t.Fatal("not acked on flush")
	}
	if b, _ := os.ReadFile(path); string(b) != lines[0]+"\n"+lines[1]+"\n" {
		t.Fatalf("file after flush:\n%s", b)
	}
	if err := s.Write(ctx, batch.Batch{Rec: records(t, mem, lines[2]), Ack: ack()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal("second close:", err)
	}
	if acked.Load() != 2 {
		t.Fatal("not acked on close")
	}
	want := strings.Join(lines, "\n") + "\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Fatalf("file:\n%s", b)
	}

	// The default appends; append: false truncates.
	s = open(t, mem, `{path: "`+path+`"}`)
	if err := s.Write(ctx, batch.Batch{Rec: records(t, mem, lines[0])}); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	if b, _ := os.ReadFile(path); string(b) != want+lines[0]+"\n" {
		t.Fatalf("appended file:\n%s", b)
	}
	s = open(t, mem, `{path: "`+path+`", append: false}`)
	s.Close(ctx)
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Fatalf("not truncated:\n%s", b)
	}
	if err := s.Write(ctx, batch.Batch{Rec: records(t, mem, lines[0])}); err == nil {
		t.Fatal("write after close accepted")
	}
}

func TestParquet(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx := context.Background()
	for _, comp := range []string{"snappy", "zstd", "none"} {
		path := filepath.Join(t.TempDir(), "out.parquet")
		s := open(t, mem, `{path: "`+path+`", compression: `+comp+`, row_group_rows: 2}`)
		var acked atomic.Int32
		for i := 0; i < 2; i++ {
			b := batch.Batch{Rec: records(t, mem, lines...), Ack: batch.NewAck(func(error) { acked.Add(1) })}
			if err := s.Write(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(ctx); err != nil || acked.Load() != 0 {
			t.Fatalf("parquet flush: %v, acked %d", err, acked.Load())
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if acked.Load() != 2 {
			t.Fatal("not acked on close")
		}
		pf, err := pqfile.OpenParquetFile(path, false)
		if err != nil {
			t.Fatal(err)
		}
		if pf.NumRows() != 6 || pf.NumRowGroups() != 3 {
			t.Fatalf("%s: rows %d groups %d", comp, pf.NumRows(), pf.NumRowGroups())
		}
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, mem)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !arrow.TypeEqual(tbl.Schema().Field(2).Type, types.Timestamp) {
			t.Fatalf("timestamp type %s", tbl.Schema().Field(2).Type)
		}
		names := tbl.Column(1).Data().Chunk(0).(*array.String)
		if names.Value(0) != `a "q"` || !names.IsNull(1) {
			t.Fatal("values lost")
		}
		tbl.Release()
		pf.Close()
	}
}

func TestEmptyParquet(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	path := filepath.Join(t.TempDir(), "out.parquet")
	s := open(t, mem, `{path: "`+path+`"}`)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	pf, err := pqfile.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if pf.NumRows() != 0 || pf.MetaData().Schema.NumColumns() != 4 {
		t.Fatal("bad empty file")
	}
}
