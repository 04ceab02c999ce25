package exec

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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

// heldTransform keeps every input (like an aggregate) and emits one row per
// input on Flush, under the merged acks; Close fails what is still held.
type heldTransform struct {
	mu      sync.Mutex
	held    []batch.Batch
	flushes atomic.Int64
	closes  atomic.Int64
}

func (t *heldTransform) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	t.mu.Lock()
	t.held = append(t.held, in)
	t.mu.Unlock()
	return nil
}

func (t *heldTransform) Flush(ctx context.Context, out op.Output) error {
	t.flushes.Add(1)
	t.mu.Lock()
	held := t.held
	t.held = nil
	t.mu.Unlock()
	var acks []*batch.Ack
	for _, b := range held {
		acks = append(acks, b.Ack)
		b.Rec.Release()
	}
	if len(acks) == 0 {
		return nil
	}
	b := array.NewInt64Builder(memory.DefaultAllocator)
	for range acks {
		b.Append(1)
	}
	arr := b.NewArray()
	b.Release()
	defer arr.Release()
	rec := array.NewRecordBatch(intSchema, []arrow.Array{arr}, int64(arr.Len()))
	return out.Emit(ctx, batch.Batch{Rec: rec, Ack: batch.Merge(acks...)})
}

func (t *heldTransform) Close(ctx context.Context) error {
	t.closes.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range t.held {
		b.Release(batch.ErrDropped)
	}
	t.held = nil
	return nil
}

// A graceful stop drains but does not finalise: Flush runs only at the real
// end of a bounded input.
func TestStopIsNotEndOfInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		batches int // <0: unbounded, stopped by cancelling Run's ctx
		flushes int64
	}{
		{"end of input flushes", 20, 1},
		{"graceful stop does not", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			acks := &ackLog{}
			hold, sink := &heldTransform{}, &collectSink{}
			res := build(t,
				spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: tc.batches, rows: 5, acks: acks}, output: intSchema},
				spec{name: "hold", section: ast.Transforms, inst: hold, from: []string{"src"}, output: intSchema},
				spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"hold"}},
			)
			p, err := New(res, Options{Alloc: mem})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.batches < 0 {
				go func() {
					for acks.created.Load() < 20 {
						time.Sleep(time.Millisecond)
					}
					cancel()
				}()
			}
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if got := hold.flushes.Load(); got != tc.flushes {
				t.Fatalf("Flush ran %d times, want %d", got, tc.flushes)
			}
			if hold.closes.Load() != 1 {
				t.Fatalf("Close ran %d times", hold.closes.Load())
			}
			created := acks.created.Load()
			if tc.flushes == 1 {
				if acks.ok.Load() != created || sink.rows != created {
					t.Fatalf("end of input: %d acks ok of %d, %d rows written", acks.ok.Load(), created, sink.rows)
				}
				return
			}
			// Stopped: nothing was written as if final, nothing committed.
			if sink.rows != 0 || acks.ok.Load() != 0 || acks.failed.Load() != created {
				t.Fatalf("stop: %d rows written, acks ok %d failed %d of %d", sink.rows, acks.ok.Load(), acks.failed.Load(), created)
			}
		})
	}
}

// asyncRejectSink holds what it is given and, like the Kafka sink's result
// goroutine, settles it from a goroutine of its own during Close: odd values
// go to the dead letters, then the batch is acknowledged.
type asyncRejectSink struct {
	dl       op.DeadLetters
	failAt   int // Write fails on this batch (1-based); 0: never
	writes   int
	mu       sync.Mutex
	pending  []batch.Batch
	closes   atomic.Int64
	rejected atomic.Int64
	errs     []error // what Reject returned during Close
}

var errWrite = errors.New("write failed on purpose")

func (s *asyncRejectSink) use(r op.Resources) { s.dl = r.DeadLetters }

func (s *asyncRejectSink) Write(ctx context.Context, b batch.Batch) error {
	s.writes++
	if s.writes == s.failAt {
		b.Release(errWrite)
		return errWrite
	}
	s.mu.Lock()
	s.pending = append(s.pending, b)
	s.mu.Unlock()
	return nil
}

func (s *asyncRejectSink) Close(ctx context.Context) error {
	s.closes.Add(1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, b := range s.pending {
			for _, v := range b.Rec.Column(0).(*array.Int64).Int64Values() {
				if v%2 == 1 {
					b.Ack.Retain(1)
					err := s.dl.Reject(b.Ack, fmt.Sprint(v), "odd")
					if err == nil {
						s.rejected.Add(1)
					}
					s.errs = append(s.errs, err)
				}
			}
			b.Release(nil)
		}
		s.pending = nil
	}()
	<-done
	return nil
}

