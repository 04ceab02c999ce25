package mapop

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/operators/transform/internal/xf"
	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

var in = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "followers", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "loc", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func TestPrepare(t *testing.T) {
	for _, tc := range []struct{ config, cols, errs string }{
		{"{followers: parse_count(followers), n: 1}", "id:string,followers:int64,loc:string,n:int64", ""},
		{"{loc: 'trimPrefix(loc, \"x\")'}", "id:string,followers:string,loc:string", ""},
		{"{a: folowers}", "", "p.yaml:1:5: unknown"},
		{"{a: b, a: c}", "", "duplicate key"},
	} {
		out, _, errs := xftest.Prepare(t, Plugin, tc.config, in)
		if tc.errs == "" && len(errs) > 0 || !strings.Contains(errs.Error(), tc.errs) {
			t.Errorf("%s: errors %q, want %q", tc.config, errs.Error(), tc.errs)
		}
		if tc.cols == "" {
			continue
		}
		var got []string
		for i, n := range xf.Names(out) {
			got = append(got, n+":"+types.Name(out.Field(i).Type))
		}
		if strings.Join(got, ",") != tc.cols {
			t.Errorf("%s: columns %v, want %s", tc.config, got, tc.cols)
		}
	}
}

func TestProcess(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tr, outS := xftest.Build(t, Plugin, `{followers: parse_count(followers), loc: 'trimPrefix(loc, "Local save in ")', big: followers != nil && parse_count(followers) > 1000}`, in, mem)
	defer tr.(op.Closer).Close(context.Background())
	for _, tc := range []struct {
		rows, want [][]any
		rejects    int
	}{
		{
			rows: [][]any{{"a", "1.2k", "Local save in /data/art"}, {"b", "x", "l"}, {nil, nil, nil}},
			want: [][]any{{"a", 1200, "/data/art", true}, {nil, nil, nil, false}}, rejects: 1,
		},
		{rows: [][]any{{"a", "5", "y"}}, want: [][]any{{"a", 5, "y", false}}},
		{rows: [][]any{{"a", "bad", "y"}}, rejects: 1},
	} {
		rec := xftest.Record(t, mem, in, tc.rows...)
		idCol := rec.Column(0)
		out := &xftest.Collector{Out: outS}
		if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out); err != nil {
			t.Fatal(err)
		}
		if got := out.Rows(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("rows %v, want %v", got, tc.want)
		}
		if len(out.Rejects) != tc.rejects {
			t.Errorf("rejects %+v", out.Rejects)
		}
		if tc.rejects == 0 && out.Batches[0].Rec.Column(0) != idCol {
			t.Error("passthrough column copied")
		}
		if tc.rejects > 0 {
			r := out.Rejects[0]
			if !strings.HasPrefix(r.Reason, "map: column 'followers': parse_count") || !strings.Contains(r.Record, `"followers":`) {
				t.Errorf("reject %+v", r)
			}
		}
		out.Release()
	}
}
