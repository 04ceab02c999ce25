// Package require is the `require` transform: rows must meet every named
// condition; a row that fails one goes to the dead-letter output with that
// condition's name as the reason, instead of being silently filtered.
package require

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/transform/internal/xf"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

func init() {
	op.MustRegister(&op.Plugin{
		Section: ast.Transforms,
		Spec: spec.Spec{
			Name:    "require",
			Summary: "Send rows that break a named rule to the dead-letter output.",
			Doc: `Each entry is reason: boolean expression. A row passes when every
expression is true; otherwise it is rejected with the first failing entry's
name as the reason. A null result fails too, with the reason
"<name> (condition is null)": write 'x ?? false' to make null an ordinary
false. Use filter to drop rows on
purpose and require for rows that are bad data: nothing is lost silently.
The node needs a dead_letter output.`,
			Example: `valid:
  from: clean
  dead_letter: dead_letters
  require:
    missing unique_id: unique_id != nil
    missing category: category != nil`,
			Config: &spec.Field{Kind: spec.ExprMap, Doc: "reason: condition"},
		},
		Prepare: prepare,
	})
}

type rule struct {
	reason string
	prog   *exprc.Program
}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	in := c.In()
	var rules []rule
	ok := true
	for _, e := range c.Config.Entries {
		p, errs := exprc.Compile(e.Value.Expr, in, exprc.WantBool())
		if len(errs) > 0 {
			c.Errs.Append(errs)
			ok = false
			continue
		}
		rules = append(rules, rule{reason: e.Key, prog: p})
	}
	if len(c.Config.Entries) == 0 {
		c.Errorf(c.Config.Pos, "require needs at least one rule: reason: condition")
		ok = false
	}
	if c.Node.DeadLetter == nil {
		c.Errorf(c.Node.Pos, "require rejects rows, so node '%s' needs a dead_letter output", c.Node.Name)
		ok = false
	}
	if !ok {
		return nil, nil
	}
	return in, func(r op.Resources) (any, error) {
		t := &transform{res: r}
		for _, ru := range rules {
			t.rules = append(t.rules, ru)
			t.evals = append(t.evals, ru.prog.NewEvaluator())
		}
		return t, nil
	}
}

type transform struct {
	res   op.Resources
	rules []rule
	evals []*exprc.Evaluator
	keep  []bool
}

func (t *transform) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	rows := int(in.Rec.NumRows())
	for _, e := range t.evals {
		e.Bind(in.Rec)
	}
	t.keep = t.keep[:0]
	kept := 0
	for r := 0; r < rows; r++ {
		reason := ""
		for i, e := range t.evals {
			v, err := e.Eval(r)
			if err != nil {
				reason = fmt.Sprintf("%s: %v", t.rules[i].reason, err)
				break
			}
			if v == nil {
				// Unknown is not true: the row fails, and says why.
				reason = t.rules[i].reason + " (condition is null)"
				break
			}
			if b, _ := v.(bool); !b {
				reason = t.rules[i].reason
				break
			}
		}
		if reason != "" {
			if err := out.Reject(xf.RowJSON(in.Rec, r), "require: "+reason); err != nil {
				in.Release(nil)
				return err
			}
		} else {
			kept++
		}
		t.keep = append(t.keep, reason == "")
	}
	return xf.EmitKept(ctx, out, xf.Alloc(t.res), in.Ack, in.Rec, t.keep, kept)
}
