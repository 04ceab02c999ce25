package kafka

import "sync"

// tracker follows the batches emitted from one partition claim, in order,
// and computes the offset that may be committed: the end of the longest
// prefix of batches acknowledged without error. Acks may arrive out of
// order and from any goroutine.
type tracker struct {
	mu      sync.Mutex
	pending []*inflight
	next    int64 // offset to commit next (one past the last safe message); -1 none yet
	err     error // the first failed ack
	errEnd  int64 // last offset of the failed batch
	notify  chan struct{}
}

type inflight struct {
	end  int64 // last offset the batch covers
	done bool
}

func newTracker() *tracker {
	return &tracker{next: -1, notify: make(chan struct{}, 1)}
}

// add registers a batch covering offsets up to end, in emission order.
func (t *tracker) add(end int64) *inflight {
	f := &inflight{end: end}
	t.mu.Lock()
	t.pending = append(t.pending, f)
	t.mu.Unlock()
	return f
}

// ack records the outcome of f. A failed batch stays pending forever, so
// nothing at or after it is ever committed.
func (t *tracker) ack(f *inflight, err error) {
	t.mu.Lock()
	if err != nil {
		if t.err == nil {
			t.err, t.errEnd = err, f.end
		}
	} else {
		f.done = true
		for len(t.pending) > 0 && t.pending[0].done {
			t.next = t.pending[0].end + 1
			t.pending[0] = nil
			t.pending = t.pending[1:]
		}
	}
	t.mu.Unlock()
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// state returns the committable offset (-1 for none), the number of
// batches not yet safely acknowledged, and the first failure.
func (t *tracker) state() (next int64, pending int, err error, errEnd int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next, len(t.pending), t.err, t.errEnd
}
