package exec

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// output is the op.Output a node writes to.
//
// During one call of a transform (Process, or Flush at the end of input,
// bracketed by begin and end) it holds back the last batch emitted, to mark
// it Final when the call returns: a position-storing sink must know which
// piece of an ack's rows is the last (see batch.Batch).
type output struct {
	node *Node
	p    *Pipeline
	ctx  context.Context // aborts pushes when the run is aborted
	soft context.Context // the sources' context, cancelled on a graceful stop

	dlb   *array.RecordBuilder // pending dead letters
	dlRow int
	lb    *array.RecordBuilder // pending late records (time.go)
	lRow  int

	inCall  bool
	inAck   *batch.Ack  // the input's ack (nil in Flush)
	inFinal bool        // the input was the final piece of inAck
	held    batch.Batch // the last batch emitted in this call, not yet pushed
	hasHeld bool
	sawIn   bool // a batch under inAck was emitted in this call

	ended     bool      // EndInput was called: nothing more may be emitted
	closeOnce sync.Once // the node's outputs are closed once (EndInput or finishNode)
}

// errInputEnded is what a source gets for emitting after EndInput.
var errInputEnded = errors.New("the source emitted after it ended its input (op.InputEnder)")

// EndInput implements op.InputEnder: pending dead letters go out, then the
// node's outputs close as at the end of its input.
func (o *output) EndInput(ctx context.Context) error {
	if o.node.Section != ast.Sources {
		return fmt.Errorf("EndInput is for sources; %q is not one", o.node.Name)
	}
	if o.ended {
		return nil
	}
	if err := o.flushRejects(ctx, nil); err != nil {
		return err
	}
	o.ended = true
	o.closeOutputs(false)
	return nil
}

// closeOutputs tells the queues the node writes to that it is done; stopped
// says it ended on a graceful stop rather than at the end of its input.
func (o *output) closeOutputs(stopped bool) {
	o.closeOnce.Do(func() {
		n := o.node
		for _, q := range n.outs {
			q.producerDone(stopped)
		}
		if n.dead != nil {
			n.dead.producerDone(stopped)
		}
		if n.late != nil {
			n.late.producerDone(stopped)
		}
	})
}

func (o *output) Schema() *arrow.Schema { return o.node.checked.Output }

// begin starts a transform call for an input under ack.
func (o *output) begin(ack *batch.Ack, final bool) {
	o.inCall, o.inAck, o.inFinal, o.sawIn = true, ack, final, false
}

// end pushes the batch held back, marked final when it is the last piece of
// its ack, or a position marker when the call dropped every row of a final
// input that has positions.
func (o *output) end(ctx context.Context) error {
	o.inCall = false
	if o.hasHeld {
		b := o.held
		o.held, o.hasHeld = batch.Batch{}, false
		b.Final = o.finalFor(b.Ack)
		if err := o.fanOut(ctx, o.node.outs, b); err != nil {
			return err
		}
	}
	if o.inFinal && !o.sawIn && o.inAck != nil && len(o.inAck.Positions()) > 0 {
		o.inAck.Retain(1)
		return o.forward(ctx, batch.Batch{Ack: o.inAck, Final: true})
	}
	return nil
}

// drop ends a failed call, releasing the batch held back.
func (o *output) drop(err error) {
	o.inCall = false
	if o.hasHeld {
		o.held.Release(err)
		o.held, o.hasHeld = batch.Batch{}, false
	}
}

// finalFor says whether the last batch of a run of batches under ack emitted
// in the current call is final: an input's pieces are final if the input
// was; an ack the node made itself (a merge) ends with its last batch.
func (o *output) finalFor(ack *batch.Ack) bool {
	if ack == o.inAck {
		return o.inFinal
	}
	return true
}

func (o *output) Emit(ctx context.Context, b batch.Batch) error {
	if o.ended {
		b.Release(errInputEnded)
		return errInputEnded
	}
	rows := b.Rows()
	if o.dlRow > 0 || o.lRow > 0 {
		// Dead letters found while building this batch commit with it.
		b.Ack.Retain(1)
		if err := o.flushRejects(ctx, b.Ack); err != nil {
			b.Release(err)
			return err
		}
	}
	m := &o.node.metrics
	if !o.inCall { // a source: each batch is the whole of its ack
		m.timeAck(b.Ack)
		if rows == 0 {
			if b.Rec != nil {
				b.Rec.Release()
			}
			if len(b.Ack.Positions()) == 0 {
				b.Ack.Done(nil)
				return nil
			}
			// Nothing to write, but position stores learn the input was read.
			return o.forward(ctx, batch.Batch{Ack: b.Ack, Final: true})
		}
		o.count(rows, b)
		o.node.Stats.RowsIn.Add(int64(rows))
		o.node.Stats.BatchesIn.Add(1)
		m.rowsIn.Add(float64(rows))
		m.batchesIn.Add(1)
		b.Final = true
		return o.fanOut(ctx, o.node.outs, b)
	}
	if rows == 0 {
		b.Release(nil)
		return nil
	}
	o.count(rows, b)
	if b.Ack == o.inAck {
		o.sawIn = true
	}
	prev, had := o.held, o.hasHeld
	o.held, o.hasHeld = b, true
	if !had {
		return nil
	}
	prev.Final = prev.Ack != b.Ack && o.finalFor(prev.Ack)
	return o.fanOut(ctx, o.node.outs, prev)
}

