package filter

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
	"github.com/flowrun/flowrun/runtime/batch"
)

var in = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "followers", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func TestPrepareErrors(t *testing.T) {
	for _, tc := range []struct{ config, errs string }{
		{"id != nil", ""},
		{"id", "filter must be a boolean expression"},
		{"idd != nil", "p.yaml:1:1: unknown"},
	} {
		_, _, errs := xftest.Prepare(t, Plugin, tc.config, in)
		if tc.errs == "" && len(errs) > 0 || !strings.Contains(errs.Error(), tc.errs) {
			t.Errorf("%s: errors %q, want %q", tc.config, errs.Error(), tc.errs)
		}
	}
}

func run(t *testing.T, mem memory.Allocator, config string, rows ...[]any) *xftest.Collector {
	t.Helper()
	tr, outS := xftest.Build(t, Plugin, config, in, mem)
	rec := xftest.Record(t, mem, in, rows...)
	out := &xftest.Collector{Out: outS}
	if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestProcess(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rows := [][]any{{"a", "5"}, {nil, "6"}, {"c", "x"}, {"d", nil}}

	out := run(t, mem, "id != nil && followers != nil && parse_count(followers) > 4", rows...)
	if got, want := out.Rows(), [][]any{{"a", "5"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	if len(out.Rejects) != 1 || out.Rejects[0].Record != `{"id":"c","followers":"x"}` || !strings.HasPrefix(out.Rejects[0].Reason, "filter: parse_count") {
		t.Errorf("rejects %+v", out.Rejects)
	}
	out.Release()

	out = run(t, mem, "id != nil", rows...)
	if got, want := out.Rows(), [][]any{{"a", "5"}, {"c", "x"}, {"d", nil}}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	out.Release()

	// All pass: the very same record goes on.
	tr, _ := xftest.Build(t, Plugin, "true", in, mem)
	rec := xftest.Record(t, mem, in, rows...)
	c := &xftest.Collector{}
	if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, c); err != nil {
		t.Fatal(err)
	}
	if c.Batches[0].Rec != rec {
		t.Error("all-pass batch was copied")
	}
	c.Release()
}

// TestNullIsFilteredOut: a condition that evaluates to null (a null boolean
// column, a cleaning function given a null) drops the row like false: it is
// counted as filtered, not kept and not a dead letter.
func TestNullIsFilteredOut(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "downloaded", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "verified", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	}, nil)
	rows := [][]any{{"a", "1", true}, {"b", nil, true}, {"c", "1", nil}, {"d", "0", false}}
	for _, tc := range []struct {
		config string
		kept   []string
	}{
		{"to_bool(downloaded)", []string{"a", "c"}},
		{"verified", []string{"a", "b"}},
		{"verified ?? true", []string{"a", "b", "c"}},
		{"not (verified ?? false)", []string{"c", "d"}},
	} {
		t.Run(tc.config, func(t *testing.T) {
			tr, out := xftest.Build(t, Plugin, tc.config, schema, mem)
			c := &xftest.Collector{Out: out}
			defer c.Release()
			rec := xftest.Record(t, mem, schema, rows...)
			if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, c); err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, r := range c.Rows() {
				kept = append(kept, r[0].(string))
			}
			if !reflect.DeepEqual(kept, tc.kept) || len(c.Rejects) > 0 {
				t.Fatalf("kept %v, rejected %v; want %v and no dead letters", kept, c.Rejects, tc.kept)
			}
		})
	}
}
