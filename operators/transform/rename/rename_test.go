package rename

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
	{Name: "index", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "a", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func TestPrepare(t *testing.T) {
	xftest.CheckPrepare(t, Plugin, in, [][3]string{ // config, output columns, errors
		{"{index: ind}", "ind,a,b", ""},
		{"{a: b, b: a}", "index,b,a", ""},
		{"{indx: ind}", "index,a,b", "p.yaml:1:2: unknown column 'indx' (did you mean 'index'?)"},
		{"{a: b}", "index,b,b", "p.yaml:1:5: renaming 'a' to 'b' gives two columns named 'b'"},
		{"{a: x, b: x}", "index,x,x", "p.yaml:1:11: renaming 'b' to 'x' gives two columns named 'x'"},
		{"[a]", "index,a,b", "p.yaml:1:1: value must be a mapping of name: value"},
	})
}

func TestProcess(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tr, outS := xftest.Build(t, Plugin, "{index: ind}", in, mem)
	rec := xftest.Record(t, mem, in, []any{7, "x", nil})
	out := &xftest.Collector{Out: outS}
	if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out); err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if got, want := out.Rows(), [][]any{{7, "x", nil}}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	if out.Batches[0].Rec.Schema().Field(0).Name != "ind" {
		t.Error("not renamed")
	}
}
