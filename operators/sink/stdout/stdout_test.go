package stdout

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/codec/jsondec"
	"github.com/flowrun/flowrun/runtime/batch"
)

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "description", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "at", Type: types.Timestamp, Nullable: true},
	{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
}, nil)

func rec(t *testing.T, mem memory.Allocator, lines ...string) arrow.RecordBatch {
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

func TestPrepare(t *testing.T) {
	for _, tt := range []struct{ cfg, err string }{
		{`{}`, ""},
		{`{format: json, to: stderr}`, ""},
		{`{format: csv}`, `p.yaml:1:10: 'format' must be one of table, json, not "csv"`},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tt.cfg), &doc); err != nil {
			t.Fatal(err)
		}
		var errs source.Errors
		v := spec.Decode(source.NewFile("p.yaml", []byte(tt.cfg)), doc.Content[0], Plugin.Spec.Config, &errs)
		out, ctor := Plugin.Prepare(&validate.Check{Config: v, Errs: &errs})
		if out != nil || ctor == nil {
			t.Fatal("bad prepare result")
		}
		if got := errs.Error(); (tt.err == "" && len(errs) > 0) || !strings.Contains(got, tt.err) {
			t.Fatalf("%s: errors %q, want %q", tt.cfg, got, tt.err)
		}
	}
}

func TestTable(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var out bytes.Buffer
	s := New(&out, "table")
	ctx := context.Background()
	acked := 0
	ack := batch.NewAck(func(error) { acked++ })
	long := strings.Repeat("é", 50)
	if err := s.Write(ctx, batch.Batch{Rec: rec(t, mem, `{"id":1,"description":"short\tx","at":"2024-01-02T03:04:05Z","tags":["a","b"]}`, `{"id":22}`), Ack: ack}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, batch.Batch{Rec: rec(t, mem, `{"id":12345678901,"description":"`+long+`"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil || s.Close(ctx) != nil {
		t.Fatal(err)
	}
	if acked != 1 {
		t.Fatal("not acked")
	}
	want := `id  description  at                    tags
──  ───────────  ────────────────────  ─────────
1   short␣x      2024-01-02T03:04:05Z  ["a","b"]
22  null         null                  null
id           description                               at                    tags
───────────  ────────────────────────────────────────  ────────────────────  ─────────
12345678901  ééééééééééééééééééééééééééééééééééééééé…  null                  null
`
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestJSON(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var out bytes.Buffer
	s := New(&out, "json")
	if err := s.Write(context.Background(), batch.Batch{Rec: rec(t, mem, `{"id":1,"description":"d","at":"2024-01-02T03:04:05Z","tags":["a"]}`, `{}`)}); err != nil {
		t.Fatal(err)
	}
	want := `{"id":1,"description":"d","at":"2024-01-02T03:04:05Z","tags":["a"]}
{"id":null,"description":null,"at":null,"tags":null}
`
	if out.String() != want {
		t.Fatalf("got:\n%s", out.String())
	}
}
