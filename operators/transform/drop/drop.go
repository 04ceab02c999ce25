// Package drop is the "drop" transform: remove the listed columns, keeping
// the others in order and sharing their memory (zero-copy).
package drop

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
		Name:    "drop",
		Summary: "Remove the listed columns.",
		Doc:     "The remaining columns keep their order. The data is not copied. Dropping every column is an error.",
		Example: `transforms:
  public:
    from: clean
    drop: [image_src, save_location]`,
		Config: &spec.Field{Kind: spec.StringList, Doc: "Columns to remove."},
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	in := c.In()
	if in == nil {
		return nil, nil
	}
	gone := map[string]bool{}
	for i, n := range c.Config.Strs {
		pos := xf.ItemPos(c, c.Config.Pos, i)
		if !in.HasField(n) {
			xf.UnknownColumn(c, pos, n, in)
			continue
		}
		if gone[n] {
			c.Errorf(pos, "column '%s' dropped twice", n).Code = "duplicate"
		}
		gone[n] = true
	}
	p := &xf.Projector{}
	var fields []arrow.Field
	for j, f := range in.Fields() {
		if !gone[f.Name] {
			p.Idx = append(p.Idx, j)
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		c.Errorf(c.Config.Pos, "drop removes every column")
	}
	p.Schema = arrow.NewSchema(fields, nil)
	return p.Schema, xf.ProjectorCtor(p)
}
