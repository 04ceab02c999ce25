package exec

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// ackRecord remembers each ack's outcome by the first value of its batch.
type ackRecord struct {
	mu   sync.Mutex
	errs map[int64]error // first value → error the ack finished with
	made int
}

func (r *ackRecord) newAck(first int64) *batch.Ack {
	r.mu.Lock()
	r.made++
	r.mu.Unlock()
	return batch.NewAck(func(err error) {
		r.mu.Lock()
		r.errs[first] = err
		r.mu.Unlock()
	})
}

// seqSource emits batches of 10 rows, values 10i+1..10i+10, until it has
// emitted n (n < 0: until stopped).
type seqSource struct {
	alloc memory.Allocator
	n     int
	acks  *ackRecord
}

func (s *seqSource) Run(ctx context.Context, out op.Output) error {
	for i := 0; s.n < 0 || i < s.n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := array.NewInt64Builder(s.alloc)
		for r := range 10 {
			b.Append(int64(10*i + r + 1))
		}
		arr := b.NewArray()
		b.Release()
		rec := array.NewRecordBatch(intSchema, []arrow.Array{arr}, 10)
		arr.Release()
		if err := out.Emit(ctx, batch.Batch{Rec: rec, Ack: s.acks.newAck(int64(10*i + 1))}); err != nil {
			return err
		}
	}
	return nil
}

// bufferSink buffers batches and stores (acks) them on Flush; Write fails
// on the batch starting with writeFail, Flush fails on flush number
// flushFail.
type bufferSink struct {
	writeFail int64
	flushFail int
	flushes   int
	buf       []batch.Batch
	stored    []int64
}

var errFlush = errors.New("flush failed on purpose")

func (s *bufferSink) Write(ctx context.Context, b batch.Batch) error {
	if b.Rec.Column(0).(*array.Int64).Value(0) == s.writeFail {
		b.Release(errWrite)
		return errWrite
	}
	s.buf = append(s.buf, b)
	if len(s.buf) == 3 {
		return s.Flush(ctx)
	}
	return nil
}

func (s *bufferSink) Flush(ctx context.Context) error {
	s.flushes++
	buf := s.buf
	s.buf = nil
	if s.flushes == s.flushFail {
		for _, b := range buf {
			b.Release(errFlush)
		}
		return errFlush
	}
	for _, b := range buf {
		s.stored = append(s.stored, b.Rec.Column(0).(*array.Int64).Value(0))
		b.Release(nil)
	}
	return nil
}

func (s *bufferSink) Close(ctx context.Context) error {
	for _, b := range s.buf {
		b.Release(batch.ErrDropped)
	}
	s.buf = nil
	return nil
}

// A sink's Write or Flush error reaches exactly the acks of the batches it
// failed, and the run's error; no ack succeeds for rows that were not stored.
func TestSinkErrorsReachTheirAcksAndTheRun(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sink       *bufferSink
		want       error
		failedWith map[int64]error // acks that must carry this very error
	}{
		{"write", &bufferSink{writeFail: 41}, errWrite, map[int64]error{41: errWrite}},
		{"flush", &bufferSink{flushFail: 2}, errFlush, map[int64]error{31: errFlush, 41: errFlush, 51: errFlush}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			acks := &ackRecord{errs: map[int64]error{}}
			res := build(t,
				spec{name: "src", section: ast.Sources, inst: &seqSource{alloc: mem, n: 20, acks: acks}, output: intSchema},
				spec{name: "pass", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
				spec{name: "out", section: ast.Sinks, inst: tc.sink, from: []string{"pass"}},
			)
			_, err := run(t, res, Options{Alloc: mem, FlushInterval: time.Hour})
			var ne *NodeError
			if !errors.As(err, &ne) || ne.Node != "out" || !errors.Is(err, tc.want) {
				t.Fatalf("run error %v, want node out's %v", err, tc.want)
			}
			if len(acks.errs) != acks.made {
				t.Fatalf("%d of %d acks finished", len(acks.errs), acks.made)
			}
			stored := map[int64]bool{}
			for _, v := range tc.sink.stored {
				stored[v] = true
			}
			for first, e := range acks.errs {
				if want, ok := tc.failedWith[first]; ok && !errors.Is(e, want) {
					t.Errorf("ack of batch %d finished with %v, want %v", first, e, want)
				}
				if e == nil && !stored[first] {
					t.Errorf("ack of batch %d succeeded but its rows were not stored", first)
				}
			}
		})
	}
}

// When the drain deadline passes, the run aborts: every ack still in flight
// fails with batch.ErrDropped, none is left open, and Run says why.
func TestDrainTimeoutDropsWhatIsInFlight(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	acks := &ackRecord{errs: map[int64]error{}}
	sink := &blockingSink{started: make(chan struct{})}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &seqSource{alloc: mem, n: -1, acks: acks}, output: intSchema},
		spec{name: "pass", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: sink, from: []string{"pass"}},
	)
	p, err := New(res, Options{Alloc: mem, QueueBatches: 2, DrainTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Stop once the queues are full: the sink holds one batch, the
		// queues and the transform hold the rest.
		<-sink.started
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			acks.mu.Lock()
			made := acks.made
			acks.mu.Unlock()
			if made >= 6 {
				break
			}
		}
		cancel()
	}()
	err = p.Run(ctx)
	if err == nil || err.Error() != "drain did not finish within 100ms; aborted" {
		t.Fatalf("run error %v", err)
	}
	if len(acks.errs) != acks.made {
		t.Fatalf("%d of %d acks finished", len(acks.errs), acks.made)
	}
	dropped := 0
	for first, e := range acks.errs {
		switch {
		case errors.Is(e, batch.ErrDropped):
			dropped++
		case e == nil:
			t.Errorf("ack of batch %d succeeded although the sink stored nothing", first)
		}
	}
	// The sink holds one (it fails it with the abort's context error); the
	// queues, the transform's and the source's blocked pushes hold the rest.
	if acks.made < 6 || dropped != acks.made-1 {
		t.Fatalf("%d acks dropped of %d, want all but the sink's", dropped, acks.made)
	}
}