func (o *output) count(rows int, b batch.Batch) {
	o.node.Stats.RowsOut.Add(int64(rows))
	o.node.metrics.rowsOut.Add(float64(rows))
	o.node.metrics.batchesOut.Add(1)
	if o.node.Section == ast.Sources {
		o.node.metrics.bytesIn.Add(float64(b.Bytes()))
	}
}

// forward passes a position marker on to every consumer.
func (o *output) forward(ctx context.Context, b batch.Batch) error {
	return o.fanOut(ctx, o.node.outs, b)
}

// fanOut pushes b to every queue of qs, giving each its own reference. It
// honours ctx, except that a source's push survives a graceful stop (a
// batch already read is delivered during the drain); the run's abort
// always ends it. On error every reference not pushed is released with
// batch.ErrDropped.
func (o *output) fanOut(ctx context.Context, qs []*queue, b batch.Batch) error {
	if o.ended {
		b.Release(errInputEnded)
		return errInputEnded
	}
	if len(qs) == 0 {
		b.Release(nil)
		return nil
	}
	// Take every consumer's reference before the first push: a fast
	// consumer could otherwise finish the ack before the others hold it.
	if b.Rec != nil {
		for range qs[1:] {
			b.Rec.Retain()
		}
	}
	b.Ack.Retain(len(qs) - 1)
	for i, q := range qs {
		if err := o.push(ctx, q, b); err != nil {
			for range qs[i:] {
				b.Release(batch.ErrDropped)
			}
			return err
		}
	}
	return nil
}

func (o *output) push(ctx context.Context, q *queue, b batch.Batch) error {
	if ctx == nil {
		ctx = o.ctx
	}
	err := q.push(ctx, o.ctx, b, o.node.Name)
	if err != nil && o.node.Section == ast.Sources && o.soft.Err() != nil && o.ctx.Err() == nil {
		err = q.push(o.ctx, o.ctx, b, o.node.Name) // cancelled by the stop: deliver during the drain
	}
	return err
}

func (o *output) Reject(record, reason string) error {
	o.node.Stats.Rejected.Add(1)
	o.node.metrics.rejected.Add(1)
	if o.node.dead == nil {
		return &RejectError{Record: record, Reason: reason}
	}
	if o.dlb == nil {
		o.dlb = array.NewRecordBuilder(o.p.opts.Alloc, types.DeadLetterSchema)
	}
	now := o.p.opts.Clock.Now()
	appendDeadLetter(o.dlb, record, o.node.Name, reason, now.UnixMicro())
	o.p.recent.add(o.node.Name, reason, record, now)
	o.dlRow++
	return nil
}

func appendDeadLetter(b *array.RecordBuilder, record, node, reason string, micros int64) {
	b.Field(0).(*array.StringBuilder).Append(record)
	b.Field(1).(*array.StringBuilder).Append(node)
	b.Field(2).(*array.StringBuilder).Append(reason)
	b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(micros))
}

// flushRejects sends pending dead letters under ack (which it consumes).
func (o *output) flushRejects(ctx context.Context, ack *batch.Ack) error {
	if o.lRow > 0 {
		ack.Retain(1)
		if err := o.flushLate(ctx, ack); err != nil {
			ack.Done(err) // the caller's reference; fanOut released its own
			return err
		}
	}
	if o.dlRow == 0 {
		ack.Done(nil)
		return nil
	}
	rec := o.dlb.NewRecordBatch()
	o.dlRow = 0
	return o.fanOut(ctx, []*queue{o.node.dead}, batch.Batch{Rec: rec, Ack: ack, Final: true})
}

func (o *output) release() {
	if o.hasHeld {
		o.held.Release(batch.ErrDropped)
		o.held, o.hasHeld = batch.Batch{}, false
	}
	if o.dlb != nil {
		o.dlb.Release()
		o.dlb = nil
	}
	if o.lb != nil {
		o.lb.Release()
		o.lb = nil
	}
}

// panicError is a panic inside an operator call, turned into an error.
type panicError struct{ msg string }

func (e *panicError) Error() string { return e.msg }

// process calls t.Process, turning a panic into an error so the caller can
// still fail the batch's ack.
func process(ctx context.Context, t op.Transform, b batch.Batch, out *output) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{msg: fmt.Sprintf("panic: %v\n%s", r, debug.Stack())}
		}
	}()
	return t.Process(ctx, b, out)
}

// sinkDeadLetters is op.DeadLetters for a sink with a dead_letter output.
// It stays usable until the sink's Close returns (close); a Reject after
// that fails instead of writing to a closed queue.
type sinkDeadLetters struct {
	p      *Pipeline
	node   *Node
	mu     sync.RWMutex
	closed bool
}

var errDeadLettersClosed = errors.New("dead-letter output closed: Reject called after the sink's Close returned")

func (d *sinkDeadLetters) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
}

func (d *sinkDeadLetters) Reject(ack *batch.Ack, record, reason string) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		ack.Done(errDeadLettersClosed)
		return errDeadLettersClosed
	}
	d.node.Stats.Rejected.Add(1)
	d.node.metrics.rejected.Add(1)
	b := array.NewRecordBuilder(d.p.opts.Alloc, types.DeadLetterSchema)
	defer b.Release()
	now := d.p.opts.Clock.Now()
	appendDeadLetter(b, record, d.node.Name, reason, now.UnixMicro())
	d.p.recent.add(d.node.Name, reason, record, now)
	// One dead letter of several under ack: not the final piece.
	bt := batch.Batch{Rec: b.NewRecordBatch(), Ack: ack}
	if err := d.node.dead.push(d.p.hard, d.p.hard, bt, d.node.Name); err != nil {
		bt.Release(err)
		return err
	}
	return nil
}
