package exec

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// posSource emits batches of 10 rows; batch i covers offsets 10i..10i+9 of
// partition i%2, and asks Resume where to start before it reads.
type posSource struct {
	alloc   memory.Allocator
	batches int
	acks    *ackLog
	resume  op.ResumeFunc
	resumed map[int32]int64
	err     error
}

func (s *posSource) use(r op.Resources) { s.resume = r.Resume }

func (s *posSource) Run(ctx context.Context, out op.Output) error {
	if s.resume != nil {
		s.resumed, s.err = s.resume(ctx, "t", []int32{0, 1, 2})
	}
	for i := range s.batches {
		b := array.NewInt64Builder(s.alloc)
		for r := range 10 {
			b.Append(int64(10*i + r))
		}
		arr := b.NewArray()
		b.Release()
		rec := array.NewRecordBatch(intSchema, []arrow.Array{arr}, 10)
		arr.Release()
		ack := s.acks.newAck().WithPositions(batch.Position{Source: "src", Topic: "t", Partition: int32(i % 2), First: int64(10 * i), Last: int64(10*i + 9)})
		if err := out.Emit(ctx, batch.Batch{Rec: rec, Ack: ack}); err != nil {
			return err
		}
	}
	return nil
}

// splitTransform emits each input as pieces of 4, 4 and 2 rows, and drops
// every input whose first value is a multiple of 30 entirely.
type splitTransform struct{}

func (splitTransform) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	if in.Final != true {
		return fmt.Errorf("input not marked final")
	}
	defer in.Rec.Release()
	if in.Rec.Column(0).(*array.Int64).Value(0)%30 == 0 {
		in.Ack.Done(nil)
		return nil
	}
	for _, r := range [][2]int64{{0, 4}, {4, 8}, {8, 10}} {
		in.Ack.Retain(1)
		if err := out.Emit(ctx, batch.Batch{Rec: in.Rec.NewSlice(r[0], r[1]), Ack: in.Ack}); err != nil {
			return err
		}
	}
	in.Ack.Done(nil)
	return nil
}

// storeSink is an op.PositionStore that checks it never sees an ack's
// final piece before all of that ack's rows.
type storeSink struct {
	mu      sync.Mutex
	rows    map[*batch.Ack]int // rows received per ack
	finals  map[*batch.Ack]int // final pieces per ack
	markers int                // final batches without rows
	stored  map[int32]int64    // next offset per partition
	known   map[int32]int64    // what Resume answers
	bad     []string
}

func newStoreSink() *storeSink {
	return &storeSink{rows: map[*batch.Ack]int{}, finals: map[*batch.Ack]int{}, stored: map[int32]int64{}}
}

func (s *storeSink) Write(ctx context.Context, b batch.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows[b.Ack] += b.Rows()
	if b.Final {
		s.finals[b.Ack]++
		if b.Rec == nil {
			s.markers++
		}
		for _, p := range b.Ack.Positions() {
			want := 10
			if p.First%30 == 0 {
				want = 0
			}
			if got := s.rows[b.Ack]; got != want {
				s.bad = append(s.bad, fmt.Sprintf("positions %d-%d stored after %d of %d rows", p.First, p.Last, got, want))
			}
			s.stored[p.Partition] = max(s.stored[p.Partition], p.Last+1)
		}
	}
	b.Release(nil)
	return nil
}

func (s *storeSink) Resume(ctx context.Context, source, topic string) (map[int32]int64, error) {
	if source != "src" || topic != "t" {
		return nil, fmt.Errorf("asked for %s/%s", source, topic)
	}
	return maps.Clone(s.known), nil
}

// nilRecSink fails on a position marker: only position stores get them.
type nilRecSink struct{ collectSink }

func (s *nilRecSink) Write(ctx context.Context, b batch.Batch) error {
	if b.Rec == nil {
		return fmt.Errorf("a sink that stores no positions received a marker")
	}
	return s.collectSink.Write(ctx, b)
}

