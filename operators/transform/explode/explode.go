// Package explode is the "explode" transform: turn a list column into one
// row per element, repeating the other columns.
package explode

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/transform/internal/xf"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Transforms,
	Spec: spec.Spec{
		Name:    "explode",
		Summary: "One row per element of a list column.",
		Doc: `The list column is replaced by a column of its element type, holding one
element per row; the other columns are repeated. A row whose list is null or
empty produces no row, unless keep_empty is set: then it produces one row
with a null element.`,
		Example: `transforms:
  tags:
    from: clean
    explode: {column: tag_list}`,
		Config: &spec.Field{Kind: spec.Object, Scalar: "column", Fields: []*spec.Field{
			spec.F("column", spec.String, "The list column to explode.").Req(),
			spec.F("keep_empty", spec.Bool, "Keep a row with a null element for a null or empty list.").Def(false),
		}},
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	in := c.In()
	if in == nil {
		return nil, nil
	}
	cfg := c.Config
	name := cfg.String("column")
	if name == "" {
		return in, nil
	}
	j := in.FieldIndices(name)
	if len(j) == 0 {
		xf.UnknownColumn(c, cfg.PosOf("column"), name, in)
		return in, nil
	}
	col := j[0]
	lt, ok := in.Field(col).Type.(*arrow.ListType)
	if !ok {
		c.Errorf(cfg.PosOf("column"), "column '%s' is %s; explode needs a list", name, types.Name(in.Field(col).Type)).Code = "type"
		return in, nil
	}
	fields := append([]arrow.Field(nil), in.Fields()...)
	fields[col] = arrow.Field{Name: name, Type: lt.Elem(), Nullable: true}
	schema := arrow.NewSchema(fields, nil)
	keepEmpty := cfg.Boolean("keep_empty")
	return schema, func(r op.Resources) (any, error) {
		return &Explode{schema: schema, col: col, keepEmpty: keepEmpty, mem: xf.Alloc(r)}, nil
	}
}

// Explode turns a list column into rows.
type Explode struct {
	schema    *arrow.Schema
	col       int
	keepEmpty bool
	mem       memory.Allocator
}

// Process implements op.Transform.
func (e *Explode) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	list := in.Rec.Column(e.col).(*array.List)
	parent := array.NewInt64Builder(e.mem)
	defer parent.Release()
	elem := array.NewInt64Builder(e.mem)
	defer elem.Release()
	for r := range in.Rows() {
		start, end := list.ValueOffsets(r)
		if list.IsNull(r) || start == end {
			if e.keepEmpty {
				parent.Append(int64(r))
				elem.AppendNull()
			}
			continue
		}
		for k := start; k < end; k++ {
			parent.Append(int64(r))
			elem.Append(k)
		}
	}
	pidx, eidx := parent.NewArray(), elem.NewArray()
	defer pidx.Release()
	defer eidx.Release()
	if pidx.Len() == 0 {
		in.Release(nil)
		return nil
	}
	cols := make([]arrow.Array, in.Rec.NumCols())
	release := func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}
	var err error
	for i, c := range in.Rec.Columns() {
		if i == e.col {
			cols[i], err = xf.Take(ctx, e.mem, list.ListValues(), eidx)
		} else {
			cols[i], err = xf.Take(ctx, e.mem, c, pidx)
		}
		if err != nil {
			release()
			in.Release(err)
			return err
		}
	}
	rec := array.NewRecordBatch(e.schema, cols, int64(pidx.Len()))
	release()
	in.Rec.Release()
	return xf.Emit(ctx, out, in.Ack, rec)
}
