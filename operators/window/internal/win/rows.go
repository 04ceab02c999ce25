package win

import (
	"math"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// store holds the numeric aggregates of every slot row by row: slot s's
// words are w[s*stride : (s+1)*stride], each rowAcc owning some of them.
// A row of a known key updates one or two cache lines instead of one per
// aggregate slice, and emission gathers each group's words in one read.
type store struct {
	w      []uint64
	stride int
	buf    []uint64 // gathered rows, for put
}

func (st *store) grow(n int) { st.w = grow(st.w, n*st.stride) }

// clear zeroes slot s's words.
func (st *store) clear(s int32) {
	i := int(s) * st.stride
	clear(st.w[i : i+st.stride])
}

// gather copies the words of slots, in order, into a buffer valid until
// the next gather.
func (st *store) gather(slots []int32) []uint64 {
	st.buf = grow(st.buf[:0], len(slots)*st.stride)
	for i, s := range slots {
		copy(st.buf[i*st.stride:(i+1)*st.stride], st.w[int(s)*st.stride:])
	}
	return st.buf
}

// rowAcc is an aggregate whose state is a few words of the row store.
type rowAcc interface {
	acc
	words() int
	bind(st *store, off int)
	// putRows appends the results of gathered rows (stride words apart).
	putRows(b array.Builder, rows []uint64, stride int)
}

// row is the part every rowAcc shares: where its words are.
type row struct {
	st  *store
	off int
}

func (r *row) bind(st *store, off int) { r.st, r.off = st, off }
func (r *row) at(s int32) []uint64 {
	i := int(s)*r.st.stride + r.off
	return r.st.w[i : i+2 : i+2]
}
func (r *row) grow(int)    {} // the window grows the store
func (r *row) dyn() int64  { return 0 }
func (r *row) holds() bool { return false }

// reset zeroes a two-word state (countAcc has its own).
func (r *row) reset(s []int32) {
	for _, s := range s {
		i := int(s)*r.st.stride + r.off
		r.st.w[i], r.st.w[i+1] = 0, 0
	}
}

// countAcc: [n].
type countAcc struct {
	row
	col bool
}

func (a *countAcc) words() int   { return 1 }
func (a *countAcc) fixed() int64 { return 8 }
func (a *countAcc) add(v *view, rows, slots []int32, _ []int64) {
	w, st, off := a.st.w, a.st.stride, a.off
	if !a.col || !v.nulls {
		for _, s := range slots {
			w[int(s)*st+off]++
		}
		return
	}
	for i, r := range rows {
		if !v.null(r) {
			w[int(slots[i])*st+off]++
		}
	}
}
func (a *countAcc) merge(d, s int32) {
	a.st.w[int(d)*a.st.stride+a.off] += a.st.w[int(s)*a.st.stride+a.off]
}
func (a *countAcc) reset(slots []int32) {
	for _, s := range slots {
		a.st.w[int(s)*a.st.stride+a.off] = 0
	}
}
func (a *countAcc) put(b array.Builder, slots []int32) {
	a.putRows(b, a.st.gather(slots), a.st.stride)
}
func (a *countAcc) putRows(b array.Builder, rows []uint64, stride int) {
	bb := b.(*array.Int64Builder)
	for i := a.off; i < len(rows); i += stride {
		bb.Append(int64(rows[i]))
	}
}

// sumInt: [sum, n].
type sumInt struct{ row }

func (a *sumInt) words() int   { return 2 }
func (a *sumInt) fixed() int64 { return 16 }
func (a *sumInt) add(v *view, rows, slots []int32, _ []int64) {
	for i, r := range rows {
		if v.null(r) {
			continue
		}
		x := a.at(slots[i])
		x[0] += uint64(v.int(r))
		x[1]++
	}
}
func (a *sumInt) merge(d, s int32) {
	x, y := a.at(d), a.at(s)
	x[0] += y[0]
	x[1] += y[1]
}
func (a *sumInt) put(b array.Builder, slots []int32) { a.putRows(b, a.st.gather(slots), a.st.stride) }
func (a *sumInt) putRows(b array.Builder, rows []uint64, stride int) {
	bb := b.(*array.Int64Builder)
	for i := a.off; i < len(rows); i += stride {
		if rows[i+1] == 0 {
			bb.AppendNull()
		} else {
			bb.Append(int64(rows[i]))
		}
	}
}

// sumFloat: [sum bits, n].
type sumFloat struct{ row }

func (a *sumFloat) words() int   { return 2 }
func (a *sumFloat) fixed() int64 { return 16 }
func (a *sumFloat) add(v *view, rows, slots []int32, _ []int64) {
	for i, r := range rows {
		if v.null(r) {
			continue
		}
		x := a.at(slots[i])
		x[0] = math.Float64bits(math.Float64frombits(x[0]) + v.float(r))
		x[1]++
	}
}
func (a *sumFloat) merge(d, s int32) {
	x, y := a.at(d), a.at(s)
	x[0] = math.Float64bits(math.Float64frombits(x[0]) + math.Float64frombits(y[0]))
	x[1] += y[1]
}
func (a *sumFloat) put(b array.Builder, slots []int32) {
	a.putRows(b, a.st.gather(slots), a.st.stride)
}
func (a *sumFloat) putRows(b array.Builder, rows []uint64, stride int) {
	bb := b.(*array.Float64Builder)
	for i := a.off; i < len(rows); i += stride {
		if rows[i+1] == 0 {
			bb.AppendNull()
		} else {
			bb.Append(math.Float64frombits(rows[i]))
		}
	}
}

// avgAcc: [sum bits, n].
type avgAcc struct{ sumFloat }

func (a *avgAcc) put(b array.Builder, slots []int32) { a.putRows(b, a.st.gather(slots), a.st.stride) }
func (a *avgAcc) putRows(b array.Builder, rows []uint64, stride int) {
	bb := b.(*array.Float64Builder)
	for i := a.off; i < len(rows); i += stride {
		if rows[i+1] == 0 {
			bb.AppendNull()
		} else {
			bb.Append(math.Float64frombits(rows[i]) / float64(rows[i+1]))
		}
	}
}

// extInt is min or max over int64, int32 or timestamp columns: [v, set].
type extInt struct {
	row
	max bool
}

func (a *extInt) words() int   { return 2 }
func (a *extInt) fixed() int64 { return 16 }
func (a *extInt) add(v *view, rows, slots []int32, _ []int64) {
	for i, r := range rows {
		if v.null(r) {
			continue
		}
		a.fold(a.at(slots[i]), v.int(r))
	}
}
func (a *extInt) fold(x []uint64, y int64) {
	if x[1] == 0 || (a.max && y > int64(x[0])) || (!a.max && y < int64(x[0])) {
		x[0], x[1] = uint64(y), 1
	}
}
func (a *extInt) merge(d, s int32) {
	if y := a.at(s); y[1] != 0 {
		a.fold(a.at(d), int64(y[0]))
	}
}
func (a *extInt) put(b array.Builder, slots []int32) { a.putRows(b, a.st.gather(slots), a.st.stride) }
func (a *extInt) putRows(b array.Builder, rows []uint64, stride int) {
	if bb, ok := b.(*array.Int64Builder); ok {
		for i := a.off; i < len(rows); i += stride {
			if rows[i+1] == 0 {
				bb.AppendNull()
			} else {
				bb.Append(int64(rows[i]))
			}
		}
		return
	}
	for i := a.off; i < len(rows); i += stride {
		putInt(b, rows[i+1] != 0, int64(rows[i]))
	}
}

// extFloat is min or max over float64 columns: [v bits, set].
type extFloat struct {
	row
	max bool
}

func (a *extFloat) words() int   { return 2 }
func (a *extFloat) fixed() int64 { return 16 }
func (a *extFloat) add(v *view, rows, slots []int32, _ []int64) {
	for i, r := range rows {
		if v.null(r) {
			continue
		}
		a.fold(a.at(slots[i]), v.float(r))
	}
}
func (a *extFloat) fold(x []uint64, y float64) {
	if x[1] == 0 || (a.max && y > math.Float64frombits(x[0])) || (!a.max && y < math.Float64frombits(x[0])) {
		x[0], x[1] = math.Float64bits(y), 1
	}
}
func (a *extFloat) merge(d, s int32) {
	if y := a.at(s); y[1] != 0 {
		a.fold(a.at(d), math.Float64frombits(y[0]))
	}
}
func (a *extFloat) put(b array.Builder, slots []int32) {
	a.putRows(b, a.st.gather(slots), a.st.stride)
}
func (a *extFloat) putRows(b array.Builder, rows []uint64, stride int) {
	bb := b.(*array.Float64Builder)
	for i := a.off; i < len(rows); i += stride {
		if rows[i+1] == 0 {
			bb.AppendNull()
		} else {
			bb.Append(math.Float64frombits(rows[i]))
		}
	}
}
