// Package cast is the "cast" transform: convert columns to other types,
// such as a string column of numbers to int64 or a comma-separated string
// to list<string>. A row whose value cannot be converted goes to the
// dead-letter output.
package cast

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
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
		Name:    "cast",
		Summary: "Convert columns to other types.",
		Doc: `Supported: string to and from int64, float64, bool and timestamp (RFC 3339);
string to list<string> (split on commas, an empty string is an empty list) and
back (joined with commas); int64 to and from float64 (whole numbers only);
int64 to bool (non-zero is true) and bool to int64. Strings are trimmed of
spaces before parsing. Nulls stay null. A value that does not convert sends
its row to the dead-letter output. A column cast to its own type is passed on
unchanged.`,
		Example: `transforms:
  typed:
    from: raw
    cast: {index: int64, tag_list: "list<string>", ingested_at: timestamp}`,
		Config: &spec.Field{Kind: spec.StringMap, Doc: "Mapping of column name to type."},
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

var castable = map[arrow.Type][]arrow.Type{
	arrow.STRING:    {arrow.INT64, arrow.FLOAT64, arrow.BOOL, arrow.TIMESTAMP, arrow.LIST},
	arrow.INT64:     {arrow.STRING, arrow.FLOAT64, arrow.BOOL},
	arrow.INT32:     {arrow.STRING, arrow.FLOAT64, arrow.BOOL, arrow.INT64},
	arrow.FLOAT64:   {arrow.STRING, arrow.INT64},
	arrow.BOOL:      {arrow.STRING, arrow.INT64},
	arrow.TIMESTAMP: {arrow.STRING},
	arrow.LIST:      {arrow.STRING},
}

func supported(from, to arrow.DataType) bool {
	if arrow.TypeEqual(from, to) {
		return true
	}
	if from.ID() == arrow.LIST && from.(*arrow.ListType).Elem().ID() != arrow.STRING {
		return false
	}
	if to.ID() == arrow.LIST && to.(*arrow.ListType).Elem().ID() != arrow.STRING {
		return false
	}
	for _, t := range castable[from.ID()] {
		if t == to.ID() {
			return true
		}
	}
	return false
}

type column struct {
	name string
	in   int
	to   arrow.DataType
}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	in := c.In()
	if in == nil {
		return nil, nil
	}
	fields := append([]arrow.Field(nil), in.Fields()...)
	var cols []column
	for _, e := range c.Config.Entries {
		j := in.FieldIndices(e.Key)
		if len(j) == 0 {
			xf.UnknownColumn(c, e.KeyPos, e.Key, in)
			continue
		}
		to, err := types.Parse(e.Value.Str)
		if err != nil {
			er := c.Errorf(e.Value.Pos, "unknown type %q", e.Value.Str)
			er.Code = "type"
			er.Hint = source.DidYouMean(e.Value.Str, types.Names())
			continue
		}
		from := in.Field(j[0]).Type
		if !supported(from, to) {
			c.Errorf(e.Value.Pos, "cannot cast '%s' from %s to %s", e.Key, types.Name(from), types.Name(to)).Code = "type"
			continue
		}
		fields[j[0]].Type = to
		if !arrow.TypeEqual(from, to) {
			cols = append(cols, column{name: e.Key, in: j[0], to: to})
		}
	}
	schema := arrow.NewSchema(fields, nil)
	return schema, func(r op.Resources) (any, error) {
		return &Cast{schema: schema, cols: cols, mem: xf.Alloc(r)}, nil
	}
}

// Cast converts columns.
type Cast struct {
	schema *arrow.Schema
	cols   []column
	mem    memory.Allocator

	mu   sync.Mutex
	bs   []array.Builder
	apps []arrowx.Appender
	keep []bool
}

// Process implements op.Transform.
func (t *Cast) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	if len(t.cols) == 0 {
		rec := array.NewRecordBatch(t.schema, in.Rec.Columns(), in.Rec.NumRows())
		in.Rec.Release()
		return xf.Emit(ctx, out, in.Ack, rec)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bs == nil {
		for _, c := range t.cols {
			b := array.NewBuilder(t.mem, c.to)
			t.bs = append(t.bs, b)
			t.apps = append(t.apps, arrowx.NewAppender(b))
		}
	}
	n := in.Rows()
	t.keep = append(t.keep[:0], make([]bool, n)...)
	for i := range t.keep {
		t.keep[i] = true
	}
	kept := n
	var rejectErr error
	for i, c := range t.cols {
		get := arrowx.NewGetter(in.Rec.Column(c.in))
		t.bs[i].Reserve(n)
		for r := range n {
			v, err := Convert(get(r), c.to)
			if err == nil {
				err = t.apps[i](v)
			}
			if err == nil {
				continue
			}
			t.bs[i].AppendNull()
			if !t.keep[r] {
				continue // already rejected for an earlier column
			}
			t.keep[r] = false
			kept--
			reason := fmt.Sprintf("cast: column '%s': %v", c.name, err)
			if rejectErr == nil {
				rejectErr = out.Reject(xf.RowJSON(in.Rec, r), reason)
			}
		}
	}
	cols := append([]arrow.Array(nil), in.Rec.Columns()...)
	for _, c := range cols {
		c.Retain()
	}
	for i, c := range t.cols {
		cols[c.in].Release()
		cols[c.in] = t.bs[i].NewArray()
	}
	rec := array.NewRecordBatch(t.schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	in.Rec.Release()
	if rejectErr != nil {
		rec.Release()
		in.Ack.Done(rejectErr)
		return rejectErr
	}
	return xf.EmitKept(ctx, out, t.mem, in.Ack, rec, t.keep, kept)
}

// Close releases the builders.
func (t *Cast) Close(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range t.bs {
		b.Release()
	}
	t.bs, t.apps = nil, nil
	return nil
}

// Convert converts a Go value (arrowx conventions) for a column of type to.
func Convert(v any, to arrow.DataType) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := func() (any, error) {
		return nil, fmt.Errorf("cannot convert %s to %s", describe(v), types.Name(to))
	}
	switch to.ID() {
	case arrow.STRING:
		if x, ok := v.([]string); ok {
			return strings.Join(x, ","), nil
		}
		if s, ok := arrowx.Text(v); ok {
			return s, nil
		}
	case arrow.INT64:
		switch x := v.(type) {
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return bad()
			}
			return n, nil
		case bool:
			if x {
				return 1, nil
			}
			return 0, nil
		case int, float64:
			return x, nil // the appender refuses fractions
		}
	case arrow.FLOAT64:
		switch x := v.(type) {
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil {
				return bad()
			}
			return f, nil
		case int:
			return float64(x), nil
		}
	case arrow.BOOL:
		switch x := v.(type) {
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return bad()
			}
			return b, nil
		case int:
			return x != 0, nil
		}
	case arrow.TIMESTAMP:
		if x, ok := v.(string); ok {
			ts, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(x))
			if err != nil {
				return bad()
			}
			return ts.UTC(), nil
		}
	case arrow.LIST:
		if x, ok := v.(string); ok {
			if x == "" {
				return []string{}, nil
			}
			return strings.Split(x, ","), nil
		}
	}
	return bad()
}

func describe(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%v", v)
}
