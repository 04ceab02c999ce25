package op

import (
	"context"
	"sync"
)

// DefaultMemoryBytes is the default pipeline-wide memory budget, sized for a
// small machine (2 cores, 1–2 GiB of RAM): what is in flight in queues,
// operator buffers and request bodies together.
const DefaultMemoryBytes = 256 << 20

// Budget is the pipeline-wide memory budget. The runtime charges every
// batch in a queue from its push until its consumer is done with it;
// operators charge what they hold that the queues do not see (buffered
// rows, HTTP request bodies in flight) and release it when done. A nil
// *Budget is unlimited.
//
// A single charge larger than the whole budget is allowed when nothing else
// is charged, so one oversized item still passes, alone.
type Budget struct {
	mu    sync.Mutex
	limit int64
	used  int64
	peak  int64
	wake  chan struct{} // closed on the next Release; nil when nobody waits
}

// NewBudget returns a budget of limit bytes (DefaultMemoryBytes if limit <= 0).
func NewBudget(limit int64) *Budget {
	if limit <= 0 {
		limit = DefaultMemoryBytes
	}
	return &Budget{limit: limit}
}

// Limit returns the budget's size in bytes (0 for a nil budget: unlimited).
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// InUse returns the bytes charged now.
func (b *Budget) InUse() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Peak returns the most bytes ever charged at once.
func (b *Budget) Peak() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// TryAcquire charges n bytes if they fit now and reports whether it did.
func (b *Budget) TryAcquire(n int64) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n <= b.limit || b.used == 0 {
		b.charge(n)
		return true
	}
	return false
}

// Acquire charges n bytes, waiting until they fit or ctx ends.
func (b *Budget) Acquire(ctx context.Context, n int64) error {
	if b.TryAcquire(n) {
		return nil
	}
	for {
		wake := b.Changed() // before the check, so no release is missed
		if b.TryAcquire(n) {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Charge takes n bytes without waiting, even beyond the limit. It is for a
// holder that must make progress to free memory (the runtime uses it so a
// push into an empty queue never deadlocks on the budget).
func (b *Budget) Charge(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.charge(n)
	b.mu.Unlock()
}

func (b *Budget) charge(n int64) {
	b.used += n
	b.peak = max(b.peak, b.used)
}

// Release returns n bytes charged earlier.
func (b *Budget) Release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.used < 0 {
		b.mu.Unlock()
		panic("op: Budget released more than was charged")
	}
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	b.mu.Unlock()
}

// Changed returns a channel closed at the next Release, to wait for room
// together with other events. A nil budget's channel never closes.
func (b *Budget) Changed() <-chan struct{} {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wake == nil {
		b.wake = make(chan struct{})
	}
	return b.wake
}
