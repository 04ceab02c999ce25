// Package selectop is the "select" transform: keep the listed columns, in
// the listed order, sharing their memory (zero-copy).
package selectop

import (
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/transform/internal/xf"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Transforms,
	Spec: spec.Spec{
		Name:    "select",
		Summary: "Keep only the listed columns, in the listed order.",
		Doc:     "Columns not listed are dropped. The data is not copied.",
		Example: `transforms:
  slim:
    from: clean
    select: [unique_id, category, follower_count]`,
		Config: &spec.Field{Kind: spec.StringList, Doc: "Columns to keep, in output order."},
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	in := c.In()
	if in == nil {
		return nil, nil
	}
	names := c.Config.Strs
	if len(names) == 0 && c.Config.Set {
		c.Errorf(c.Config.Pos, "select needs at least one column")
	}
	p := &xf.Projector{}
	var fields []arrow.Field
	seen := map[string]bool{}
	for i, n := range names {
		pos := xf.ItemPos(c, c.Config.Pos, i)
		j := in.FieldIndices(n)
		if len(j) == 0 {
			xf.UnknownColumn(c, pos, n, in)
			continue
		}
		if seen[n] {
			c.Errorf(pos, "column '%s' selected twice", n).Code = "duplicate"
			continue
		}
		seen[n] = true
		p.Idx = append(p.Idx, j[0])
		fields = append(fields, in.Field(j[0]))
	}
	p.Schema = arrow.NewSchema(fields, nil)
	return p.Schema, xf.ProjectorCtor(p)
}
