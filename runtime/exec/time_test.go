package exec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// holdTransform holds every input until it ends or its timer fires, like a
// window: late rows (multiples of 5) go to the late output.
type holdTransform struct {
	mu      sync.Mutex
	held    []batch.Batch
	timerAt time.Time // zero: no timer
	ends    []op.EndReason
	fired   int
}

func (h *holdTransform) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	for _, v := range in.Rec.Column(0).(*array.Int64).Int64Values() {
		if v%5 == 0 {
			if err := out.(op.LateOutput).Late("row", "late: missed window"); err != nil {
				in.Release(err)
				return err
			}
		}
	}
	h.mu.Lock()
	h.held = append(h.held, in)
	h.mu.Unlock()
	return nil
}

func (h *holdTransform) emit(ctx context.Context, out op.Output) error {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	for _, b := range held {
		if err := out.Emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func (h *holdTransform) End(ctx context.Context, reason op.EndReason, out op.Output) error {
	h.mu.Lock()
	h.ends = append(h.ends, reason)
	h.mu.Unlock()
	if reason == op.EndOfInput {
		return h.emit(ctx, out)
	}
	h.mu.Lock()
	for _, b := range h.held {
		b.Release(batch.ErrDropped)
	}
	h.held = nil
	h.mu.Unlock()
	return nil
}

func (h *holdTransform) NextTimer() (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.timerAt, !h.timerAt.IsZero() && len(h.held) > 0
}

func (h *holdTransform) OnTimer(ctx context.Context, now time.Time, out op.Output) error {
	h.mu.Lock()
	h.fired++
	h.mu.Unlock()
	return h.emit(ctx, out)
}

func (h *holdTransform) endReasons() []op.EndReason {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]op.EndReason(nil), h.ends...)
}

func TestEndOfInputFinalisesAndLateRowsReachTheLateSink(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackLog{}
	hold := &holdTransform{}
	good, late := &collectSink{}, &collectSink{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 3, rows: 10, acks: acks}, output: intSchema},
		spec{name: "win", section: ast.Windows, inst: hold, from: []string{"src"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: good, from: []string{"win"}},
		spec{name: "late", section: ast.Sinks, inst: late, output: types.DeadLetterSchema},
	)
	res.Lookup("win").Late = res.Lookup("late")
	p, err := run(t, res, Options{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	if got := hold.endReasons(); len(got) != 1 || got[0] != op.EndOfInput {
		t.Fatalf("end signals %v, want [end of input]", got)
	}
	if good.rows != 30 || late.rows != 6 {
		t.Fatalf("rows: results %d (want 30), late %d (want 6)", good.rows, late.rows)
	}
	if acks.ok.Load() != 3 || acks.failed.Load() != 0 {
		t.Fatalf("acks ok=%d failed=%d", acks.ok.Load(), acks.failed.Load())
	}
	if n := p.Nodes[1].Stats.Late.Load(); n != 6 {
		t.Fatalf("late counter %d", n)
	}
}

func TestGracefulStopIsNotEndOfInput(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackLog{}
	hold := &holdTransform{}
	good := &collectSink{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: -1, rows: 4, acks: acks}, output: intSchema},
		spec{name: "win", section: ast.Windows, inst: hold, from: []string{"src"}, output: intSchema, dead: "dl"},
		spec{name: "out", section: ast.Sinks, inst: good, from: []string{"win"}},
		spec{name: "dl", section: ast.Sinks, inst: &collectSink{}, output: types.DeadLetterSchema},
	)
	p, err := New(res, Options{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("graceful stop returned %v", err)
	}
	if got := hold.endReasons(); len(got) != 1 || got[0] != op.Stop {
		t.Fatalf("end signals %v, want [stop] only: a stop must not finalise", got)
	}
	if good.rows != 0 {
		t.Fatalf("a stop wrote %d partial rows as if final", good.rows)
	}
	if acks.ok.Load() != 0 || acks.failed.Load() != acks.created.Load() || acks.created.Load() == 0 {
		t.Fatalf("acks created=%d ok=%d failed=%d: held input must stay uncommitted", acks.created.Load(), acks.ok.Load(), acks.failed.Load())
	}
}

// pulseSource emits one batch, then waits to be stopped.
type pulseSource struct {
	alloc memory.Allocator
	acks  *ackLog
}

