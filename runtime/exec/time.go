package exec

import (
	"context"
	"errors"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// This file is the time dimension of the executor: timers on the injected
// clock for nodes that act on time (op.Timed), the distinct end signals of
// stateful nodes (op.Stateful: end of input, graceful stop), and the late
// output of windows (op.LateOutput).

// timeAware reports whether t needs runTimed instead of the plain loop.
func timeAware(t op.Transform) bool {
	_, timed := t.(op.Timed)
	_, stateful := t.(op.Stateful)
	return timed || stateful
}

// runTimed is runTransform for nodes that hold state over time. Beside the
// input it waits for the node's next timer on the pipeline's Clock and for
// a graceful stop, which a Stateful node hears at once (with op.Stop) so it
// can let go of the acks it holds while the sources drain; only a real end
// of every input calls End with op.EndOfInput.
//
// Such a node holds its inputs' rows past the call that received them, so
// nothing it writes may carry those inputs' source positions as done: its
// calls are not final pieces of their inputs (no position markers are sent
// on for them), and its dead letters and late records go out under an ack
// without positions. Its results carry the acks it holds (a source's own
// commit then never passes an open window) and no positions of their own
// (see the window operators).
func (p *Pipeline) runTimed(ctx context.Context, n *Node, t op.Transform, out *output) (stopped bool, err error) {
	st, _ := t.(op.Stateful)
	tm, _ := t.(op.Timed)
	if in, ok := t.(op.InputNamer); ok {
		names := make([]string, len(n.checked.Inputs))
		for i, c := range n.checked.Inputs {
			names[i] = c.Name()
		}
		in.Inputs(names)
	}
	clock := p.opts.Clock
	var (
		timer <-chan time.Time
		armed time.Time
		ended bool
	)
	stop := p.soft.Done()
	call := func(f func() error) error {
		out.begin(nil, true)
		err := f()
		if err == nil {
			err = out.end(ctx)
		} else {
			out.drop(err)
		}
		if err != nil {
			return err
		}
		return out.flushRejects(ctx, nil)
	}
	end := func(reason op.EndReason) error {
		ended = true
		return call(func() error { return st.End(ctx, reason, out) })
	}
	for {
		if tm != nil && !ended {
			if at, ok := tm.NextTimer(); !ok {
				timer, armed = nil, time.Time{}
			} else if timer == nil || !at.Equal(armed) {
				armed = at
				timer = clock.After(at.Sub(clock.Now()))
			}
		}
		select {
		case it, open := <-n.in.ch:
			if !open {
				stopped := n.in.wasStopped() || p.soft.Err() != nil
				switch {
				case st != nil && !ended:
					reason := op.EndOfInput
					if stopped {
						reason = op.Stop
					}
					return stopped, end(reason)
				case st == nil && !stopped:
					if f, ok := t.(op.Flusher); ok {
						return false, call(func() error { return f.Flush(ctx, out) })
					}
				}
				return stopped, nil
			}
			if it.ctl != nil {
				if err := p.control(ctx, t, out, *it.ctl, ended); err != nil {
					return false, err
				}
				continue
			}
			switch {
			case it.b.Rec == nil:
				// A position marker: the rows it stands for were dropped
				// upstream; the held rows' acks carry the rest.
				it.b.Release(nil)
			case ended:
				// Stopped: state is no longer built, and what arrives
				// now stays uncommitted, to be read again on restart.
				it.b.Release(batch.ErrDropped)
			default:
				err := p.processOne(ctx, n, t, out, it)
				n.in.release(it) // charged until the node is done with it
				if err != nil {
					return false, err
				}
				continue
			}
			n.in.release(it)
		case now := <-timer:
			timer, armed = nil, time.Time{}
			if err := call(func() error { return tm.OnTimer(ctx, now, out) }); err != nil {
				return false, err
			}
		case <-stop:
			stop = nil
			if st != nil && !ended && p.hard.Err() == nil {
				if err := end(op.Stop); err != nil {
					return false, err
				}
			}
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// control hands a control message to t if it takes them, else passes it on.
func (p *Pipeline) control(ctx context.Context, t op.Transform, out *output, c op.Control, ended bool) error {
	r, ok := t.(op.ControlReceiver)
	switch {
	case !ok:
		return out.EmitControl(ctx, c)
	case ended:
		return nil
	}
	out.begin(nil, true)
	err := r.OnControl(ctx, c, out)
	if err == nil {
		err = out.end(ctx)
	} else {
		out.drop(err)
	}
	if err != nil {
		return err
	}
	return out.flushRejects(ctx, nil)
}

// EmitControl implements op.ControlOutput: c goes to every consumer after
// the batches already emitted.
func (o *output) EmitControl(ctx context.Context, c op.Control) error {
	if o.ended {
		return errInputEnded
	}
	for _, q := range o.node.outs {
		if err := q.pushControl(o.ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// pushControl queues a control message; it carries no bytes.
func (q *queue) pushControl(abort context.Context, c op.Control) error {
	select {
	case q.ch <- queued{ctl: &c}:
		return nil
	case <-abort.Done():
		return abort.Err()
	}
}

// processOne runs one input batch through t, writing its dead letters and
// late records under its ack (without its positions).
func (p *Pipeline) processOne(ctx context.Context, n *Node, t op.Transform, out *output, it queued) error {
	b := it.b
	rows := int64(b.Rows())
	n.Stats.RowsIn.Add(rows)
	n.Stats.BatchesIn.Add(1)
	n.metrics.rowsIn.Add(float64(rows))
	n.metrics.batchesIn.Add(1)
	n.metrics.bytesIn.Add(float64(it.n))
	if in, ok := t.(op.InputNamer); ok {
		in.Input(it.from)
	}
	guard := b.Ack
	guard.Retain(1)
	start := time.Now()
	out.begin(b.Ack, false)
	err := process(ctx, t, b, out)
	if err == nil {
		err = out.end(ctx)
	} else {
		out.drop(err)
	}
	n.Stats.BusyNanos.Add(int64(time.Since(start)))
	if err != nil {
		guard.Done(err)
		var pe *panicError
		if errors.As(err, &pe) {
			b.Ack.Abandon(err)
		}
		return err
	}
	if guard == nil {
		return out.flushRejects(ctx, nil)
	}
	return out.flushRejects(ctx, batch.NewAck(guard.Done))
}

// Late implements op.LateOutput: the record goes to the node's late:
// output, or its dead_letter: output, or the run stops.
func (o *output) Late(record, reason string) error {
	o.node.Stats.Late.Add(1)
	o.node.metrics.late.Add(1)
	if o.node.late == nil {
		// To the dead letters, counted as late (not also as rejected).
		if o.node.dead == nil {
			return &RejectError{Record: record, Reason: reason}
		}
		if o.dlb == nil {
			o.dlb = array.NewRecordBuilder(o.p.opts.Alloc, types.DeadLetterSchema)
		}
		appendDeadLetter(o.dlb, record, o.node.Name, reason, o.p.opts.Clock.Now().UnixMicro())
		o.dlRow++
		return nil
	}
	if o.lb == nil {
		o.lb = array.NewRecordBuilder(o.p.opts.Alloc, types.DeadLetterSchema)
	}
	appendDeadLetter(o.lb, record, o.node.Name, reason, o.p.opts.Clock.Now().UnixMicro())
	o.lRow++
	return nil
}

// flushLate sends pending late records under ack, taking one reference the
// caller retained for it.
func (o *output) flushLate(ctx context.Context, ack *batch.Ack) error {
	rec := o.lb.NewRecordBatch()
	o.lRow = 0
	return o.fanOut(ctx, []*queue{o.node.late}, batch.Batch{Rec: rec, Ack: ack, Final: true})
}
