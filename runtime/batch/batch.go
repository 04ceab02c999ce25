// Package batch owns the unit in flight between nodes: an Arrow record batch
// and the acknowledgement of the source positions it came from. Acks count
// their derived children, so a batch may be split, fanned out or merged into
// a window and its source still learns exactly once when all of it is done.
package batch

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
)

// Batch is a record batch with its acknowledgement. Whoever holds a Batch
// owns one reference to Rec and one to Ack and must pass both on or release
// both (Release).
type Batch struct {
	Rec arrow.RecordBatch
	Ack *Ack
}

// Rows returns the number of rows, 0 for an empty batch.
func (b Batch) Rows() int {
	if b.Rec == nil {
		return 0
	}
	return int(b.Rec.NumRows())
}

// Release drops the record and acknowledges it with err (nil = done).
func (b Batch) Release(err error) {
	if b.Rec != nil {
		b.Rec.Release()
	}
	b.Ack.Done(err)
}

// Bytes estimates the batch's memory, for byte-bounded queues.
func (b Batch) Bytes() int64 {
	if b.Rec == nil {
		return 0
	}
	var n int64
	for _, c := range b.Rec.Columns() {
		n += int64(sizeOf(c.Data()))
	}
	return n
}

func sizeOf(d arrow.ArrayData) int {
	n := 0
	for _, buf := range d.Buffers() {
		if buf != nil {
			n += buf.Len()
		}
	}
	for _, c := range d.Children() {
		n += sizeOf(c)
	}
	return n
}

// Ack tracks completion of one unit of source input. It starts with one
// reference; Retain adds one per extra holder and Done drops one. When the
// count reaches zero the callback runs once with the first error seen.
// A nil *Ack is valid and does nothing, for tests and sources without positions.
type Ack struct {
	refs atomic.Int64
	once sync.Once
	mu   sync.Mutex
	err  error
	fn   func(error)
}

// NewAck returns an ack holding one reference that calls fn when done.
func NewAck(fn func(error)) *Ack {
	a := &Ack{fn: fn}
	a.refs.Store(1)
	return a
}

// Retain adds n references, one per extra holder (a fan-out, a split).
func (a *Ack) Retain(n int) {
	if a == nil || n == 0 {
		return
	}
	if a.refs.Add(int64(n)) <= int64(n) {
		panic("batch: Retain on a finished Ack")
	}
}

// Done drops one reference; err (if any) marks the whole ack failed.
func (a *Ack) Done(err error) {
	if a == nil {
		return
	}
	if err != nil {
		a.mu.Lock()
		if a.err == nil {
			a.err = err
		}
		a.mu.Unlock()
	}
	switch n := a.refs.Add(-1); {
	case n == 0:
		a.once.Do(func() {
			a.mu.Lock()
			err := a.err
			a.mu.Unlock()
			if a.fn != nil {
				a.fn(err)
			}
		})
	case n < 0:
		panic("batch: Ack done more often than retained")
	}
}

// Merge returns an ack that, when done, finishes every one of acks with the
// same error. It takes over the caller's reference to each of acks: this is
// how a window or a batching sink holds many inputs under one result.
func Merge(acks ...*Ack) *Ack {
	parents := make([]*Ack, 0, len(acks))
	for _, a := range acks {
		if a != nil {
			parents = append(parents, a)
		}
	}
	if len(parents) == 0 {
		return nil
	}
	if len(parents) == 1 {
		return parents[0]
	}
	return NewAck(func(err error) {
		for _, p := range parents {
			p.Done(err)
		}
	})
}

// ErrDropped marks an ack whose data was abandoned because the run stopped.
var ErrDropped = errors.New("batch dropped: pipeline stopping")
