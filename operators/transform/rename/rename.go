// Package rename is the "rename" transform: give columns new names, keeping
// their order and data (zero-copy).
package rename

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
		Name:    "rename",
		Summary: "Rename columns (old: new).",
		Doc: `Columns keep their position and data; the data is not copied. Renames are
applied together, so {a: b, b: a} swaps two columns. Two columns ending up
with the same name is an error.`,
		Example: `transforms:
  renamed:
    from: clean
    rename: {index: ind}`,
		Config: &spec.Field{Kind: spec.StringMap, Doc: "Mapping of old name to new name."},
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	in := c.In()
	if in == nil {
		return nil, nil
	}
	fields := append([]arrow.Field(nil), in.Fields()...)
	renamed := map[int]spec.Entry{}
	for _, e := range c.Config.Entries {
		j := in.FieldIndices(e.Key)
		if len(j) == 0 {
			xf.UnknownColumn(c, e.KeyPos, e.Key, in)
			continue
		}
		if e.Value.Str == "" {
			c.Errorf(e.Value.Pos, "new name for '%s' is empty", e.Key)
			continue
		}
		fields[j[0]].Name = e.Value.Str
		renamed[j[0]] = e
	}
	owner := map[string]int{}
	for j, f := range fields {
		if k, dup := owner[f.Name]; dup {
			// Point at the rename that caused the clash.
			at, ok := renamed[j]
			if !ok {
				at = renamed[k]
			}
			c.Errorf(at.Value.Pos, "renaming '%s' to '%s' gives two columns named '%s'", at.Key, f.Name, f.Name).Code = "duplicate"
			continue
		}
		owner[f.Name] = j
	}
	p := &xf.Projector{Schema: arrow.NewSchema(fields, nil), Idx: make([]int, len(fields))}
	for i := range p.Idx {
		p.Idx[i] = i
	}
	return p.Schema, xf.ProjectorCtor(p)
}