func TestFinalMarksTheLastPieceOfEveryAck(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackLog{}
	store, plain := newStoreSink(), &nilRecSink{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &posSource{alloc: mem, batches: 30, acks: acks}, output: intSchema},
		spec{name: "split", section: ast.Transforms, inst: splitTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "pass", section: ast.Transforms, inst: &passTransform{}, from: []string{"split"}, output: intSchema},
		spec{name: "store", section: ast.Sinks, inst: store, from: []string{"pass"}},
		spec{name: "plain", section: ast.Sinks, inst: plain, from: []string{"split"}},
	)
	if _, err := run(t, res, Options{Alloc: mem}); err != nil {
		t.Fatal(err)
	}
	if len(store.bad) > 0 {
		t.Fatalf("positions stored too early:\n%v", store.bad)
	}
	if len(store.finals) != 30 {
		t.Fatalf("final pieces for %d acks, want 30", len(store.finals))
	}
	for a, n := range store.finals {
		if n != 1 {
			t.Fatalf("ack %v: %d final pieces", a.Positions(), n)
		}
	}
	if store.markers != 10 {
		t.Fatalf("markers %d, want 10 (every dropped input)", store.markers)
	}
	if want := map[int32]int64{0: 290, 1: 300}; !maps.Equal(store.stored, want) {
		t.Fatalf("stored %v, want %v", store.stored, want)
	}
	if plain.rows != 200 || acks.ok.Load() != 30 || acks.failed.Load() != 0 {
		t.Fatalf("plain rows %d, acks ok %d failed %d", plain.rows, acks.ok.Load(), acks.failed.Load())
	}
}

func TestResumeIsTheMinimumOverPositionStores(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a, b   map[int32]int64
		plain  bool
		expect map[int32]int64
	}{
		{name: "min per partition", a: map[int32]int64{0: 100, 1: 50}, b: map[int32]int64{0: 80, 1: 70}, expect: map[int32]int64{0: 80, 1: 50}},
		{name: "a partition one store lacks is absent", a: map[int32]int64{0: 100, 1: 50}, b: map[int32]int64{0: 80}, expect: map[int32]int64{0: 80}},
		{name: "only asked partitions", a: map[int32]int64{0: 1, 7: 9}, b: map[int32]int64{0: 2, 7: 9}, expect: map[int32]int64{0: 1}},
		{name: "a sink without a store uses the commit", a: map[int32]int64{0: 100}, b: map[int32]int64{0: 100}, plain: true, expect: map[int32]int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			a, b := newStoreSink(), newStoreSink()
			a.known, b.known = tc.a, tc.b
			src := &posSource{alloc: mem, batches: 0, acks: &ackLog{}}
			nodes := []spec{
				{name: "src", section: ast.Sources, inst: src, output: intSchema},
				{name: "pass", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
				{name: "a", section: ast.Sinks, inst: a, from: []string{"src"}},
				{name: "b", section: ast.Sinks, inst: b, from: []string{"pass"}},
			}
			if tc.plain {
				nodes = append(nodes, spec{name: "plain", section: ast.Sinks, inst: &collectSink{}, from: []string{"pass"}})
			}
			if _, err := run(t, build(t, nodes...), Options{Alloc: mem}); err != nil {
				t.Fatal(err)
			}
			if src.err != nil {
				t.Fatal(src.err)
			}
			if len(src.resumed) != len(tc.expect) || !maps.Equal(src.resumed, tc.expect) {
				t.Fatalf("resume %v, want %v", src.resumed, tc.expect)
			}
		})
	}
}

func TestPositionStoreReachedTwiceIsRefused(t *testing.T) {
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &posSource{acks: &ackLog{}}, output: intSchema},
		spec{name: "a", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "b", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "store", section: ast.Sinks, inst: newStoreSink(), from: []string{"a", "b"}},
	)
	_, err := New(res, Options{})
	if err == nil || err.Error() != `sink "store" stores source positions but receives source "src"'s data by 2 paths; it could not tell when all rows of a position range arrived: give each path its own sink` {
		t.Fatalf("got %v", err)
	}
}

// emptySource emits batches without rows but with positions (a Kafka poll
// that held only transaction markers, or only records sent to dead letters).
type emptySource struct{ acks *ackLog }

