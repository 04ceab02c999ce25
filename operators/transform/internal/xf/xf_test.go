package xf_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/operators/transform/internal/xf"
	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
)

var schema = arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)

func TestEmitKept(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keep    string // one char per row: k keeps, - drops
		batches int    // batches emitted
	}{
		{"all", "kkkkkkkkkk", 1},
		{"none", "----------", 0},
		{"one hole", "kkkk-kkkkk", 2},
		{"edges", "-kkkkkkkk-", 1},
		{"few holes slice", "k-k-k-k-k-", 5},
		{"many holes copy", "k-k-k-k-k-k-k-k-k-k-", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			var rows [][]any
			keep := make([]bool, len(tc.keep))
			var want [][]any
			kept := 0
			for i, c := range tc.keep {
				row := []any{i, fmt.Sprint("r", i)}
				rows = append(rows, row)
				if c == 'k' {
					keep[i] = true
					want = append(want, row)
					kept++
				}
			}
			rec := xftest.Record(t, mem, schema, rows...)
			out := &xftest.Collector{Out: schema}
			if err := xf.EmitKept(context.Background(), out, mem, xftest.Ack(t), rec, keep, kept); err != nil {
				t.Fatal(err)
			}
			if got := out.Rows(); !reflect.DeepEqual(got, want) {
				t.Fatalf("rows %v, want %v", got, want)
			}
			if len(out.Batches) != tc.batches {
				t.Fatalf("%d batches, want %d", len(out.Batches), tc.batches)
			}
			out.Release()
		})
	}
}
