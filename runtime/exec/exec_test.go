package exec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var intSchema = arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)

// ackLog counts acknowledgements the way a source's commit logic would.
type ackLog struct {
	ok, failed, created atomic.Int64
}

func (l *ackLog) newAck() *batch.Ack {
	l.created.Add(1)
	return batch.NewAck(func(err error) {
		if err != nil {
			l.failed.Add(1)
		} else {
			l.ok.Add(1)
		}
	})
}

type countSource struct {
	alloc   memory.Allocator
	batches int // <0: until stopped
	rows    int
	acks    *ackLog
	reject  int // reject every n-th row instead of emitting it
}

func (s *countSource) Run(ctx context.Context, out op.Output) error {
	v := int64(0)
	for i := 0; s.batches < 0 || i < s.batches; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := array.NewInt64Builder(s.alloc)
		for r := 0; r < s.rows; r++ {
			v++
			if s.reject > 0 && v%int64(s.reject) == 0 {
				if err := out.Reject("row", "multiple of reject"); err != nil {
					b.Release()
					return err
				}
				continue
			}
			b.Append(v)
		}
		arr := b.NewArray()
		b.Release()
		rec := array.NewRecordBatch(intSchema, []arrow.Array{arr}, int64(arr.Len()))
		arr.Release()
		if err := out.Emit(ctx, batch.Batch{Rec: rec, Ack: s.acks.newAck()}); err != nil {
			return err
		}
	}
	return nil
}

type passTransform struct{ panicAt int64 }

func (t *passTransform) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	if t.panicAt > 0 && in.Rec.Column(0).(*array.Int64).Value(0) >= t.panicAt {
		panic("boom")
	}
	return out.Emit(ctx, in)
}

type collectSink struct {
	mu    sync.Mutex
	rows  int64
	sum   int64
	delay time.Duration
	live  *atomic.Int64 // batches written but not yet released, to observe backpressure
}

func (s *collectSink) Write(ctx context.Context, b batch.Batch) error {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	s.rows += int64(b.Rows())
	if b.Rec.Schema().Equal(intSchema) {
		for _, v := range b.Rec.Column(0).(*array.Int64).Int64Values() {
			s.sum += v
		}
	}
	s.mu.Unlock()
	b.Release(nil)
	return nil
}

// graph builds a validate.Result by hand: names → section, instance, from.
type spec struct {
	name    string
	section ast.Section
	inst    any
	from    []string
	dead    string
	output  *arrow.Schema
}

func build(t *testing.T, nodes ...spec) *validate.Result {
	t.Helper()
	res := &validate.Result{Pipeline: &ast.Pipeline{Name: "test"}}
	by := map[string]*validate.Node{}
	for _, s := range nodes {
		inst := s.inst
		n := &validate.Node{
			AST:    &ast.Node{Name: s.name, Section: s.section, Type: "fake"},
			Output: s.output,
			Build: op.Constructor(func(r op.Resources) (any, error) {
				if u, ok := inst.(interface{ use(op.Resources) }); ok {
					u.use(r)
				}
				return inst, nil
			}),
		}
		by[s.name] = n
		res.Nodes = append(res.Nodes, n)
	}
	for _, s := range nodes {
		n := by[s.name]
		for _, f := range s.from {
			n.Inputs = append(n.Inputs, by[f])
			by[f].Consumers = append(by[f].Consumers, n)
		}
		if s.dead != "" {
			n.DeadLetter = by[s.dead]
		}
	}
	return res
}

