package drop

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
	{Name: "title", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

func TestPrepare(t *testing.T) {
	xftest.CheckPrepare(t, Plugin, in, [][3]string{ // config, output columns, errors
		{"[n]", "title,category", ""},
		{"title", "category,n", ""},
		{"[titel]", "title,category,n", "p.yaml:1:2: unknown column 'titel' (did you mean 'title'?)"},
		{"[n, title, category]", "", "p.yaml:1:1: drop removes every column"},
	})
}

func TestProcess(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tr, outS := xftest.Build(t, Plugin, "[category]", in, mem)
	rec := xftest.Record(t, mem, in, []any{"a", "art", 1})
	out := &xftest.Collector{Out: outS}
	if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out); err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if got, want := out.Rows(), [][]any{{"a", 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
}
