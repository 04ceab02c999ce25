package exprc

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/expr-lang/expr/file"
)

// Columnar reports whether the expression has a columnar kernel: a typed
// evaluation of the whole batch without the expr VM, used by EvalColumn.
// Expressions made only of columns (string, int64, float64, bool),
// literals, the cleaning functions, ==, !=, in, ??, &&, ||, ! and ?:
// have one; the results are those of Eval.
func (p *Program) Columnar() bool { return p.kern != nil }

// Typed views of a bound column. Null checks read the validity bitmap
// directly; a column without nulls skips them.
type stringCol struct {
	arr   *array.String
	valid []byte
	off   int
}

func (a *stringCol) isNull(r int) bool {
	return a.valid != nil && !bitutil.BitIsSet(a.valid, a.off+r)
}

func (a *stringCol) value(r int) string { return a.arr.Value(r) }

type int64Col struct {
	vals  []int64
	valid []byte
	off   int
}

func (a *int64Col) isNull(r int) bool {
	return a.valid != nil && !bitutil.BitIsSet(a.valid, a.off+r)
}

type float64Col struct {
	vals  []float64
	valid []byte
	off   int
}

func (a *float64Col) isNull(r int) bool {
	return a.valid != nil && !bitutil.BitIsSet(a.valid, a.off+r)
}

type boolCol struct {
	arr   *array.Boolean
	valid []byte
	off   int
}

func (a *boolCol) isNull(r int) bool {
	return a.valid != nil && !bitutil.BitIsSet(a.valid, a.off+r)
}

func validity(a arrow.Array) []byte {
	if a.NullN() == 0 {
		return nil
	}
	return a.NullBitmapBytes()
}

// bindKernel points the kernel context at rec's columns.
func (e *Evaluator) bindKernel(rec arrow.RecordBatch) error {
	k := e.p.kern
	c := &e.kc
	c.strs = c.strs[:0]
	c.ints = c.ints[:0]
	c.flts = c.flts[:0]
	c.bools = c.bools[:0]
	bad := func(i int) error {
		return fmt.Errorf("exprc: column %d of the batch is %s, not the compiled type", i, rec.Column(i).DataType())
	}
	if int(rec.NumCols()) != len(k.schemaTypes) {
		return fmt.Errorf("exprc: batch has %d columns, the expression was compiled for %d", rec.NumCols(), len(k.schemaTypes))
	}
	for _, i := range k.strCols {
		a, ok := rec.Column(i).(*array.String)
		if !ok {
			return bad(i)
		}
		c.strs = append(c.strs, stringCol{arr: a, valid: validity(a), off: a.Data().Offset()})
	}
	for _, i := range k.intCols {
		a, ok := rec.Column(i).(*array.Int64)
		if !ok {
			return bad(i)
		}
		c.ints = append(c.ints, int64Col{vals: a.Int64Values(), valid: validity(a), off: a.Data().Offset()})
	}
	for _, i := range k.fltCols {
		a, ok := rec.Column(i).(*array.Float64)
		if !ok {
			return bad(i)
		}
		c.flts = append(c.flts, float64Col{vals: a.Float64Values(), valid: validity(a), off: a.Data().Offset()})
	}
	for _, i := range k.boolCols {
		a, ok := rec.Column(i).(*array.Boolean)
		if !ok {
			return bad(i)
		}
		c.bools = append(c.bools, boolCol{arr: a, valid: validity(a), off: a.Data().Offset()})
	}
	return nil
}

// kernelError is the EvalError the VM reports for the same failure.
func (e *Evaluator) kernelError(err error) error {
	if err == errNull {
		return &EvalError{Expr: e.p.src.Src, Pos: e.p.src.Pos, Msg: nullMsg}
	}
	if p, ok := err.(panicError); ok {
		// As the VM: a panic becomes a file.Error wrapping it if it is an
		// error, which evalError words.
		fe := &file.Error{Message: p.Error()}
		if pe, ok := p.v.(error); ok {
			fe.Wrap(pe)
		}
		return evalError(e.p, fe)
	}
	return &EvalError{Expr: e.p.src.Src, Pos: e.p.src.Pos, Msg: err.Error(), Err: err}
}

