// Package recycle owns an Arrow allocator that keeps freed buffers and
// hands them out again, for a node that builds batch after batch of the
// same shape (the kafka source decodes ~800 KB of Arrow columns per 1024
// posts). Fresh buffers from Go's allocator are zeroed large allocations
// that feed the garbage collector; a recycled one is only cleared.
//
// Buffers are kept by size class (powers of two and the midpoints between
// them, 512 B to 16 MiB; larger requests pass through), up to a byte limit.
// A recycled buffer is zeroed up to the requested size, and a Reallocate
// that grows within its class zeroes the new bytes: callers see what the
// parent allocator gives them, zeroed memory.
//
// Safe for concurrent use: sinks release (Free) on their own goroutines.
package recycle

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

const (
	minClass = 512
	maxClass = 16 << 20
)

// Allocator recycles buffers of a parent allocator. Close it when its
// owner stops allocating.
type Allocator struct {
	parent memory.Allocator
	limit  int

	mu     sync.Mutex
	free   map[int][][]byte // by class size
	held   int              // bytes in free
	closed bool
}

var _ memory.Allocator = (*Allocator)(nil)

// New returns an allocator that takes buffers from parent and keeps up to
// limit bytes of freed ones for reuse.
func New(parent memory.Allocator, limit int) *Allocator {
	return &Allocator{parent: parent, limit: limit, free: map[int][][]byte{}}
}

// class is the size class for n bytes (0: not recycled).
func class(n int) int {
	if n <= 0 || n > maxClass {
		return 0
	}
	if n <= minClass {
		return minClass
	}
	p := 1 << bits.Len(uint(n-1)) // the power of two at or above n
	if mid := p/2 + p/4; n <= mid {
		return mid
	}
	return p
}

// Allocate returns size zeroed bytes.
func (a *Allocator) Allocate(size int) []byte {
	c := class(size)
	if c == 0 {
		return a.parent.Allocate(size)
	}
	a.mu.Lock()
	if l := a.free[c]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		a.free[c] = l[:len(l)-1]
		a.held -= c
		a.mu.Unlock()
		b = b[:size]
		clear(b)
		return b
	}
	a.mu.Unlock()
	return a.parent.Allocate(c)[:size:c]
}

// Reallocate resizes b to size bytes, keeping its contents; bytes beyond
// len(b) are zero.
func (a *Allocator) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) && class(cap(b)) == cap(b) {
		n := len(b)
		b = b[:size]
		if size > n {
			clear(b[n:])
		}
		return b
	}
	nb := a.Allocate(size)
	copy(nb, b)
	if cap(b) > 0 {
		a.Free(b)
	}
	return nb
}

// Free takes b back: kept for reuse while there is room, else returned
// to the parent allocator.
func (a *Allocator) Free(b []byte) {
	c := cap(b)
	if c == 0 || class(c) != c {
		a.parent.Free(b)
		return
	}
	b = b[:c]
	a.mu.Lock()
	if !a.closed && a.held+c <= a.limit {
		a.free[c] = append(a.free[c], b)
		a.held += c
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	a.parent.Free(b)
}

// Close returns every kept buffer to the parent; buffers freed later go
// straight to it.
func (a *Allocator) Close() {
	a.mu.Lock()
	free := a.free
	a.free, a.held, a.closed = map[int][][]byte{}, 0, true
	a.mu.Unlock()
	for _, l := range free {
		for _, b := range l {
			a.parent.Free(b)
		}
	}
}