func (s *emptySource) Run(ctx context.Context, out op.Output) error {
	for i := range 3 {
		ack := s.acks.newAck().WithPositions(batch.Position{Source: "src", Topic: "t", First: int64(i), Last: int64(i)})
		if err := out.Emit(ctx, batch.Batch{Ack: ack}); err != nil {
			return err
		}
	}
	return out.Emit(ctx, batch.Batch{Ack: s.acks.newAck()}) // no positions: nothing to send
}

func TestEmptySourceBatchesReachPositionStoresOnly(t *testing.T) {
	acks := &ackLog{}
	store, plain := newStoreSink(), &nilRecSink{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &emptySource{acks: acks}, output: intSchema},
		spec{name: "pass", section: ast.Transforms, inst: &passTransform{panicAt: 1}, from: []string{"src"}, output: intSchema},
		spec{name: "store", section: ast.Sinks, inst: store, from: []string{"pass"}},
		spec{name: "plain", section: ast.Sinks, inst: plain, from: []string{"src"}},
	)
	if _, err := run(t, res, Options{}); err != nil {
		t.Fatal(err)
	}
	if store.markers != 3 || store.stored[0] != 3 {
		t.Fatalf("store got %d markers, stored %v; want 3 and next offset 3", store.markers, store.stored)
	}
	if acks.ok.Load() != 4 || acks.failed.Load() != 0 {
		t.Fatalf("acks ok %d failed %d", acks.ok.Load(), acks.failed.Load())
	}
}

// mixTransform emits, in one call, two pieces of its input and then two
// pieces of a result under an ack of its own.
type mixTransform struct{ own []*batch.Ack }

func (t *mixTransform) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	defer in.Rec.Release()
	in.Ack.Retain(1)
	for _, r := range [][2]int64{{0, 5}, {5, 10}} {
		if err := out.Emit(ctx, batch.Batch{Rec: in.Rec.NewSlice(r[0], r[1]), Ack: in.Ack}); err != nil {
			return err
		}
	}
	own := batch.NewAck(nil)
	t.own = append(t.own, own)
	own.Retain(1)
	for _, r := range [][2]int64{{0, 3}, {3, 10}} {
		if err := out.Emit(ctx, batch.Batch{Rec: in.Rec.NewSlice(r[0], r[1]), Ack: own}); err != nil {
			return err
		}
	}
	return nil
}

// finalLog records, in arrival order, each batch's ack and Final flag.
type finalLog struct {
	mu  sync.Mutex
	got []struct {
		ack   *batch.Ack
		final bool
	}
}

func (s *finalLog) Write(ctx context.Context, b batch.Batch) error {
	s.mu.Lock()
	s.got = append(s.got, struct {
		ack   *batch.Ack
		final bool
	}{b.Ack, b.Final})
	s.mu.Unlock()
	b.Release(nil)
	return nil
}

func TestFinalIsPerAckWithinOneCall(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	mix, sink := &mixTransform{}, &finalLog{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &posSource{alloc: mem, batches: 3, acks: &ackLog{}}, output: intSchema},
		spec{name: "mix", section: ast.Transforms, inst: mix, from: []string{"src"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"mix"}},
	)
	if _, err := run(t, res, Options{Alloc: mem}); err != nil {
		t.Fatal(err)
	}
	if len(sink.got) != 12 {
		t.Fatalf("%d batches, want 12", len(sink.got))
	}
	for i := 0; i < 12; i += 4 {
		g := sink.got[i : i+4]
		if g[0].ack != g[1].ack || g[2].ack != mix.own[i/4] || g[3].ack != mix.own[i/4] {
			t.Fatalf("call %d: unexpected acks", i/4)
		}
		if want := []bool{false, true, false, true}; g[0].final != want[0] || g[1].final != want[1] || g[2].final != want[2] || g[3].final != want[3] {
			t.Fatalf("call %d: final flags %v %v %v %v, want %v", i/4, g[0].final, g[1].final, g[2].final, g[3].final, want)
		}
	}
}
