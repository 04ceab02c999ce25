package exprc

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/expr-lang/expr/vm"

	"github.com/flowrun/flowrun/dsl/arrowx"
)

// Type is the Arrow type of the expression's result (the WantType type
// when one was asked for).
func (p *Program) Type() arrow.DataType { return p.typ }

// Source is the expression text.
func (p *Program) Source() string { return p.src.Src }

// Columns lists the schema indices of the columns the expression reads, in
// schema order. Callers must not modify it.
func (p *Program) Columns() []int { return p.cols }

// Evaluator evaluates a Program row by row. It is not safe for concurrent
// use: make one per goroutine and reuse it across batches.
type Evaluator struct {
	p       *Program
	vm      vm.VM
	env     map[string]any
	getters []arrowx.Getter

	// Columnar kernel state (EvalColumn).
	kc          kctx
	pieces      *array.StringBuilder
	appendPiece func(string)
}

// NewEvaluator returns an Evaluator for p.
func (p *Program) NewEvaluator() *Evaluator {
	e := &Evaluator{p: p, env: make(map[string]any, len(p.names)), getters: make([]arrowx.Getter, len(p.cols))}
	for _, n := range p.names {
		e.env[n] = nil
	}
	return e
}

// Bind points the Evaluator at rec, which must have the schema the Program
// was compiled against. The Evaluator does not retain rec: keep it alive
// until the last Eval on it.
func (e *Evaluator) Bind(rec arrow.RecordBatch) {
	for i, c := range e.p.cols {
		e.getters[i] = arrowx.NewGetter(rec.Column(c))
	}
}

// Eval evaluates the expression on row of the bound batch. A failure comes
// back as an *EvalError naming the expression.
func (e *Evaluator) Eval(row int) (any, error) {
	for i, g := range e.getters {
		e.env[e.p.names[i]] = g(row)
	}
	out, err := e.vm.Run(e.p.prog, e.env)
	if err != nil {
		return nil, evalError(e.p, err)
	}
	if n, ok := out.(int); ok && e.p.typ.ID() == arrow.FLOAT64 {
		// coalesce(float_col, 0) and the like: honour the declared type.
		return float64(n), nil
	}
	return out, nil
}
