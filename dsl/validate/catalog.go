package validate

import (
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
)

// Operator is what validation needs to know of one operator. The operator
// SDK (runtime/op) implements it; validate never sees concrete operators.
type Operator interface {
	OperatorSpec() *spec.Spec
	OperatorSection() ast.Section
	// Check derives the node's output schema from its decoded config and its
	// input schemas, reporting problems through c. Sinks return a nil schema.
	// build is opaque to validation: the runtime uses it to construct the node.
	Check(c *Check) (out *arrow.Schema, build any)
}

// Catalog finds operators by section and type name.
type Catalog interface {
	Lookup(section ast.Section, name string) (Operator, bool)
	// Names lists the operators of a section, for "did you mean" hints.
	Names(section ast.Section) []string
}

// Input is one upstream node as an operator sees it.
type Input struct {
	Name   string
	Schema *arrow.Schema
}

// Check is what an operator's Check receives.
type Check struct {
	Pipeline *ast.Pipeline
	Node     *ast.Node
	Config   *spec.Value
	// Inputs holds one entry per `from:`; all share one schema (validation
	// rejects unions of different schemas before calling Check).
	Inputs []Input
	// Schema resolves a SchemaRef value: a declared schema's name or an
	// inline mapping. It reports unknown names and returns nil for them.
	Schema func(v *spec.Value) *arrow.Schema
	Errs   *source.Errors
	// Upstream lists the sources feeding this node through from: edges
	// and the dead letters it receives, each with the Flow it declared.
	Upstream []Upstream
	// Once is set when the run reads unbounded sources up to their current
	// end (flowrun run --once).
	Once bool
	// Shards is how many shard runs the pipeline is checked for (flowrun
	// run --shard I/N, schedule: {shards: N}); above 1, nodes that need
	// whole groups call RequireWholeInput.
	Shards int
}

// Errorf reports a problem at pos.
func (c *Check) Errorf(pos source.Pos, format string, args ...any) *source.Error {
	return c.Errs.Add(pos, format, args...)
}

// In returns the (single) input schema, or nil for a source.
func (c *Check) In() *arrow.Schema {
	if len(c.Inputs) == 0 {
		return nil
	}
	return c.Inputs[0].Schema
}

// Result is a checked pipeline: every node with its operator, decoded config,
// resolved inputs and output schema, in an order where inputs come first.
type Result struct {
	Pipeline *ast.Pipeline
	Nodes    []*Node
}

// Node is one checked node.
type Node struct {
	AST    *ast.Node
	Op     Operator
	Config *spec.Value
	Inputs []*Node
	// Consumers are the nodes whose `from:` names this one (dead-letter
	// edges are not included).
	Consumers []*Node
	// DeadLetter is the sink receiving this node's rejected records, or nil.
	DeadLetter *Node
	// Late is the sink receiving a window's late records, or nil.
	Late *Node
	// Output is the node's output schema (nil for sinks; a dead-letter-only
	// sink's input schema is types.DeadLetterSchema).
	Output *arrow.Schema
	// Build is what the operator's Check returned for the runtime.
	Build any
}

// Name is the node's name.
func (n *Node) Name() string { return n.AST.Name }

// Lookup returns the checked node called name, or nil.
func (r *Result) Lookup(name string) *Node {
	for _, n := range r.Nodes {
		if n.AST.Name == name {
			return n
		}
	}
	return nil
}
