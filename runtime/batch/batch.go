// Package batch owns the unit in flight between nodes: an Arrow record batch
// and the acknowledgement of the source positions it came from. Acks count
// their derived children, so a batch may be split, fanned out or merged into
// a window and its source still learns exactly once when all of it is done.
// An ack also carries those positions as data (Position), so a sink can
// store them in its own transaction.
package batch

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
)

// Batch is a record batch with its acknowledgement. Whoever holds a Batch
// owns one reference to Rec and one to Ack and must pass both on or release
// both (Release).
//
// Final marks the last piece of Ack's rows that travels this path: a
// transform may emit several batches for one input, all under the input's
// ack, and only the last of them (in emission order) is final. The runtime
// sets it (operators do not): every batch a source emits is final; the last
// batch a transform emits under an ack during one call is final when its
// input was. A sink that stores positions (op.PositionStore) stores
// Ack.Positions() only with a final batch, after or with all its rows, so
// positions are never stored before every row they cover. When a path drops
// every row of a final piece (a filter), the runtime sends a marker instead:
// a final batch with Rec == nil and the ack, delivered only to sinks that
// store positions.
type Batch struct {
	Rec   arrow.RecordBatch
	Ack   *Ack
	Final bool
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

// Bytes returns the memory the batch's rows hold: for a slice, only the
// part of the buffers its rows cover (a 1-row slice of a 1M-row column
// counts one value, not the parent's buffers). Byte-bounded queues and the
// memory budget are charged with it. Cost: a few operations per column,
// none per row.
func (b Batch) Bytes() int64 {
	if b.Rec == nil {
		return 0
	}
	var n int64
	for _, c := range b.Rec.Columns() {
		d := c.Data()
		n += sizeOf(d, int64(d.Offset()), int64(d.Len()))
	}
	return n
}

// sizeOf returns the bytes that rows [off, off+n) of d use, where off is
// the absolute offset into d's buffers (d.Offset() already applied).
func sizeOf(d arrow.ArrayData, off, n int64) int64 {
	if n <= 0 {
		return 0
	}
	bufs := d.Buffers()
	var size int64
	if len(bufs) > 0 && bufs[0] != nil {
		size += (n + 7) / 8 // validity bitmap
	}
	switch t := d.DataType().(type) {
	case *arrow.NullType:
		return 0
	case *arrow.BooleanType:
		return size + (n+7)/8
	case *arrow.StringType, *arrow.BinaryType:
		o := arrow.Int32Traits.CastFromBytes(bufs[1].Bytes())
		return size + 4*(n+1) + int64(o[off+n]-o[off])
	case *arrow.LargeStringType, *arrow.LargeBinaryType:
		o := arrow.Int64Traits.CastFromBytes(bufs[1].Bytes())
		return size + 8*(n+1) + (o[off+n] - o[off])
	case *arrow.ListType, *arrow.MapType:
		o := arrow.Int32Traits.CastFromBytes(bufs[1].Bytes())
		c := d.Children()[0]
		first, last := int64(o[off]), int64(o[off+n])
		return size + 4*(n+1) + sizeOf(c, int64(c.Offset())+first, last-first)
	case *arrow.LargeListType:
		o := arrow.Int64Traits.CastFromBytes(bufs[1].Bytes())
		c := d.Children()[0]
		return size + 8*(n+1) + sizeOf(c, int64(c.Offset())+o[off], o[off+n]-o[off])
	case *arrow.FixedSizeListType:
		c := d.Children()[0]
		k := int64(t.Len())
		return size + sizeOf(c, int64(c.Offset())+off*k, n*k)
	case *arrow.StructType:
		for _, c := range d.Children() {
			size += sizeOf(c, int64(c.Offset())+off, n)
		}
		return size
	case *arrow.DictionaryType:
		if w, ok := t.IndexType.(arrow.FixedWidthDataType); ok {
			size += n * int64(w.BitWidth()) / 8
		}
		if dict := d.Dictionary(); dict != nil {
			size += sizeOf(dict, int64(dict.Offset()), int64(dict.Len()))
		}
		return size
	case arrow.FixedWidthDataType:
		return size + (n*int64(t.BitWidth())+7)/8
	}
	// Other layouts (unions, views, run-end encoded): every buffer, whole.
	for _, buf := range bufs {
		if buf != nil {
			size += int64(buf.Len())
		}
	}
	for _, c := range d.Children() {
		size += sizeOf(c, int64(c.Offset()), int64(c.Len()))
	}
	return size
}

// Position is a range of source input: offsets First through Last
// (inclusive) of one partition of one topic, read by the source node named
// Source (its Resources.Node). Sources without topics or partitions use ""
// and 0.
type Position struct {
	Source    string
	Topic     string
	Partition int32
	First     int64
	Last      int64
}

// Ack tracks completion of one unit of source input. It starts with one
// reference; Retain adds one per extra holder and Done drops one. When the
// count reaches zero the callback runs once with the first error seen.
// A nil *Ack is valid and does nothing, for tests and sources without positions.
type Ack struct {
	refs      atomic.Int64
	once      sync.Once
	abandoned atomic.Bool
	mu        sync.Mutex
	err       error
	fn        func(error)
	onDone    atomic.Pointer[func(error)]
	pos       []Position
}

// NewAck returns an ack holding one reference that calls fn when done.
func NewAck(fn func(error)) *Ack {
	a := &Ack{fn: fn}
	a.refs.Store(1)
	return a
}

// WithPositions records the source positions a covers and returns a. Call
// it before the ack is shared (before Emit); a keeps ps, which the caller
// must not change afterwards.
func (a *Ack) WithPositions(ps ...Position) *Ack {
	a.pos = ps
	return a
}

// Positions returns the source positions the ack covers, sorted and
// coalesced for merged acks; nil for an ack without positions. The slice is
// shared: do not modify it.
func (a *Ack) Positions() []Position {
	if a == nil {
		return nil
	}
	return a.pos
}

// OnDone installs f to run, with the ack's error, just before the callback
// (the runtime measures ack latency with it). One per ack: only the first
// call installs anything.
func (a *Ack) OnDone(f func(error)) {
	if a != nil {
		a.onDone.CompareAndSwap(nil, &f)
	}
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
		a.finish()
	case n < 0:
		if !a.abandoned.Load() {
			panic("batch: Ack done more often than retained")
		}
	}
}

