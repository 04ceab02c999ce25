// Package mapop is the "map" transform: compute columns from expressions,
// replacing existing columns in place or appending new ones.
package mapop

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/transform/internal/xf"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Transforms,
	Spec: spec.Spec{
		Name:    "map",
		Summary: "Compute columns from expressions.",
		Doc: `Each key is a column; its expression is evaluated on every row. A key naming
an input column replaces it in place (its type may change); a new key appends
a column, in the order written. Every expression sees the input row, not the
results of the other expressions of the same map: chain two map nodes to use
a computed value. Columns not mapped are passed on without copying. A row
whose evaluation fails goes to the dead-letter output and is left out.`,
		Example: `transforms:
  clean:
    from: posts
    map:
      follower_count: parse_count(follower_count)
      save_location: 'trimPrefix(save_location, "Local save in ")'`,
		Config: &spec.Field{Kind: spec.ExprMap, Doc: "Mapping of column name to expression."},
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

// rowPath forces every column onto the row-by-row VM path (tests).
var rowPath = false

type column struct {
	name string
	prog *exprc.Program
	out  int // index in the output schema
}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	in := c.In()
	if in == nil {
		return nil, nil
	}
	if len(c.Config.Entries) == 0 && c.Config.Set {
		c.Errorf(c.Config.Pos, "map needs at least one column: expression")
	}
	fields := append([]arrow.Field(nil), in.Fields()...)
	src := make([]int, len(fields)) // output column → input column, or -1
	for i := range src {
		src[i] = i
	}
	var cols []column
	ok := true
	for _, e := range c.Config.Entries {
		prog, errs := exprc.Compile(e.Value.Expr, in)
		c.Errs.Append(errs)
		if prog == nil {
			ok = false
			continue
		}
		f := arrow.Field{Name: e.Key, Type: prog.Type(), Nullable: true}
		at := -1
		if j := in.FieldIndices(e.Key); len(j) > 0 {
			at = j[0]
			fields[at] = f
			src[at] = -1
		} else {
			at = len(fields)
			fields = append(fields, f)
			src = append(src, -1)
		}
		cols = append(cols, column{name: e.Key, prog: prog, out: at})
	}
	schema := arrow.NewSchema(fields, nil)
	if !ok {
		return schema, nil
	}
	return schema, func(r op.Resources) (any, error) {
		return &Map{schema: schema, src: src, cols: cols, mem: xf.Alloc(r)}, nil
	}
}

// Map computes columns from expressions.
type Map struct {
	schema *arrow.Schema
	src    []int
	cols   []column
	mem    memory.Allocator

	mu   sync.Mutex
	evs  []*exprc.Evaluator
	bs   []array.Builder
	apps []arrowx.Appender
	keep []bool
	// bad is each row's first failing column (-1: none), msgs its reason.
	bad  []int32
	msgs []string
	cur  int // column being computed by EvalColumn
	// reject records a row failed by column cur.
	reject func(row int, err error)
	// dataBytes is each string column's value bytes in the last batch (a
	// list<string> column's element bytes), and listVals a list column's
	// element count, to
	// reserve the next batch's buffer at once instead of growing it.
	dataBytes []int
	listVals  []int
}

func (m *Map) init() {
	if m.evs != nil {
		return
	}
	for _, c := range m.cols {
		m.evs = append(m.evs, c.prog.NewEvaluator())
		b := array.NewBuilder(m.mem, c.prog.Type())
		m.bs = append(m.bs, b)
		m.apps = append(m.apps, arrowx.NewAppender(b))
	}
	m.reject = func(r int, err error) {
		if m.bad[r] < 0 {
			m.bad[r], m.msgs[r] = int32(m.cur), xf.EvalMsg(err)
		}
	}
	m.dataBytes = make([]int, len(m.cols))
	m.listVals = make([]int, len(m.cols))
}

