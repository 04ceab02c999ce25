package exec

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/flowrun/flowrun/runtime/batch"
)

// queue is the bounded edge into a node: at most cap batches and maxBytes
// bytes are in flight; a full queue blocks the producer (backpressure), never
// grows. Several producers may feed one queue (a union, or dead letters); it
// closes when the last producer is done.
type queue struct {
	ch        chan queued
	bytes     *semaphore.Weighted
	maxBytes  int64
	mu        sync.Mutex
	producers int
}

type queued struct {
	b batch.Batch
	n int64 // bytes charged against the semaphore
}

func newQueue(batches int, maxBytes int64) *queue {
	return &queue{ch: make(chan queued, batches), bytes: semaphore.NewWeighted(maxBytes), maxBytes: maxBytes}
}

func (q *queue) addProducer() {
	q.mu.Lock()
	q.producers++
	q.mu.Unlock()
}

// producerDone closes the queue when the last producer finishes.
func (q *queue) producerDone() {
	q.mu.Lock()
	q.producers--
	last := q.producers == 0
	q.mu.Unlock()
	if last {
		close(q.ch)
	}
}

// push blocks until the batch fits or ctx ends; on error the caller still
// owns b.
func (q *queue) push(ctx context.Context, b batch.Batch) error {
	// One batch larger than the whole budget is charged the whole budget so
	// it can still pass, alone.
	n := min(max(b.Bytes(), 1), q.maxBytes)
	if err := q.bytes.Acquire(ctx, n); err != nil {
		return err
	}
	select {
	case q.ch <- queued{b: b, n: n}:
		return nil
	case <-ctx.Done():
		q.bytes.Release(n)
		return ctx.Err()
	}
}

// pop returns the next batch, or false when the queue is closed and empty.
func (q *queue) pop(ctx context.Context) (batch.Batch, bool, error) {
	select {
	case it, ok := <-q.ch:
		if !ok {
			return batch.Batch{}, false, nil
		}
		q.bytes.Release(it.n)
		return it.b, true, nil
	case <-ctx.Done():
		return batch.Batch{}, false, ctx.Err()
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
			q.bytes.Release(it.n)
			it.b.Release(batch.ErrDropped)
		default:
			return
		}
	}
}
