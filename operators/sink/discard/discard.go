// Package discard is the `discard` sink: it acknowledges every batch and
// keeps nothing. For benchmarks (the cost of a pipeline without its
// output) and for pipelines whose only product is their dead letters or
// metrics.
package discard

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

func init() {
	op.MustRegister(&op.Plugin{
		Section: ast.Sinks,
		Spec: spec.Spec{
			Name:    "discard",
			Summary: "Acknowledge and drop every row.",
			Doc:     "Rows are counted in the run summary and dropped; their source positions are acknowledged at once.",
			Example: "nowhere: {from: clean, discard: {}}",
			Config:  spec.Obj(),
		},
		Prepare: func(*validate.Check) (*arrow.Schema, op.Constructor) {
			return nil, func(op.Resources) (any, error) { return Sink{}, nil }
		},
	})
}

// Sink drops what it is given.
type Sink struct{}

// Write implements op.Sink.
func (Sink) Write(_ context.Context, b batch.Batch) error {
	b.Release(nil)
	return nil
}
