package win_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/operators/window/internal/win"
	"github.com/flowrun/flowrun/operators/window/session"
	"github.com/flowrun/flowrun/operators/window/sliding"
	"github.com/flowrun/flowrun/operators/window/tumbling"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

var pinSchema = arrow.NewSchema([]arrow.Field{
	{Name: "unique_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "follower_count", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "is_image_or_video", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "video", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "ingested_at", Type: types.Timestamp, Nullable: true},
}, nil)

// pinBatches builds n decoded batches of 1024 posts with keys distinct
// categories; event time advances perBatch per batch.
func pinBatches(n, keys int, perBatch time.Duration) []arrow.RecordBatch {
	rng := rand.New(rand.NewPCG(1, 2))
	cats := make([]string, keys)
	for i := range cats {
		cats[i] = fmt.Sprintf("category-%d", i)
	}
	media := []string{"image", "video", "story"}
	mem := memory.NewGoAllocator()
	out := make([]arrow.RecordBatch, n)
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		b := array.NewRecordBuilder(mem, pinSchema)
		for r := range 1024 {
			m := media[rng.IntN(3)]
			b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("%08x-aaaa-bbbb-cccc-%012x", i, r))
			b.Field(1).(*array.StringBuilder).Append(cats[rng.IntN(keys)])
			b.Field(2).(*array.Int64Builder).Append(int64(rng.IntN(1_000_000)))
			b.Field(3).(*array.StringBuilder).Append(m)
			v := int64(0)
			if m != "image" {
				v = 1
			}
			b.Field(4).(*array.Int64Builder).Append(v)
			b.Field(5).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.Add(perBatch * time.Duration(i)).Add(time.Duration(r) * perBatch / 1024).UnixMicro()))
		}
		out[i] = b.NewRecordBatch()
		b.Release()
	}
	return out
}

type discardOut struct{ rows int }

func (d *discardOut) Schema() *arrow.Schema { return nil }
func (d *discardOut) Emit(_ context.Context, b batch.Batch) error {
	d.rows += b.Rows()
	b.Release(nil)
	return nil
}
func (d *discardOut) Reject(string, string) error { return nil }

// BenchmarkTumbling: records/s into a keyed 1-minute tumbling window with 5
// aggregates over decoded Pinterest posts, and the heap it needs: peak-MiB
// is HeapInuse above the start at the end of each round (garbage not yet
// collected included), live-MiB the heap after a collection at the same
// moment (the open window's state), state-MiB what the window counts
// against max_state_bytes then.
func BenchmarkTumbling(b *testing.B) {
	for _, c := range []struct {
		keys     int
		perBatch time.Duration // event time per batch of 1024
	}{
		{13, 10 * time.Millisecond},   // the real categories, ~100k posts/s of event time
		{1000, 10 * time.Millisecond}, // 6M rows per window
		{1_000_000, 10 * time.Millisecond},
	} {
		b.Run(fmt.Sprintf("keys=%d", c.keys), func(b *testing.B) {
			const nb = 512
			batches := pinBatches(nb, c.keys, c.perBatch)
			cfg := `{size: 1m, key: [category], event_time: ingested_at, max_state_rows: 2000000, max_state_bytes: 1GiB,
			  aggregate: {posts: count(), total_followers: sum(follower_count), avg_followers: avg(follower_count), video_share: avg(video), max_followers: max(follower_count)}}`
			w := buildPins(b, cfg)
			out := &discardOut{}
			ctx := context.Background()
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			base, baseLive := ms.HeapInuse, ms.HeapAlloc
			peak, live, state := uint64(0), uint64(0), int64(0)
			var gcCPU time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := range b.N {
				rec := batches[i%nb]
				rec.Retain()
				if err := w.Process(ctx, batch.Batch{Rec: rec, Ack: batch.NewAck(nil)}, out); err != nil {
					b.Fatal(err)
				}
				if i%nb == nb-1 {
					// The batches repeat: end the input (emitting what is
					// open) and start again on a fresh window.
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
					state = max(state, w.StateBytes())
					// The live heap: the open window's state without the
					// garbage the collector has not reached yet.
					b.StopTimer()
					c := cpuTime()
					runtime.GC()
					runtime.ReadMemStats(&ms)
					live = max(live, ms.HeapAlloc-min(baseLive, ms.HeapAlloc))
					gcCPU += cpuTime() - c
					b.StartTimer()
					if err := w.End(ctx, op.EndOfInput, out); err != nil {
						b.Fatal(err)
					}
					w = buildPins(b, cfg)
				}
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0 - gcCPU
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "records/s")
			// Records per second of the process's CPU time (the GC's
			// included): on the shared machine it varies less with the
			// load than records/s of wall-clock time.
			b.ReportMetric(float64(b.N)*1024/cpu.Seconds(), "records/cpu-s")
			b.ReportMetric(float64(peak-min(base, peak))/(1<<20), "peak-MiB")
			b.ReportMetric(float64(live)/(1<<20), "live-MiB")
			// What the window counts against max_state_bytes at the same
			// moment.
			b.ReportMetric(float64(state)/(1<<20), "state-MiB")
		})
	}
}