func (s *pulseSource) Run(ctx context.Context, out op.Output) error {
	b := array.NewInt64Builder(s.alloc)
	b.AppendValues([]int64{1, 2, 3}, nil)
	arr := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(intSchema, []arrow.Array{arr}, 3)
	arr.Release()
	if err := out.Emit(ctx, batch.Batch{Rec: rec, Ack: s.acks.newAck()}); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestTimersRunOnTheInjectedClock(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := op.NewManualClock(start)
	acks := &ackLog{}
	hold := &holdTransform{timerAt: start.Add(time.Hour)}
	good := &collectSink{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &pulseSource{alloc: mem, acks: acks}, output: intSchema},
		spec{name: "win", section: ast.Windows, inst: hold, from: []string{"src"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: good, from: []string{"win"}},
	)
	p, err := New(res, Options{Alloc: mem, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for clock.Waiters() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the node never armed its timer")
		}
		time.Sleep(time.Millisecond)
	}
	clock.Advance(59 * time.Minute)
	if hold.fired != 0 {
		t.Fatal("timer fired early")
	}
	clock.Advance(time.Minute) // an hour of window time, no sleeping
	for acks.ok.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("timer output not acknowledged: ok=%d", acks.ok.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if good.rows != 3 {
		t.Fatalf("rows %d", good.rows)
	}
	if got := hold.endReasons(); len(got) != 1 || got[0] != op.Stop {
		t.Fatalf("end signals %v", got)
	}
}

func TestLateWithoutAnyOutputStops(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 2, rows: 10, acks: &ackLog{}}, output: intSchema},
		spec{name: "win", section: ast.Windows, inst: &holdTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: &collectSink{}, from: []string{"win"}},
	)
	_, err := run(t, res, Options{Alloc: mem})
	var re *RejectError
	if !errors.As(err, &re) || re.Reason != "late: missed window" {
		t.Fatalf("want the late record as a RejectError, got %v", err)
	}
}

// ctlSource emits a batch, a control message, and another batch.
type ctlSource struct {
	alloc memory.Allocator
	acks  *ackLog
}

func (s *ctlSource) Run(ctx context.Context, out op.Output) error {
	emit := func(v int64) error {
		b := array.NewInt64Builder(s.alloc)
		b.Append(v)
		arr := b.NewArray()
		b.Release()
		rec := array.NewRecordBatch(intSchema, []arrow.Array{arr}, 1)
		arr.Release()
		return out.Emit(ctx, batch.Batch{Rec: rec, Ack: s.acks.newAck()})
	}
	if err := emit(1); err != nil {
		return err
	}
	c := op.Control{Kind: op.Revoked, Partition: batch.Position{Source: "src", Topic: "t", Partition: 3}}
	if err := out.(op.ControlOutput).EmitControl(ctx, c); err != nil {
		return err
	}
	return emit(2)
}

// ctlRecorder records what reaches it, in order.
type ctlRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *ctlRecorder) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	r.mu.Lock()
	r.seen = append(r.seen, fmt.Sprintf("batch %d", in.Rec.Column(0).(*array.Int64).Value(0)))
	r.mu.Unlock()
	return out.Emit(ctx, in)
}

func (r *ctlRecorder) OnControl(ctx context.Context, c op.Control, out op.Output) error {
	r.mu.Lock()
	r.seen = append(r.seen, fmt.Sprintf("control %d %s/%s/%d", c.Kind, c.Partition.Source, c.Partition.Topic, c.Partition.Partition))
	r.mu.Unlock()
	return nil
}

func (r *ctlRecorder) End(ctx context.Context, reason op.EndReason, out op.Output) error { return nil }

// TestControlMessagesTravelInOrderBesideBatches: a source's control message
// passes a transform that does not take it, reaches the one that does
// between the batches it was emitted between, and ends at the sink.
func TestControlMessagesTravelInOrderBesideBatches(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackLog{}
	rec := &ctlRecorder{}
	sink := &collectSink{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &ctlSource{alloc: mem, acks: acks}, output: intSchema},
		spec{name: "pass", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "win", section: ast.Windows, inst: rec, from: []string{"pass"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"win"}},
	)
	if _, err := run(t, res, Options{Alloc: mem}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.seen, "; "); got != "batch 1; control 2 src/t/3; batch 2" {
		t.Fatalf("seen: %s", got)
	}
	if sink.rows != 2 || acks.ok.Load() != 2 {
		t.Fatalf("sink rows %d, acks ok %d", sink.rows, acks.ok.Load())
	}
}

// inputRecorder records the input each batch came by.
type inputRecorder struct {
	holdTransform
	mu    sync.Mutex
	from  []string
	next  string
	names []string
}

func (r *inputRecorder) Inputs(names []string) { r.names = names }
func (r *inputRecorder) Input(from string)     { r.next = from }

func (r *inputRecorder) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	r.mu.Lock()
	r.from = append(r.from, r.next)
	r.mu.Unlock()
	return r.holdTransform.Process(ctx, in, out)
}

// TestInputNamesAtAUnion: a node that tells its inputs apart learns, for
// each batch, which side of a union sent it.
func TestInputNamesAtAUnion(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := &inputRecorder{}
	res := build(t,
		spec{name: "a", section: ast.Sources, inst: &countSource{alloc: mem, batches: 2, rows: 1, acks: &ackLog{}}, output: intSchema},
		spec{name: "b", section: ast.Sources, inst: &countSource{alloc: mem, batches: 3, rows: 1, acks: &ackLog{}}, output: intSchema},
		spec{name: "win", section: ast.Windows, inst: rec, from: []string{"a", "b"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: &collectSink{}, from: []string{"win"}},
	)
	if _, err := run(t, res, Options{Alloc: mem}); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, f := range rec.from {
		count[f]++
	}
	if strings.Join(rec.names, ",") != "a,b" {
		t.Fatalf("inputs announced: %v", rec.names)
	}
	if count["a"] != 2 || count["b"] != 3 || len(count) != 2 {
		t.Fatalf("inputs seen: %v", rec.from)
	}
}
