package drop

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/operators/transform/internal/xf"
	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
	"github.com/flowrun/flowrun/runtime/batch"
)

var in = arrow.NewSchema([]arrow.Field{
	{Name: "title", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

func TestPrepare(t *testing.T) {
	for _, tc := range []struct{ config, want, errs string }{
		{"[n]", "title,category", ""},
		{"title", "category,n", ""},
		{"[titel]", "title,category,n", "p.yaml:1:2: unknown column 'titel' (did you mean 'title'?)"},
		{"[n, title, category]", "", "p.yaml:1:1: drop removes every column"},
	} {
		out, _, errs := xftest.Prepare(t, Plugin, tc.config, in)
		if errs.Error() != tc.errs {
			t.Errorf("%s: errors %q, want %q", tc.config, errs.Error(), tc.errs)
		}
		if got := strings.Join(xf.Names(out), ","); got != tc.want {
			t.Errorf("%s: columns %q, want %q", tc.config, got, tc.want)
		}
	}
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