func run(t *testing.T, res *validate.Result, opts Options) (*Pipeline, error) {
	t.Helper()
	p, err := New(res, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, p.Run(context.Background())
}

func TestLinearPipelineAcksEveryBatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackLog{}
	sink := &collectSink{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 50, rows: 100, acks: acks}, output: intSchema},
		spec{name: "pass", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"pass"}},
	)
	p, err := run(t, res, Options{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	if sink.rows != 5000 || sink.sum != 5000*5001/2 {
		t.Fatalf("sink got %d rows sum %d", sink.rows, sink.sum)
	}
	if acks.ok.Load() != 50 || acks.failed.Load() != 0 {
		t.Fatalf("acks ok=%d failed=%d, want 50/0", acks.ok.Load(), acks.failed.Load())
	}
	if got := p.Nodes[1].Stats.RowsIn.Load(); got != 5000 {
		t.Fatalf("transform rows in = %d", got)
	}
}

func TestFanOutAndFanIn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackLog{}
	a, b, union := &collectSink{}, &collectSink{}, &collectSink{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 20, rows: 10, acks: acks}, output: intSchema},
		spec{name: "src2", section: ast.Sources, inst: &countSource{alloc: mem, batches: 5, rows: 10, acks: acks}, output: intSchema},
		spec{name: "a", section: ast.Sinks, inst: a, from: []string{"src"}},
		spec{name: "b", section: ast.Sinks, inst: b, from: []string{"src"}},
		spec{name: "u", section: ast.Sinks, inst: union, from: []string{"src", "src2"}},
	)
	if _, err := run(t, res, Options{Alloc: mem}); err != nil {
		t.Fatal(err)
	}
	if a.rows != 200 || b.rows != 200 || union.rows != 250 {
		t.Fatalf("rows a=%d b=%d union=%d", a.rows, b.rows, union.rows)
	}
	// Each ack completes once, after all three consumers wrote it.
	if acks.ok.Load() != 25 || acks.created.Load() != 25 {
		t.Fatalf("acks ok=%d created=%d", acks.ok.Load(), acks.created.Load())
	}
}

func TestPanicBecomesPipelineError(t *testing.T) {
	// The record inside the panicking call is abandoned (its ownership is
	// unknown), so this test does not assert on leaked memory; its ack is
	// not: the source learns that the batch failed.
	mem := memory.NewGoAllocator()
	acks := &ackLog{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: -1, rows: 10, acks: acks}, output: intSchema},
		spec{name: "bad", section: ast.Transforms, inst: &passTransform{panicAt: 500}, from: []string{"src"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: &collectSink{}, from: []string{"bad"}},
	)
	_, err := run(t, res, Options{Alloc: mem})
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Node != "bad" || !strings.Contains(err.Error(), "panic: boom") {
		t.Fatalf("want panic error from node bad, got %v", err)
	}
	if acks.failed.Load() == 0 || acks.created.Load() != acks.ok.Load()+acks.failed.Load() {
		t.Fatalf("acks left open: created=%d ok=%d failed=%d", acks.created.Load(), acks.ok.Load(), acks.failed.Load())
	}
}

func TestGracefulStopDrains(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackLog{}
	sink := &collectSink{delay: time.Millisecond}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: -1, rows: 10, acks: acks}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"src"}},
	)
	p, err := New(res, Options{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("graceful stop returned %v", err)
	}
	// Everything emitted was written and acknowledged; nothing was dropped.
	if acks.failed.Load() != 0 || acks.ok.Load() != acks.created.Load() || acks.ok.Load() == 0 {
		t.Fatalf("acks created=%d ok=%d failed=%d", acks.created.Load(), acks.ok.Load(), acks.failed.Load())
	}
	if sink.rows != 10*acks.ok.Load() {
		t.Fatalf("sink rows %d for %d batches", sink.rows, acks.ok.Load())
	}
}

func TestRejectWithoutDeadLetterStops(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 3, rows: 10, acks: &ackLog{}, reject: 7}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: &collectSink{}, from: []string{"src"}},
	)
	_, err := run(t, res, Options{Alloc: mem})
	var re *RejectError
	if !errors.As(err, &re) || re.Reason != "multiple of reject" {
		t.Fatalf("want RejectError, got %v", err)
	}
}

