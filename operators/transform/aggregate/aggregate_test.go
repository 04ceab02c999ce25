package aggregate

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

var in = arrow.NewSchema([]arrow.Field{
	{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "followers", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "title", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func plugin() *op.Plugin { return op.Default.Plugin(ast.Transforms, "aggregate") }

func TestAggregateByKeyAcrossBatches(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tr, outSchema := xftest.Build(t, plugin(),
		"{key: [category], columns: {posts: count(), total: sum(followers), avg: avg(followers), top: max(followers), med: median(followers), titles: count_distinct(title), first: first(title)}}", in, mem)
	out := &xftest.Collector{Out: outSchema}
	defer out.Release()
	ctx := context.Background()
	b1 := xftest.Record(t, mem, in, []any{"art", 10, "a"}, []any{"travel", 5, "x"}, []any{"art", nil, "a"})
	b2 := xftest.Record(t, mem, in, []any{"art", 20, "b"}, []any{nil, 1, "z"})
	for _, b := range []arrow.RecordBatch{b1, b2} {
		if err := tr.Process(ctx, batch.Batch{Rec: b, Ack: xftest.Ack(t)}, out); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.Batches) != 0 {
		t.Fatal("emitted before the input ended")
	}
	if err := tr.(op.Flusher).Flush(ctx, out); err != nil {
		t.Fatal(err)
	}
	want := [][]any{
		{nil, 1, 1, 1.0, 1, 1.0, 1, "z"},
		{"art", 3, 30, 15.0, 20, 15.0, 2, "a"},
		{"travel", 1, 5, 5.0, 5, 5.0, 1, "x"},
	}
	if got := out.Rows(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

func TestAggregateConfigErrors(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{"{key: [categroy], columns: {n: count()}}", "key: unknown column 'categroy' (did you mean 'category'?)"},
		{"{columns: {n: avg(title)}}", "aggregate 'n': avg needs a numeric column; 'title' is string"},
		{"{columns: {n: cout()}}", "aggregate 'n': unknown function cout() (did you mean 'count'?)"},
		{"{columns: {n: followers + 1}}", "aggregate 'n': write fn(column) or count()"},
		{"{columns: {n: sum(nope)}}", "aggregate 'n': unknown column 'nope'"},
	} {
		_, _, errs := xftest.Prepare(t, plugin(), tc.config, in)
		if len(errs) == 0 || !strings.Contains(errs.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.config, errs, tc.want)
		}
	}
}

// A graceful stop is not the end of the input: without Flush, Close drops
// the partial groups and fails every held ack, so nothing is committed that
// was not aggregated and written.
func TestCloseWithoutFlushFailsHeldAcks(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tr, outSchema := xftest.Build(t, plugin(), "{key: [category], columns: {posts: count()}}", in, mem)
	out := &xftest.Collector{Out: outSchema}
	defer out.Release()
	ctx := context.Background()
	var got []error
	for range 2 {
		b := xftest.Record(t, mem, in, []any{"art", 10, "a"})
		ack := batch.NewAck(func(err error) { got = append(got, err) })
		if err := tr.Process(ctx, batch.Batch{Rec: b, Ack: ack}, out); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.(op.Closer).Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !errors.Is(got[0], batch.ErrDropped) || !errors.Is(got[1], batch.ErrDropped) {
		t.Fatalf("held acks finished with %v, want two ErrDropped", got)
	}
	if len(out.Batches) != 0 {
		t.Fatal("emitted partial results on close")
	}
}