// The dead-letter output of a sink stays open until its Close returns, on
// the normal path and after the sink failed; Close runs exactly once; a
// Reject after Close fails instead of crashing the process.
func TestSinkDeadLettersOpenUntilCloseReturns(t *testing.T) {
	for _, tc := range []struct {
		name   string
		failAt int
	}{{"end of input", 0}, {"sink failed", 6}} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			acks := &ackLog{}
			sink, dead := &asyncRejectSink{failAt: tc.failAt}, &collectSink{}
			res := build(t,
				spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 10, rows: 10, acks: acks}, output: intSchema},
				spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"src"}, dead: "dl"},
				spec{name: "dl", section: ast.Sinks, inst: dead, output: types.DeadLetterSchema},
			)
			_, err := run(t, res, Options{Alloc: mem})
			if n := sink.closes.Load(); n != 1 {
				t.Fatalf("Close ran %d times, want once", n)
			}
			created := acks.created.Load()
			if acks.ok.Load()+acks.failed.Load() != created {
				t.Fatalf("acks left open: created %d ok %d failed %d", created, acks.ok.Load(), acks.failed.Load())
			}
			if tc.failAt == 0 {
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range sink.errs {
					if e != nil {
						t.Fatalf("Reject during Close: %v", e)
					}
				}
				if dead.rows != 50 || acks.ok.Load() != 10 {
					t.Fatalf("dead letters stored %d, want 50; acks ok %d", dead.rows, acks.ok.Load())
				}
			} else {
				if !errors.Is(err, errWrite) {
					t.Fatalf("run error %v, want the write error", err)
				}
				for _, e := range sink.errs {
					if e != nil && !errors.Is(e, context.Canceled) {
						t.Fatalf("Reject during Close after a failure: %v", e)
					}
				}
			}
			// Late: after Close returned, Reject fails and releases its reference.
			late := acks.newAck()
			if err := sink.dl.Reject(late, "late", "after close"); err == nil {
				t.Fatal("Reject after Close succeeded")
			}
			if acks.failed.Load()+acks.ok.Load() != acks.created.Load() {
				t.Fatal("the late Reject kept its ack reference")
			}
		})
	}
}

// ctxCloser fails its first write and then blocks in Close until its
// context ends (a producer stuck in retries), or forever if it ignores it.
type ctxCloser struct {
	ignore      chan struct{} // non-nil: Close ignores ctx and waits for this
	hadDeadline atomic.Bool
	closed      chan struct{}
}

func (s *ctxCloser) Write(ctx context.Context, b batch.Batch) error {
	b.Release(errWrite)
	return errWrite
}

func (s *ctxCloser) Close(ctx context.Context) error {
	defer close(s.closed)
	_, ok := ctx.Deadline()
	s.hadDeadline.Store(ok)
	if s.ignore != nil {
		<-s.ignore
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestAbortCloseHasADeadline(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("close ignores ctx=%v", ignore), func(t *testing.T) {
			sink := &ctxCloser{closed: make(chan struct{})}
			if ignore {
				sink.ignore = make(chan struct{})
			}
			res := build(t,
				spec{name: "src", section: ast.Sources, inst: &countSource{alloc: memory.NewGoAllocator(), batches: 3, rows: 1, acks: &ackLog{}}, output: intSchema},
				spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"src"}},
			)
			start := time.Now()
			_, err := run(t, res, Options{CloseTimeout: 50 * time.Millisecond})
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("Run took %s after the abort", took)
			}
			if !errors.Is(err, errWrite) {
				t.Fatalf("run error %v, want the write error", err)
			}
			if ignore {
				close(sink.ignore) // let the stuck Close return before goleak checks
			}
			<-sink.closed
			if !sink.hadDeadline.Load() {
				t.Fatal("Close after a failure got a context without deadline")
			}
		})
	}
}

// blockingSink blocks its first Write until the run aborts.
type blockingSink struct {
	started chan struct{}
	once    sync.Once
}

func (s *blockingSink) Write(ctx context.Context, b batch.Batch) error {
	s.once.Do(func() { close(s.started) })
	<-ctx.Done()
	b.Release(ctx.Err())
	return ctx.Err()
}

