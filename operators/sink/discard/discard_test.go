package discard

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/runtime/batch"
)

func TestDiscardAcksAndReleases(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewInt64Builder(mem)
	b.AppendValues([]int64{1, 2, 3}, nil)
	arr := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil), []arrow.Array{arr}, 3)
	arr.Release()
	acked := 0
	if err := (Sink{}).Write(context.Background(), batch.Batch{Rec: rec, Ack: batch.NewAck(func(err error) {
		if err == nil {
			acked++
		}
	})}); err != nil {
		t.Fatal(err)
	}
	if acked != 1 {
		t.Fatalf("acked %d times", acked)
	}
}
