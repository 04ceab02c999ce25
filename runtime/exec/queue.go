package exec

import (
	"context"
	"sync"

	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// queue is the bounded edge into a node: at most cap batches wait in it and
// at most maxBytes bytes are charged to it; a full queue blocks the producer
// (backpressure), never grows. A batch is charged its real size
// (batch.Batch.Bytes) from its push until the consumer is done with it
// (release), to this edge and to the pipeline-wide memory budget. Several
// producers may feed one queue (a union, or dead letters); it closes when
// the last producer is done.
type queue struct {
	ch   chan queued
	edge *op.Budget // this edge's byte bound
	mem  *op.Budget // the pipeline-wide budget (nil: unlimited)
	mu   sync.Mutex
	// producers still feeding the queue; stopped is set when one of them
	// ended because of a graceful stop rather than the end of its input.
	producers int
	stopped   bool
	fill      queueGauges
}

type queued struct {
	b   batch.Batch
	n   int64       // bytes charged to edge and mem until release
	ctl *op.Control // a control message instead of a batch (time.go)
	// from is the node that pushed the batch: the input it came by, for
	// nodes that tell their inputs apart (op.InputNamer).
	from string
}

func newQueue(batches int, maxBytes int64, mem *op.Budget, fill queueGauges) *queue {
	return &queue{ch: make(chan queued, batches), edge: op.NewBudget(maxBytes), mem: mem, fill: fill}
}

func (q *queue) addProducer() {
	q.mu.Lock()
	q.producers++
	q.mu.Unlock()
}

// producerDone closes the queue when the last producer finishes; stopped
// says the producer ended on a graceful stop, not at the end of its input.
func (q *queue) producerDone(stopped bool) {
	q.mu.Lock()
	q.producers--
	q.stopped = q.stopped || stopped
	last := q.producers == 0
	q.mu.Unlock()
	if last {
		close(q.ch)
	}
}

// wasStopped reports whether some producer ended on a graceful stop; valid
// once the queue is closed.
func (q *queue) wasStopped() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stopped
}

// push blocks until the batch fits or ctx or abort ends; on error the
// caller still owns b.
func (q *queue) push(ctx, abort context.Context, b batch.Batch, from string) error {
	n := max(b.Bytes(), 1)
	if edge := q.edge.TryAcquire(n); !edge || !q.mem.TryAcquire(n) {
		if err := q.wait(ctx, abort, n, edge); err != nil {
			return err
		}
	}
	var err error
	select {
	case q.ch <- queued{b: b, n: n, from: from}:
		q.fill.bytes.Add(float64(n))
		q.fill.batches.Add(1)
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-abort.Done():
		err = abort.Err()
	}
	q.edge.Release(n)
	q.mem.Release(n)
	return err
}

// wait charges n to the edge and then to the pipeline budget once they fit
// (edgeHeld: the edge is charged already, the budget was the one short). A
// push into an edge that holds nothing else is charged to the budget at
// once, beyond it if need be: its consumer is idle, so waiting could
// deadlock (the budget may be held by batches upstream that only this
// push's producer can release). That overshoot is bounded by one batch per
// edge.
func (q *queue) wait(ctx, abort context.Context, n int64, edgeHeld bool) error {
	for {
		memWake, edgeWake := q.mem.Changed(), q.edge.Changed()
		if !edgeHeld {
			edgeHeld = q.edge.TryAcquire(n)
		}
		if edgeHeld {
			if q.mem.TryAcquire(n) {
				return nil
			}
			if q.edge.InUse() == n {
				q.mem.Charge(n)
				return nil
			}
		}
		var err error
		select {
		case <-memWake:
			continue
		case <-edgeWake:
			continue
		case <-ctx.Done():
			err = ctx.Err()
		case <-abort.Done():
			err = abort.Err()
		}
		if edgeHeld {
			q.edge.Release(n)
		}
		return err
	}
}

// release returns the bytes of a batch its consumer is done with.
func (q *queue) release(it queued) {
	q.edge.Release(it.n)
	q.mem.Release(it.n)
	q.fill.bytes.Add(-float64(it.n))
	q.fill.batches.Add(-1)
}

// pop returns the next batch (charged until release), or false when the
// queue is closed and empty.
func (q *queue) pop(ctx context.Context) (queued, bool, error) {
	select {
	case it, ok := <-q.ch:
		return it, ok, nil
	case <-ctx.Done():
		return queued{}, false, ctx.Err()
	}
}

// discard releases whatever is left after the run was aborted.
func (q *queue) discard() {
	for {
		select {
		case it, ok := <-q.ch:
			if !ok {
				return
			}
			if it.ctl != nil {
				continue
			}
			q.release(it)
			it.b.Release(batch.ErrDropped)
		default:
			return
		}
	}
}
