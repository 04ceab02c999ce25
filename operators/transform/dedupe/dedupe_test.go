package dedupe

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
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
		{"{key: id, on_full: forget_oldest}", ""},
		{"{key: id, on_full: error}", ""},
		{"{key: id, on_full: drop}", "p.yaml:1:20: 'on_full' must be one of error, forget_oldest, not \"drop\""},
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
	d := New([]int{0}, Options{Within: time.Minute, MaxKeys: 100, Clock: clk}, mem)

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

type counter struct{ n float64 }

func (c *counter) Add(v float64) { c.n += v }

// TestMaxKeys: what each on_full does when new keys find max_keys held,
// batch after batch.
func TestMaxKeys(t *testing.T) {
	type step struct {
		rows [][]any
		want [][]any // rows passed
		err  string  // or the error
	}
	full := "dedupe: a new key arrived with max_keys (2) keys held; forgetting one would let a later repeat of it pass unnoticed, so the run stops. " +
		"Raise max_keys (memory: about 100 MB a million 36-character keys), set within to forget keys by age, " +
		"or set on_full: forget_oldest to forget the oldest keys (counted in flowrun_dedupe_forgotten_keys_total)"
	for _, tc := range []struct {
		name      string
		o         Options
		steps     []step
		keys      int
		forgotten float64
		warnings  int
	}{
		{name: "error: repeats of held keys pass the bound", o: Options{MaxKeys: 2},
			steps: []step{
				{rows: [][]any{{"a", 1}, {"a", 2}, {"a", 1}}, want: [][]any{{"a", 1}, {"a", 2}}},
				{rows: [][]any{{"a", 2}, {"a", 1}}},
			}, keys: 2},
		{name: "error: a third key fails the batch, nothing of it passes", o: Options{MaxKeys: 2},
			steps: []step{
				{rows: [][]any{{"a", 1}, {"a", 2}}, want: [][]any{{"a", 1}, {"a", 2}}},
				{rows: [][]any{{"a", 1}, {"a", 3}}, err: full},
			}, keys: 2},
		{name: "error: expired keys make room", o: Options{MaxKeys: 2, Within: time.Minute},
			steps: []step{
				{rows: [][]any{{"a", 1}, {"a", 2}}, want: [][]any{{"a", 1}, {"a", 2}}},
				{rows: nil}, // a minute later (each step advances the clock 31 s)
				{rows: [][]any{{"a", 3}, {"a", 1}}, want: [][]any{{"a", 3}, {"a", 1}}},
			}, keys: 2},
		{name: "forget_oldest: the oldest go, a repeat of one passes", o: Options{MaxKeys: 2, OnFull: ForgetOldest},
			steps: []step{
				{rows: [][]any{{"a", 1}, {"a", 2}, {"a", 3}}, want: [][]any{{"a", 1}, {"a", 2}, {"a", 3}}}, // (a,1) forgotten
				{rows: [][]any{{"a", 1}, {"a", 3}, {"a", 4}}, want: [][]any{{"a", 1}, {"a", 4}}},           // (a,2), then (a,3) forgotten
			}, keys: 2, forgotten: 3, warnings: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			var logs strings.Builder
			clk := &clock{now: time.Unix(0, 0)}
			forgotten := &counter{}
			tc.o.Clock, tc.o.Forgotten = clk, forgotten
			tc.o.Log = slog.New(slog.NewTextHandler(&logs, nil))
			d := New([]int{0, 1}, tc.o, mem)
			for i, s := range tc.steps {
				rec := xftest.Record(t, mem, in, s.rows...)
				out := &xftest.Collector{Out: in}
				err := d.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out)
				if s.err != "" {
					if err == nil || err.Error() != s.err {
						t.Errorf("step %d: error %v, want %s", i, err, s.err)
					}
					if _, ok := err.(*ErrFull); !ok {
						t.Errorf("step %d: error %T, want *ErrFull", i, err)
					}
				} else if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got := out.Rows(); !reflect.DeepEqual(got, s.want) {
					t.Errorf("step %d: passed %v, want %v", i, got, s.want)
				}
				out.Release()
				clk.now = clk.now.Add(31 * time.Second)
			}
			if d.Len() != tc.keys {
				t.Errorf("keys %d, want %d", d.Len(), tc.keys)
			}
			if forgotten.n != tc.forgotten {
				t.Errorf("forgotten %v, want %v", forgotten.n, tc.forgotten)
			}
			if n := strings.Count(logs.String(), "max_keys reached"); n != tc.warnings {
				t.Errorf("%d warnings, want %d:\n%s", n, tc.warnings, logs.String())
			}
		})
	}
}

func BenchmarkDedupe(b *testing.B) {
	b.ReportAllocs()
	mem := memory.NewGoAllocator()
	d := New([]int{0}, Options{MaxKeys: 1_000_000, Clock: &clock{now: time.Unix(0, 0)}}, mem)
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

// BenchmarkKeyMemory reports the heap a remembered key costs beyond its
// encoded bytes, for 36-byte UUID keys, without and with the order that
// within and forget_oldest keep: the figures the docs and the ErrFull
// message quote. With keys = 1,000,000 (2026-12-02): 66 and 92 B/key.
func BenchmarkKeyMemory(b *testing.B) {
	for _, o := range []Options{{}, {OnFull: ForgetOldest}} {
		name := map[OnFull]string{Fail: "error", ForgetOldest: "forget_oldest"}[o.OnFull]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			mem := memory.NewGoAllocator()
			const keys, perBatch = 200_000, 10_000
			var recs []arrow.RecordBatch
			for i := 0; i < keys; i += perBatch {
				rows := make([][]any, perBatch)
				for j := range rows {
					rows[j] = []any{fmt.Sprintf("%08x-0000-4000-8000-%012x", i+j, i+j), 0}
				}
				recs = append(recs, xftest.Record(b, mem, in, rows...))
			}
			var perKey float64
			for b.Loop() {
				o.MaxKeys, o.Clock = keys, &clock{now: time.Unix(0, 0)}
				d := New([]int{0}, o, mem)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for _, rec := range recs {
					rec.Retain()
					out := &xftest.Collector{}
					if err := d.Process(context.Background(), batch.Batch{Rec: rec}, out); err != nil {
						b.Fatal(err)
					}
					out.Release()
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perKey = float64(after.HeapAlloc-before.HeapAlloc)/keys - 38 // 1 + 1 + 36 bytes of key
				runtime.KeepAlive(d)
			}
			b.ReportMetric(perKey, "B/key")
			for _, rec := range recs {
				rec.Release()
			}
		})
	}
}