// BenchmarkKinds: the same posts and aggregates into a sliding window
// (1m every 10s: each row in six windows) and a session window (gap 30s),
// for 1,000 and 1,000,000 keys.
func BenchmarkKinds(b *testing.B) {
	aggs := `aggregate: {posts: count(), total_followers: sum(follower_count), avg_followers: avg(follower_count), video_share: avg(video), max_followers: max(follower_count)}`
	for _, kind := range []struct {
		name string
		p    *op.Plugin
		cfg  string
	}{
		{"sliding", sliding.Plugin, `{size: 1m, every: 10s, key: [category], event_time: ingested_at, max_state_rows: 10000000, max_state_bytes: 4GiB, ` + aggs + `}`},
		{"session", session.Plugin, `{gap: 30s, key: [category], event_time: ingested_at, max_state_rows: 10000000, max_state_bytes: 4GiB, ` + aggs + `}`},
	} {
		for _, keys := range []int{1000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/keys=%d", kind.name, keys), func(b *testing.B) {
				const nb = 512
				batches := pinBatches(nb, keys, 10*time.Millisecond)
				mk := func() *win.Window {
					ctor, errs := prepareOn(b, kind.p, kind.cfg, pinSchema)
					if len(errs) > 0 {
						b.Fatal(errs.Render())
					}
					n, err := ctor(op.Resources{Node: "w", Alloc: memory.NewGoAllocator(), BatchRows: 4096, Clock: op.NewManualClock(time.Now())})
					if err != nil {
						b.Fatal(err)
					}
					return n.(*win.Window)
				}
				w := mk()
				out := &discardOut{}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				for i := range b.N {
					rec := batches[i%nb]
					rec.Retain()
					if err := w.Process(ctx, batch.Batch{Rec: rec, Ack: batch.NewAck(nil)}, out); err != nil {
						b.Fatal(err)
					}
					if i%nb == nb-1 {
						if err := w.End(ctx, op.EndOfInput, out); err != nil {
							b.Fatal(err)
						}
						w = mk()
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(b.N)*1024/(cpuTime()-cpu0).Seconds(), "records/cpu-s")
			})
		}
	}
}

func buildPins(b testing.TB, cfg string) *win.Window {
	b.Helper()
	ctor, errs := prepareOn(b, tumbling.Plugin, cfg, pinSchema)
	if len(errs) > 0 {
		b.Fatal(errs.Render())
	}
	n, err := ctor(op.Resources{Node: "w", Alloc: memory.NewGoAllocator(), BatchRows: 4096, Clock: op.NewManualClock(time.Now())})
	if err != nil {
		b.Fatal(err)
	}
	return n.(*win.Window)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestStateBytesTracksHeap: what the window counts against
// max_state_bytes follows the heap its groups really hold (the bound must
// stop the process before memory runs out, and not far too early), for
// 1,000 and for ~100,000 open groups.
func TestStateBytesTracksHeap(t *testing.T) {
	for _, keys := range []int{1000, 200_000} {
		batches := pinBatches(128, keys, 10*time.Millisecond)
		cfg := `{size: 1m, key: [category], event_time: ingested_at, max_state_rows: 2000000, max_state_bytes: 1GiB,
		  aggregate: {posts: count(), total_followers: sum(follower_count), avg_followers: avg(follower_count), video_share: avg(video), max_followers: max(follower_count)}}`
		w := buildPins(t, cfg)
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		for _, rec := range batches {
			rec.Retain()
			if err := w.Process(context.Background(), batch.Batch{Rec: rec, Ack: batch.NewAck(nil)}, &discardOut{}); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap, counted := float64(ms.HeapAlloc)-float64(before), float64(w.StateBytes())
		t.Logf("%d keys, %d groups: heap +%.1f MiB, counted %.1f MiB", keys, w.StateRows(), heap/(1<<20), counted/(1<<20))
		// Slices grow by doubling: the heap holds up to twice what is
		// used, plus the last batch's scratch.
		if counted > 1.3*heap+(1<<20) || heap > 2.2*counted+(2<<20) {
			t.Errorf("%d keys: heap +%.1f MiB, counted %.1f MiB", keys, heap/(1<<20), counted/(1<<20))
		}
		for _, rec := range batches {
			rec.Release()
		}
		runtime.KeepAlive(w)
	}
}