func TestDeadLettersReachTheirSinkUnderTheBatchAck(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackLog{}
	good, dead := &collectSink{}, &collectSink{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 10, rows: 10, acks: acks, reject: 7}, output: intSchema, dead: "dl"},
		spec{name: "out", section: ast.Sinks, inst: good, from: []string{"src"}},
		spec{name: "dl", section: ast.Sinks, inst: dead, output: types.DeadLetterSchema},
	)
	p, err := run(t, res, Options{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	if good.rows+dead.rows != 100 || dead.rows != 14 {
		t.Fatalf("good=%d dead=%d, want 86/14", good.rows, dead.rows)
	}
	if acks.ok.Load() != 10 {
		t.Fatalf("acks ok = %d", acks.ok.Load())
	}
	if p.Nodes[0].Stats.Rejected.Load() != 14 {
		t.Fatalf("rejected stat = %d", p.Nodes[0].Stats.Rejected.Load())
	}
}

func TestBackpressureBoundsInFlightBatches(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackLog{}
	var maxOpen atomic.Int64
	sink := &collectSink{delay: 2 * time.Millisecond}
	src := &countSource{alloc: mem, batches: 200, rows: 10, acks: &ackLog{}}
	// Observe open (emitted, not yet acknowledged) batches from the source's side.
	watch := &ackWatch{inner: src, acks: acks, max: &maxOpen}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: watch, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"src"}},
	)
	if _, err := run(t, res, Options{Alloc: mem, QueueBatches: 4}); err != nil {
		t.Fatal(err)
	}
	if m := maxOpen.Load(); m > 4+2 {
		t.Fatalf("up to %d batches in flight with a queue of 4", m)
	}
	if sink.rows != 2000 {
		t.Fatalf("rows = %d", sink.rows)
	}
}

type ackWatch struct {
	inner *countSource
	acks  *ackLog
	max   *atomic.Int64
}

func (w *ackWatch) Run(ctx context.Context, out op.Output) error {
	var open atomic.Int64
	w.inner.acks = &ackLog{}
	return w.inner.Run(ctx, &watchOutput{Output: out, open: &open, max: w.max})
}

type watchOutput struct {
	op.Output
	open, max *atomic.Int64
}

func (o *watchOutput) Emit(ctx context.Context, b batch.Batch) error {
	n := o.open.Add(1)
	for {
		m := o.max.Load()
		if n <= m || o.max.CompareAndSwap(m, n) {
			break
		}
	}
	inner := b.Ack
	b.Ack = batch.NewAck(func(err error) { o.open.Add(-1); inner.Done(err) })
	return o.Output.Emit(ctx, b)
}

// rejectingSink stores even values and hands odd ones to its dead letters.
type rejectingSink struct {
	collectSink
	dl op.DeadLetters
}

func (s *rejectingSink) use(r op.Resources) { s.dl = r.DeadLetters }

func (s *rejectingSink) Write(ctx context.Context, b batch.Batch) error {
	for _, v := range b.Rec.Column(0).(*array.Int64).Int64Values() {
		if v%2 == 1 {
			b.Ack.Retain(1)
			if err := s.dl.Reject(b.Ack, fmt.Sprint(v), "odd"); err != nil {
				return err
			}
		}
	}
	return s.collectSink.Write(ctx, b)
}

func TestSinkDeadLetters(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackLog{}
	sink, dead := &rejectingSink{}, &collectSink{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 10, rows: 10, acks: acks}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"src"}, dead: "dl"},
		spec{name: "dl", section: ast.Sinks, inst: dead, output: types.DeadLetterSchema},
	)
	p, err := run(t, res, Options{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	if dead.rows != 50 || acks.ok.Load() != 10 || acks.failed.Load() != 0 {
		t.Fatalf("dead=%d acks ok=%d failed=%d", dead.rows, acks.ok.Load(), acks.failed.Load())
	}
	if got := p.Nodes[1].Stats.Rejected.Load(); got != 50 {
		t.Fatalf("rejected stat %d", got)
	}
}