// EvalColumn evaluates a Columnar program on every row of rec, appending
// one value per row to b, which must be a builder of the Program's Type.
// A row that fails gets a null, and rejects (if not nil) is called with
// the row and the same *EvalError Eval would return. The returned error
// is for misuse only: no kernel, or a batch or builder of the wrong type.
// The Evaluator does not retain rec; appended strings are copied into b.
func (e *Evaluator) EvalColumn(rec arrow.RecordBatch, b array.Builder, rejects func(row int, err error)) error {
	k := e.p.kern
	if k == nil {
		return fmt.Errorf("exprc: expression %q has no columnar kernel", e.p.src.Src)
	}
	if !arrow.TypeEqual(b.Type(), e.p.typ) {
		return fmt.Errorf("exprc: builder of type %s for an expression of type %s", b.Type(), e.p.typ)
	}
	if err := e.bindKernel(rec); err != nil {
		return err
	}
	n := int(rec.NumRows())
	fail := func(r int, err error) {
		b.AppendNull()
		if rejects != nil {
			rejects(r, e.kernelError(err))
		}
	}
	if k.root.k == kList {
		e.pieces = b.(*array.ListBuilder).ValueBuilder().(*array.StringBuilder)
		if e.appendPiece == nil {
			e.appendPiece = func(s string) { e.pieces.Append(s) }
		}
	}
	for row := 0; row < n; {
		row = e.evalRows(b, row, n, fail)
	}
	e.pieces = nil
	e.kc.release()
	return nil
}

// evalRows evaluates rows from..n-1 and returns n. A panic in a function
// fails its row, as the VM does, and evaluation resumes after it.
func (e *Evaluator) evalRows(b array.Builder, from, n int, fail func(int, error)) (next int) {
	r := from
	defer func() {
		if x := recover(); x != nil {
			fail(r, panicErr(x))
			next = r + 1
		}
	}()
	c := &e.kc
	root := e.p.kern.root
	switch root.k {
	case kStr:
		sb := b.(*array.StringBuilder)
		fillRows(c, &r, n, root.s.s, sb.Append, sb.AppendNull, fail)
	case kInt:
		if e.p.kern.intAsFloat {
			fb := b.(*array.Float64Builder)
			fillRows(c, &r, n, root.i.i, func(v int) { fb.Append(float64(v)) }, fb.AppendNull, fail)
			break
		}
		ib := b.(*array.Int64Builder)
		fillRows(c, &r, n, root.i.i, func(v int) { ib.Append(int64(v)) }, ib.AppendNull, fail)
	case kFloat:
		fb := b.(*array.Float64Builder)
		fillRows(c, &r, n, root.f.f, fb.Append, fb.AppendNull, fail)
	case kBool:
		bb := b.(*array.BooleanBuilder)
		fillRows(c, &r, n, root.b.b, bb.Append, bb.AppendNull, fail)
	case kList:
		lb := b.(*array.ListBuilder)
		fillRows(c, &r, n, root.l.l, func(v splitVal) {
			lb.Append(true)
			splitEach(v, e.appendPiece)
		}, lb.AppendNull, fail)
	}
	return n
}

// fillRows appends eval's value for rows *r..n-1 through put (null for a
// missing value) and reports failures; *r is the current row, so a panic
// recovered by the caller is charged to the right one.
func fillRows[T any](c *kctx, r *int, n int, eval func(*kctx, int) (T, bool, error), put func(T), null func(), fail func(int, error)) {
	for ; *r < n; *r++ {
		v, ok, err := eval(c, *r)
		switch {
		case err != nil:
			fail(*r, err)
		case ok:
			put(v)
		default:
			null()
		}
	}
}

// panicError is the error the VM makes of a panic (a runtime error in a
// function, say).
type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprintf("%v", p.v) }

func panicErr(x any) error { return panicError{x} }

// release drops the references to the batch's arrays.
func (c *kctx) release() {
	clear(c.strs)
	clear(c.ints)
	clear(c.flts)
	clear(c.bools)
}
