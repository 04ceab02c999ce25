package cast

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

var in = arrow.NewSchema([]arrow.Field{
	{Name: "n", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "tags", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "at", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

func TestPrepare(t *testing.T) {
	for _, tc := range []struct{ config, types, errs string }{
		{"{n: int64, tags: list<string>, at: timestamp, i: string}", "int64,list<string>,timestamp,string", ""},
		{"{i: float64, n: bool}", "bool,string,string,float64", ""},
		{"{i: timestamp}", "string,string,string,int64", "p.yaml:1:5: cannot cast 'i' from int64 to timestamp"},
		{"{xyz: int64}", "string,string,string,int64", "p.yaml:1:2: unknown column 'xyz'"},
		{"{n: int46}", "string,string,string,int64", "p.yaml:1:5: unknown type \"int46\" (did you mean 'int64'?)"},
	} {
		out, _, errs := xftest.Prepare(t, Plugin, tc.config, in)
		if errs.Error() != tc.errs {
			t.Errorf("%s: errors %q, want %q", tc.config, errs.Error(), tc.errs)
		}
		var got []string
		for _, f := range out.Fields() {
			got = append(got, types.Name(f.Type))
		}
		if strings.Join(got, ",") != tc.types {
			t.Errorf("%s: types %v, want %s", tc.config, got, tc.types)
		}
	}
}

func TestProcess(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tr, outS := xftest.Build(t, Plugin, "{n: int64, tags: list<string>, at: timestamp, i: string}", in, mem)
	defer tr.(op.Closer).Close(context.Background())
	rec := xftest.Record(t, mem, in,
		[]any{" 42", "a,b", "2024-01-02T03:04:05Z", 7},
		[]any{"x", "a", "2024-01-02T03:04:05Z", 1},
		[]any{nil, "", nil, nil},
		[]any{"1", "c", "yesterday", 2},
	)
	out := &xftest.Collector{Out: outS}
	if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out); err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	want := [][]any{{42, []string{"a", "b"}, ts, "7"}, {nil, []string{}, nil, nil}}
	if got := out.Rows(); !reflect.DeepEqual(got, want) {
		t.Errorf("rows %#v\nwant %#v", got, want)
	}
	if len(out.Rejects) != 2 || out.Rejects[0].Reason != `cast: column 'n': cannot convert "x" to int64` ||
		out.Rejects[1].Reason != `cast: column 'at': cannot convert "yesterday" to timestamp` {
		t.Errorf("rejects %+v", out.Rejects)
	}
}

func TestConvert(t *testing.T) {
	for _, tc := range []struct {
		v    any
		to   string
		want any
		err  bool
	}{
		{"1.5", "float64", 1.5, false},
		{"true", "bool", true, false},
		{3, "float64", 3.0, false},
		{[]string{"a", "b"}, "string", "a,b", false},
		{2.5, "string", "2.5", false},
		{"nope", "bool", nil, true},
	} {
		to, _ := types.Parse(tc.to)
		got, err := Convert(tc.v, to)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Convert(%v, %s) = %v, %v", tc.v, tc.to, got, err)
		}
	}
}