// repeatTransform emits its input n times under a context of its own that
// times out: Emit must honour it, not only the run's.
type repeatTransform struct{ n int }

func (t *repeatTransform) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	in.Ack.Retain(t.n - 1)
	for i := range t.n {
		in.Rec.Retain()
		if err := out.Emit(cctx, batch.Batch{Rec: in.Rec, Ack: in.Ack}); err != nil {
			in.Rec.Release()
			for range t.n - 1 - i { // the references not emitted
				in.Ack.Done(err)
			}
			return err
		}
	}
	in.Rec.Release()
	return nil
}

func TestEmitHonoursItsContext(t *testing.T) {
	acks := &ackLog{}
	sink := &blockingSink{started: make(chan struct{})}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: memory.NewGoAllocator(), batches: 1, rows: 1, acks: acks}, output: intSchema},
		spec{name: "rep", section: ast.Transforms, inst: &repeatTransform{n: 10}, from: []string{"src"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"rep"}},
	)
	p, err := New(res, Options{QueueBatches: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- p.Run(context.Background()) }()
	select {
	case err := <-got:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("run error %v, want the transform's deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Emit ignored its context: the transform is still blocked on a full queue")
	}
	if acks.failed.Load() != 1 {
		t.Fatalf("acks failed %d ok %d, want the one batch failed", acks.failed.Load(), acks.ok.Load())
	}
}

// ackWaitingSource emits its batches, then (with end) ends its input and
// waits for every ack before returning, as a --once Kafka source waits to
// commit the offsets of what it read.
type ackWaitingSource struct {
	inner   countSource
	end     bool
	waited  time.Duration
	emitErr error // what an Emit after EndInput returned
}

func (s *ackWaitingSource) Run(ctx context.Context, out op.Output) error {
	if err := s.inner.Run(ctx, out); err != nil {
		return err
	}
	if s.end {
		if err := out.(op.InputEnder).EndInput(ctx); err != nil {
			return err
		}
		s.emitErr = out.Emit(ctx, batch.Batch{Rec: array.NewRecordBatch(intSchema, []arrow.Array{emptyInts()}, 0), Ack: batch.NewAck(nil)})
	}
	t0 := time.Now()
	for s.inner.acks.ok.Load()+s.inner.acks.failed.Load() < s.inner.acks.created.Load() {
		if time.Since(t0) > 500*time.Millisecond {
			break // a real source gives up after its drain timeout
		}
		time.Sleep(time.Millisecond)
	}
	s.waited = time.Since(t0)
	return nil
}

func emptyInts() arrow.Array {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	return b.NewArray()
}

// TestEndInputLetsASourceWaitForItsAcks: an aggregate holds its input's acks
// until its input ends. A source that waits for them before returning only
// gets them if it ends its input first (op.InputEnder); then the aggregate
// finalises (Flush, not a stop) and every ack succeeds while the source still
// runs. Without EndInput the source waits in vain until its deadline. After
// EndInput an Emit fails.
func TestEndInputLetsASourceWaitForItsAcks(t *testing.T) {
	for _, end := range []bool{true, false} {
		t.Run(fmt.Sprintf("end=%v", end), func(t *testing.T) {
			acks := &ackLog{}
			src := &ackWaitingSource{inner: countSource{alloc: memory.DefaultAllocator, batches: 5, rows: 3, acks: acks}, end: end}
			hold, sink := &heldTransform{}, &collectSink{}
			res := build(t,
				spec{name: "src", section: ast.Sources, inst: src, output: intSchema},
				spec{name: "hold", section: ast.Transforms, inst: hold, from: []string{"src"}, output: intSchema},
				spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"hold"}},
			)
			if _, err := run(t, res, Options{}); err != nil {
				t.Fatal(err)
			}
			if hold.flushes.Load() != 1 || acks.ok.Load() != 5 || sink.rows != 5 {
				t.Fatalf("flushes %d, acks ok %d of 5, rows %d", hold.flushes.Load(), acks.ok.Load(), sink.rows)
			}
			if end && src.waited > 400*time.Millisecond {
				t.Errorf("with EndInput the source waited %s for its acks", src.waited)
			}
			if !end && src.waited < 500*time.Millisecond {
				t.Errorf("without EndInput the acks came after %s, before the input ended", src.waited)
			}
			if end && !errors.Is(src.emitErr, errInputEnded) {
				t.Errorf("Emit after EndInput: %v, want errInputEnded", src.emitErr)
			}
		})
	}
}
