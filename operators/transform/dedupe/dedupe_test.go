package dedupe

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
	"github.com/flowrun/flowrun/runtime/batch"
)

var in = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

func TestPrepare(t *testing.T) {
	for _, tc := range []struct{ config, errs string }{
		{"{key: id}", ""},
		{"{key: [id, n], within: 1h, max_keys: 10}", ""},
		{"{key: [id, nn]}", "p.yaml:1:12: unknown column 'nn' (did you mean 'n'?)"},
		{"{within: 1h}", "p.yaml:1:1: missing required key 'key'"},
		{"{key: id, max_keys: 0}", "p.yaml:1:21: 'max_keys' must be at least 1"},
	} {
		_, _, errs := xftest.Prepare(t, Plugin, tc.config, in)
		if errs.Error() != tc.errs {
			t.Errorf("%s: errors %q, want %q", tc.config, errs.Error(), tc.errs)
		}
	}
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time                         { return c.now }
func (c *clock) After(d time.Duration) <-chan time.Time { return nil }

func process(t *testing.T, d *Dedupe, mem memory.Allocator, rows ...[]any) [][]any {
	t.Helper()
	rec := xftest.Record(t, mem, in, rows...)
	out := &xftest.Collector{Out: in}
	if err := d.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out); err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	return out.Rows()
}

func TestProcess(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	clk := &clock{now: time.Unix(1000, 0)}
	d := New([]int{0}, time.Minute, 100, clk, mem)

	got := process(t, d, mem, []any{"a", 1}, []any{"b", 2}, []any{"a", 3}, []any{nil, 4}, []any{nil, 5})
	if want := [][]any{{"a", 1}, {"b", 2}, {nil, 4}}; !reflect.DeepEqual(got, want) {
		t.Errorf("batch 1: %v", got)
	}
	clk.now = clk.now.Add(30 * time.Second)
	if got := process(t, d, mem, []any{"a", 6}, []any{"b", 7}); got != nil {
		t.Errorf("batch 2: %v", got)
	}
	got = process(t, d, mem, []any{"c", 8})
	if want := [][]any{{"c", 8}}; !reflect.DeepEqual(got, want) {
		t.Errorf("batch 3: %v", got)
	}
	clk.now = clk.now.Add(31 * time.Second) // a, b, nil expire; c stays
	got = process(t, d, mem, []any{"a", 9}, []any{"c", 10})
	if want := [][]any{{"a", 9}}; !reflect.DeepEqual(got, want) {
		t.Errorf("batch 4: %v", got)
	}
	if d.Len() != 2 {
		t.Errorf("keys %d", d.Len())
	}
}

func TestMaxKeys(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := New([]int{0, 1}, 0, 2, &clock{now: time.Unix(0, 0)}, mem)
	process(t, d, mem, []any{"a", 1}, []any{"a", 2}, []any{"a", 3}) // (a,1) evicted
	got := process(t, d, mem, []any{"a", 1}, []any{"a", 3})
	if want := [][]any{{"a", 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
	if d.Len() != 2 {
		t.Errorf("keys %d", d.Len())
	}
}

func BenchmarkDedupe(b *testing.B) {
	b.ReportAllocs()
	mem := memory.NewGoAllocator()
	d := New([]int{0}, 0, 1_000_000, &clock{now: time.Unix(0, 0)}, mem)
	rows := make([][]any, 1024)
	for i := range rows {
		rows[i] = []any{string(rune('a' + i%26)), i}
	}
	rec := xftest.Record(b, mem, in, rows...)
	defer rec.Release()
	out := &xftest.Collector{}
	for b.Loop() {
		rec.Retain()
		_ = d.Process(context.Background(), batch.Batch{Rec: rec}, out)
		out.Release()
	}
}
