package jsondec

import (
	"encoding/binary"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// strCol builds one top-level string or binary column in buffers of its
// own (from the decoder's allocator): appending a value is a copy and a
// store, without the per-value capacity checks and indirect calls of
// array.BinaryBuilder, which were a fifth of the decoder's time. The
// validity bitmap is only made once a batch has a null.
type strCol struct {
	typ   arrow.DataType
	alloc memory.Allocator

	valid, offs, data *memory.Buffer // nil until the batch's first value
	v, o, b           []byte         // their bytes, to full capacity
	n, nulls, size    int            // rows, null rows, data bytes

	wantRows, wantSize int // capacity hints from the previous batch
}

func newStrCol(typ arrow.DataType, alloc memory.Allocator) *strCol {
	return &strCol{typ: typ, alloc: alloc}
}

// start allocates the buffers of a new batch, sized like the last one.
func (c *strCol) start() {
	c.offs = memory.NewResizableBuffer(c.alloc)
	c.offs.Reserve(4 * (max(c.wantRows, 64) + 1))
	c.o = c.offs.Buf()
	binary.LittleEndian.PutUint32(c.o, 0)
	c.data = memory.NewResizableBuffer(c.alloc)
	c.data.Reserve(max(c.wantSize, 1024))
	c.b = c.data.Buf()
}

// room makes room for one more row of extra data bytes.
func (c *strCol) room(extra int) {
	if c.offs == nil {
		c.start()
	}
	if need := 4 * (c.n + 2); need > len(c.o) {
		c.offs.Reserve(max(need, 2*len(c.o)))
		c.o = c.offs.Buf()
	}
	if need := c.size + extra; need > len(c.b) {
		c.data.Reserve(max(need, 2*len(c.b)))
		c.b = c.data.Buf()
	}
	if c.valid != nil {
		if need := int(bitutil.BytesForBits(int64(c.n + 1))); need > len(c.v) {
			old := len(c.v)
			c.valid.Reserve(max(need, 2*old))
			c.v = c.valid.Buf()
			clear(c.v[old:])
		}
	}
}

func (c *strCol) append(s []byte) {
	c.room(len(s))
	c.size += copy(c.b[c.size:c.size+len(s)], s)
	if c.valid != nil {
		bitutil.SetBit(c.v, c.n)
	}
	c.n++
	binary.LittleEndian.PutUint32(c.o[4*c.n:], uint32(c.size)) //nolint:gosec // the decoder keeps a batch under 2 GiB
}

func (c *strCol) appendNull() {
	c.room(0)
	if c.valid == nil {
		// The batch's first null: every earlier row was valid.
		c.valid = memory.NewResizableBuffer(c.alloc)
		c.valid.Reserve(int(bitutil.BytesForBits(int64(max(c.wantRows, c.n+1, 64)))))
		c.v = c.valid.Buf()
		clear(c.v)
		bitutil.SetBitsTo(c.v, 0, int64(c.n), true)
	}
	c.n++
	c.nulls++
	binary.LittleEndian.PutUint32(c.o[4*c.n:], uint32(c.size)) //nolint:gosec // the decoder keeps a batch under 2 GiB
}

// finish returns the column's array (the caller releases it) and starts
// the next batch empty, to be sized like this one.
func (c *strCol) finish() arrow.Array {
	if c.offs == nil { // no rows: one zero offset, and keep the hints
		data := array.NewData(c.typ, 0, []*memory.Buffer{nil, memory.NewBufferBytes(make([]byte, 4)), memory.NewBufferBytes([]byte{})}, nil, 0, 0)
		defer data.Release()
		return array.MakeFromData(data)
	}
	c.offs.ResizeNoShrink(4 * (c.n + 1))
	c.data.ResizeNoShrink(c.size)
	var valid *memory.Buffer
	if c.valid != nil {
		c.valid.ResizeNoShrink(int(bitutil.BytesForBits(int64(c.n))))
		valid = c.valid
	}
	data := array.NewData(c.typ, c.n, []*memory.Buffer{valid, c.offs, c.data}, nil, c.nulls, 0)
	arr := array.MakeFromData(data)
	data.Release()
	c.wantRows, c.wantSize = c.n, c.size+c.size/8
	c.release()
	return arr
}

// release drops the decoder's references to the buffers.
func (c *strCol) release() {
	for _, b := range []*memory.Buffer{c.valid, c.offs, c.data} {
		if b != nil {
			b.Release()
		}
	}
	c.valid, c.offs, c.data = nil, nil, nil
	c.v, c.o, c.b = nil, nil, nil
	c.n, c.nulls, c.size = 0, 0, 0
}