// Process implements op.Transform.
func (m *Map) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	n := in.Rows()
	m.keep = slices.Grow(m.keep[:0], n)[:n]
	clear(m.keep)
	for i, ev := range m.evs {
		if !m.cols[i].prog.Columnar() || rowPath {
			ev.Bind(in.Rec)
		}
		m.bs[i].Reserve(n)
		if sb, ok := m.bs[i].(*array.StringBuilder); ok && m.dataBytes[i] > 0 {
			sb.ReserveData(m.dataBytes[i] + m.dataBytes[i]/8)
		}
		if lb, ok := m.bs[i].(*array.ListBuilder); ok && m.listVals[i] > 0 {
			vb := lb.ValueBuilder()
			vb.Reserve(m.listVals[i] + m.listVals[i]/8)
			if sb, ok := vb.(*array.StringBuilder); ok && m.dataBytes[i] > 0 {
				sb.ReserveData(m.dataBytes[i] + m.dataBytes[i]/8)
			}
		}
	}
	// Every builder gets one value per input row (null for a rejected row),
	// so that the rejected rows are then dropped from all columns at once.
	// Columns are computed one at a time, by the columnar kernel when the
	// expression has one; a row's reason is that of its first failing
	// column, as if the columns were evaluated left to right.
	m.bad = slices.Grow(m.bad[:0], n)[:n]
	for r := range m.bad {
		m.bad[r] = -1
	}
	m.msgs = slices.Grow(m.msgs[:0], n)[:n]
	for i, ev := range m.evs {
		if m.cols[i].prog.Columnar() && !rowPath {
			m.cur = i
			if err := ev.EvalColumn(in.Rec, m.bs[i], m.reject); err != nil {
				for _, b := range m.bs {
					b.NewArray().Release()
				}
				in.Release(err)
				return err
			}
			continue
		}
		for r := range n {
			if m.bad[r] >= 0 {
				m.bs[i].AppendNull()
				continue
			}
			v, err := ev.Eval(r)
			var msg string
			if err != nil {
				msg = xf.EvalMsg(err)
				m.bs[i].AppendNull()
			} else if err := m.apps[i](v); err != nil {
				msg = err.Error()
				m.bs[i].AppendNull()
			} else {
				continue
			}
			m.bad[r], m.msgs[r] = int32(i), msg
		}
	}
	kept := 0
	var rejectErr error
	for r := range n {
		if m.bad[r] < 0 {
			m.keep[r] = true
			kept++
			continue
		}
		reason := fmt.Sprintf("map: column '%s': %s", m.cols[m.bad[r]].name, m.msgs[r])
		if err := out.Reject(xf.RowJSON(in.Rec, r), reason); err != nil {
			rejectErr = err
			break
		}
	}
	clear(m.msgs)
	if rejectErr != nil {
		for _, b := range m.bs {
			b.NewArray().Release()
		}
		in.Release(rejectErr)
		return rejectErr
	}
	cols := make([]arrow.Array, len(m.src))
	for i, j := range m.src {
		if j >= 0 {
			cols[i] = in.Rec.Column(j)
			cols[i].Retain()
		}
	}
	for i, c := range m.cols {
		cols[c.out] = m.bs[i].NewArray()
		if sa, ok := cols[c.out].(*array.String); ok && sa.Len() > 0 {
			m.dataBytes[i] = len(sa.ValueBytes())
		}
		if la, ok := cols[c.out].(*array.List); ok && la.Len() > 0 {
			vals := la.ListValues()
			m.listVals[i] = vals.Len()
			if sa, ok := vals.(*array.String); ok && sa.Len() > 0 {
				m.dataBytes[i] = len(sa.ValueBytes())
			}
		}
	}
	rec := array.NewRecordBatch(m.schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	in.Rec.Release()
	return xf.EmitKept(ctx, out, m.mem, in.Ack, rec, m.keep, kept)
}

// Close releases the builders.
func (m *Map) Close(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.bs {
		b.Release()
	}
	m.bs, m.evs = nil, nil
	return nil
}