func (a *Ack) finish() {
	a.once.Do(func() {
		a.mu.Lock()
		err := a.err
		a.mu.Unlock()
		if f := a.onDone.Load(); f != nil {
			(*f)(err)
		}
		if a.fn != nil {
			a.fn(err)
		}
	})
}

// Abandon finishes the ack now with err, whatever references are still
// out; later Done calls are ignored. It is for a holder that lost track of
// its references (a transform that panicked with the batch in hand), so the
// source still learns that the input failed.
func (a *Ack) Abandon(err error) {
	if a == nil {
		return
	}
	if err == nil {
		err = ErrDropped
	}
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
	a.abandoned.Store(true)
	a.finish()
}

// Merge returns an ack that, when done, finishes every one of acks with the
// same error. It takes over the caller's reference to each of acks: this is
// how a window or a batching sink holds many inputs under one result. Its
// positions are the union of the parents' (see MergePositions).
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
	var ps []Position
	for _, p := range parents {
		ps = append(ps, p.pos...)
	}
	return NewAck(func(err error) {
		for _, p := range parents {
			p.Done(err)
		}
	}).WithPositions(MergePositions(ps)...)
}

// MergePositions sorts ps by source, topic, partition and offset and joins
// overlapping or adjacent ranges of one partition; ranges with a gap between
// them stay apart. It reuses ps's storage.
func MergePositions(ps []Position) []Position {
	if len(ps) < 2 {
		return ps
	}
	slices.SortFunc(ps, func(a, b Position) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Topic, b.Topic),
			cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.First, b.First))
	})
	out := ps[:1]
	for _, p := range ps[1:] {
		last := &out[len(out)-1]
		if p.Source == last.Source && p.Topic == last.Topic && p.Partition == last.Partition && p.First <= last.Last+1 {
			last.Last = max(last.Last, p.Last)
			continue
		}
		out = append(out, p)
	}
	return out
}

// ErrDropped marks an ack whose data was abandoned because the run stopped.
var ErrDropped = errors.New("batch dropped: pipeline stopping")
