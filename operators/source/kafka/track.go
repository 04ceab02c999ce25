package kafka

import (
	"sync"

	"github.com/flowrun/flowrun/runtime/op"
)

// tracker follows the batches emitted from one partition claim, in order,
// and computes the offset that may be committed: the end of the longest
// prefix of batches acknowledged without error. Acks may arrive out of
// order and from any goroutine. Each batch holds room in the source's
// budget until it is part of that prefix (or the claim is closed).
type tracker struct {
	mu      sync.Mutex
	budget  *budget
	pending []*inflight
	next    int64 // offset to commit next (one past the last safe message); -1 none yet
	err     error // the first failed ack
	errF    *inflight
	errEnd  int64 // last offset of the failed batch
	closed  bool  // the claim ended: the budget of what is pending was given back
	notify  chan struct{}
}

type inflight struct {
	first, end int64 // offsets the batch covers
	bytes      int64
	done       bool
	skipped    bool // no batch: offsets without records (see skip)
	dropped    bool // never delivered (see drop)
}

func newTracker(b *budget) *tracker {
	return &tracker{budget: b, next: -1, notify: make(chan struct{}, 1)}
}

// add registers a batch covering offsets first..end, in emission order; its
// size was already taken from the budget.
func (t *tracker) add(first, end, bytes int64) *inflight {
	f := &inflight{first: first, end: end, bytes: bytes}
	t.mu.Lock()
	t.pending = append(t.pending, f)
	t.mu.Unlock()
	return f
}

// skip marks the offsets up to end, after every batch added so far, as
// safe to commit once those batches are: offsets that hold no records the
// consumer receives (transaction markers at the end of a partition).
func (t *tracker) skip(end int64) {
	t.mu.Lock()
	last := t.next - 1
	if n := len(t.pending); n > 0 {
		last = t.pending[n-1].end
	}
	if end > last {
		t.pending = append(t.pending, &inflight{first: last + 1, end: end, done: true, skipped: true})
		t.advance()
	}
	t.mu.Unlock()
}

// ack records the outcome of f. A failed batch stays pending forever, so
// nothing at or after it is ever committed.
func (t *tracker) ack(f *inflight, err error) {
	t.mu.Lock()
	if f.dropped {
		// Its failure is the drop, not the sink's: nothing to report.
	} else if err != nil {
		if t.err == nil {
			t.err, t.errF, t.errEnd = err, f, f.end
		}
	} else {
		f.done = true
		t.advance()
	}
	t.mu.Unlock()
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// drop records that f was never delivered (its emit gave up as the
// session ended): it stays pending, so nothing from it on is committed, but
// its failed ack is not an error and the drain does not wait for it.
func (t *tracker) drop(f *inflight) {
	t.mu.Lock()
	f.dropped = true
	if t.errF == f {
		t.err, t.errF, t.errEnd = nil, nil, 0
	}
	t.mu.Unlock()
}

// advance moves next over the acknowledged prefix, giving back its budget.
// t.mu is held.
func (t *tracker) advance() {
	var n int
	var bytes int64
	for len(t.pending) > 0 && t.pending[0].done {
		f := t.pending[0]
		t.next = f.end + 1
		if !f.skipped {
			n++
			bytes += f.bytes
		}
		t.pending[0] = nil
		t.pending = t.pending[1:]
	}
	if n > 0 && !t.closed {
		t.budget.give(n, bytes)
	}
}

// close gives back the budget of every batch still pending: the claim has
// ended and nothing of it will be committed any more.
func (t *tracker) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	var n int
	var bytes int64
	for _, f := range t.pending {
		if !f.skipped {
			n++
			bytes += f.bytes
		}
	}
	if n > 0 {
		t.budget.give(n, bytes)
	}
}

// state returns the committable offset (-1 for none), the number of
// delivered batches not yet acknowledged, and the first failure.
func (t *tracker) state() (next int64, pending int, err error, errEnd int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range t.pending {
		if !f.done && !f.dropped {
			pending++
		}
	}
	return t.next, pending, t.err, t.errEnd
}

// ackedPending returns how many batches are acknowledged but wait behind
// an earlier one.
func (t *tracker) ackedPending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, f := range t.pending {
		if f.done {
			n++
		}
	}
	return n
}

// budget bounds, across the claims of one source, the batches emitted but
// not yet committable and their bytes. One batch is always let through, so
// a batch larger than the byte bound does not block forever.
type budget struct {
	mu                  sync.Mutex
	batches, maxBatches int
	bytes, maxBytes     int64
	freed               chan struct{} // closed when room is given back, if someone waits
	waiting             bool
	gBatches, gBytes    op.Gauge // nil: not measured
}

func newBudget(maxBatches int, maxBytes int64) *budget {
	return &budget{maxBatches: maxBatches, maxBytes: maxBytes}
}

// measure reports the budget's use through m.
func (b *budget) measure(m op.Metrics) {
	b.gBatches = m.Gauge("flowrun_kafka_source_in_flight_batches", "Batches the kafka source emitted that are not yet committable (bounded by max_in_flight).")
	b.gBytes = m.Gauge("flowrun_kafka_source_in_flight_bytes", "Bytes of those batches (bounded by max_in_flight_bytes).")
}

// report updates the gauges; b.mu is held.
func (b *budget) report() {
	if b.gBatches != nil {
		b.gBatches.Set(float64(b.batches))
		b.gBytes.Set(float64(b.bytes))
	}
}

// tryTake takes room for one batch of size bytes if there is some;
// otherwise it returns a channel closed when room is next given back.
func (b *budget) tryTake(size int64) (<-chan struct{}, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batches == 0 || b.batches < b.maxBatches && b.bytes+size <= b.maxBytes {
		b.batches++
		b.bytes += size
		b.report()
		return nil, true
	}
	if b.freed == nil {
		b.freed = make(chan struct{})
	}
	b.waiting = true
	return b.freed, false
}

// take takes room for one batch even beyond the bound (a claim that is
// ending emits its last partial batch without waiting).
func (b *budget) take(size int64) {
	b.mu.Lock()
	b.batches++
	b.bytes += size
	b.report()
	b.mu.Unlock()
}

// give returns the room of n batches of bytes in total.
func (b *budget) give(n int, bytes int64) {
	b.mu.Lock()
	b.batches -= n
	b.bytes -= bytes
	b.report()
	if b.waiting {
		close(b.freed)
		b.freed, b.waiting = nil, false
	}
	b.mu.Unlock()
}

// inFlight returns the batches and bytes currently taken.
func (b *budget) inFlight() (int, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batches, b.bytes
}
