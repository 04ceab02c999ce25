// Package filter is the "filter" transform: keep the rows where a boolean
// expression is true.
package filter

import (
	"context"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

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
		Name:    "filter",
		Summary: "Keep the rows where an expression is true.",
		Doc: `Rows where the expression is false or null are dropped (counted as
filtered, not dead letters): a null is unknown, and unknown is not true. Write
'x ?? true' to keep rows whose condition is null, or use require to send them
to the dead letters. A row whose evaluation fails goes to the node's
dead-letter output with the error. When every row passes, the batch goes on
unchanged (no copy).`,
		Example: `transforms:
  valid:
    from: clean
    filter: unique_id != nil && category != nil`,
		Config: &spec.Field{Kind: spec.Expr, Doc: "A boolean expression over the input columns."},
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	in := c.In()
	if in == nil {
		return nil, nil
	}
	prog, errs := exprc.Compile(c.Config.Expr, in, exprc.WantBool())
	c.Errs.Append(errs)
	if prog == nil {
		return in, nil
	}
	return in, func(r op.Resources) (any, error) {
		return &Filter{prog: prog, mem: xf.Alloc(r)}, nil
	}
}

// Filter keeps rows where its program is true.
type Filter struct {
	prog *exprc.Program
	mem  memory.Allocator
	mu   sync.Mutex
	ev   *exprc.Evaluator
	keep []bool
}

// Process implements op.Transform.
func (f *Filter) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ev == nil {
		f.ev = f.prog.NewEvaluator()
	}
	n := in.Rows()
	f.keep = append(f.keep[:0], make([]bool, n)...)
	f.ev.Bind(in.Rec)
	kept := 0
	for i := range n {
		v, err := f.ev.Eval(i)
		if err != nil {
			if err := out.Reject(xf.RowJSON(in.Rec, i), "filter: "+xf.EvalMsg(err)); err != nil {
				in.Release(err)
				return err
			}
			continue
		}
		if b, _ := v.(bool); b {
			f.keep[i] = true
			kept++
		}
	}
	return xf.EmitKept(ctx, out, f.mem, in.Ack, in.Rec, f.keep, kept)
}
