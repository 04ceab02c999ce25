package exec

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/runtime/batch"
)

// gateSink blocks its first Write until open is closed.
type gateSink struct {
	collectSink
	open    chan struct{}
	started chan struct{}
	once    sync.Once
}

func (s *gateSink) Write(ctx context.Context, b batch.Batch) error {
	s.once.Do(func() { close(s.started) })
	select {
	case <-s.open:
	case <-ctx.Done():
		b.Release(ctx.Err())
		return ctx.Err()
	}
	return s.collectSink.Write(ctx, b)
}

// sampleBytes is what one countSource batch of rows rows is charged.
func sampleBytes(t *testing.T, rows int) int64 {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	for i := range rows {
		b.Append(int64(i))
	}
	arr := b.NewArray()
	defer arr.Release()
	rec := array.NewRecordBatch(intSchema, []arrow.Array{arr}, int64(rows))
	defer rec.Release()
	return batch.Batch{Rec: rec}.Bytes()
}

// The byte bounds block the producer: with the batch bound out of the way
// (100 per queue), a source behind a stalled sink emits only as many
// batches as the bytes allow — for the edge bound and for the pipeline-wide
// budget alike.
func TestByteBoundsBlockTheProducer(t *testing.T) {
	per := sampleBytes(t, 100)
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"queue bytes", Options{QueueBatches: 100, QueueBytes: 3*per + per/2}},
		{"memory budget", Options{QueueBatches: 100, MemoryBytes: 3*per + per/2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			acks := &ackLog{}
			sink := &gateSink{open: make(chan struct{}), started: make(chan struct{})}
			res := build(t,
				spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 50, rows: 100, acks: acks}, output: intSchema},
				spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"src"}},
			)
			opts := tc.opts
			opts.Alloc = mem
			p, err := New(res, opts)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() { got <- p.Run(context.Background()) }()
			<-sink.started
			// Three batches fit (one in the sink's hands, still charged, two
			// queued); the fourth is built and waits in push. Watch for a
			// while that no more are made: a bound that does not block lets
			// the source run through all 50 within microseconds.
			var bad string
			for wait := time.Now().Add(10 * time.Second); acks.created.Load() < 4 && time.Now().Before(wait); {
				time.Sleep(time.Millisecond)
			}
			deadline := time.Now().Add(300 * time.Millisecond)
			for time.Now().Before(deadline) && bad == "" {
				if n := acks.created.Load(); n > 4 {
					bad = fmt.Sprintf("%d batches emitted past a bound of 3 (%d bytes each)", n, per)
				}
				time.Sleep(5 * time.Millisecond)
			}
			in := p.Nodes[1].in
			if n := acks.created.Load(); bad == "" && n != 4 {
				bad = fmt.Sprintf("%d batches emitted, want 4 (3 charged + 1 waiting)", n)
			}
			if m := p.Memory().InUse(); bad == "" && m != 3*per {
				bad = fmt.Sprintf("budget charged %d, want %d", m, 3*per)
			}
			close(sink.open)
			err = <-got
			if bad != "" {
				t.Fatal(bad)
			}
			if err != nil {
				t.Fatal(err)
			}
			if sink.rows != 5000 || acks.ok.Load() != 50 {
				t.Fatalf("rows %d acks ok %d", sink.rows, acks.ok.Load())
			}
			if p.Memory().InUse() != 0 || in.edge.InUse() != 0 {
				t.Fatalf("bytes still charged after the run: budget %d edge %d", p.Memory().InUse(), in.edge.InUse())
			}
		})
	}
}

// peakAllocator tracks the most Arrow memory allocated at once.
type peakAllocator struct {
	memory.Allocator
	cur, peak atomic.Int64
}

func (a *peakAllocator) Allocate(n int) []byte {
	a.add(int64(n))
	return a.Allocator.Allocate(n)
}

func (a *peakAllocator) Reallocate(n int, b []byte) []byte {
	a.add(int64(n - len(b)))
	return a.Allocator.Reallocate(n, b)
}

func (a *peakAllocator) Free(b []byte) {
	a.add(-int64(len(b)))
	a.Allocator.Free(b)
}

func (a *peakAllocator) add(n int64) {
	c := a.cur.Add(n)
	for {
		p := a.peak.Load()
		if c <= p || a.peak.CompareAndSwap(p, c) {
			return
		}
	}
}

// A fast source feeding a slow sink through two transforms: the data in
// memory at once stays within the pipeline budget (plus the batches being
// built or handed over, a few at most), although the per-queue bounds alone
// would allow 64 batches per edge.
func TestSlowSinkUnderFastSourceStaysWithinBudget(t *testing.T) {
	const rows = 1000
	per := sampleBytes(t, rows)
	budget := 8 * per
	mem := &peakAllocator{Allocator: memory.NewCheckedAllocator(memory.NewGoAllocator())}
	defer mem.Allocator.(*memory.CheckedAllocator).AssertSize(t, 0)
	acks := &ackLog{}
	sink := &collectSink{delay: 500 * time.Microsecond}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 200, rows: rows, acks: acks}, output: intSchema},
		spec{name: "a", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "b", section: ast.Transforms, inst: &passTransform{}, from: []string{"a"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"b"}},
	)
	p, err := run(t, res, Options{Alloc: mem, QueueBatches: 64, MemoryBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	if sink.rows != 200*rows || acks.ok.Load() != 200 {
		t.Fatalf("rows %d acks ok %d", sink.rows, acks.ok.Load())
	}
	// Beyond the budget: the batch the source builds, and one per edge that
	// may pass into an idle consumer's empty queue (3 edges).
	limit := budget + 4*(per+128)
	if pk := mem.peak.Load(); pk > limit {
		t.Fatalf("peak Arrow memory %d bytes, budget %d (+4 batches = %d)", pk, budget, limit)
	}
	if pk := p.Memory().Peak(); pk > budget+3*per {
		t.Fatalf("peak charged %d, budget %d", pk, budget)
	}
	t.Logf("peak Arrow memory %d bytes, peak charged %d, budget %d (%d bytes per batch)", mem.peak.Load(), p.Memory().Peak(), budget, per)
}
