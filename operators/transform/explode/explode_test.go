package explode

import (
	"context"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
	"github.com/flowrun/flowrun/runtime/batch"
)

var in = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
}, nil)

func TestPrepare(t *testing.T) {
	for _, tc := range []struct{ config, errs string }{
		{"tags", ""},
		{"{column: tags, keep_empty: true}", ""},
		{"{column: tag}", "p.yaml:1:10: unknown column 'tag' (did you mean 'tags'?)"},
		{"id", "p.yaml:1:1: column 'id' is string; explode needs a list"},
	} {
		out, _, errs := xftest.Prepare(t, Plugin, tc.config, in)
		if errs.Error() != tc.errs {
			t.Errorf("%s: errors %q, want %q", tc.config, errs.Error(), tc.errs)
		}
		if tc.errs == "" && out.Field(1).Type.ID() != arrow.STRING {
			t.Errorf("%s: tags type %v", tc.config, out.Field(1).Type)
		}
	}
}

func TestProcess(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rows := [][]any{{"a", []string{"x", "y"}}, {"b", nil}, {"c", []string{}}, {"d", []string{"z"}}}
	for _, tc := range []struct {
		config string
		want   [][]any
	}{
		{"tags", [][]any{{"a", "x"}, {"a", "y"}, {"d", "z"}}},
		{"{column: tags, keep_empty: true}", [][]any{{"a", "x"}, {"a", "y"}, {"b", nil}, {"c", nil}, {"d", "z"}}},
	} {
		tr, outS := xftest.Build(t, Plugin, tc.config, in, mem)
		rec := xftest.Record(t, mem, in, rows...)
		out := &xftest.Collector{Out: outS}
		if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out); err != nil {
			t.Fatal(err)
		}
		if got := out.Rows(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: rows %v, want %v", tc.config, got, tc.want)
		}
		out.Release()
	}
	// Nothing to explode: the batch is acked, nothing emitted.
	tr, _ := xftest.Build(t, Plugin, "tags", in, mem)
	rec := xftest.Record(t, mem, in, []any{"b", nil})
	out := &xftest.Collector{}
	if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out); err != nil {
		t.Fatal(err)
	}
	if len(out.Batches) != 0 {
		t.Error("emitted an empty batch")
	}
}
