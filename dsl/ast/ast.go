// Package ast owns the syntax tree of a pipeline file: the pipeline header,
// declared schemas and named nodes with their positions. Operator configs
// stay as YAML nodes here; dsl/spec decodes them against each operator's spec.
package ast

import (
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/source"
)

// Section is the top-level block a node is declared in.
type Section int

const (
	Sources Section = iota
	Transforms
	Windows
	Sinks
)

var sectionNames = [...]string{"sources", "transforms", "windows", "sinks"}

// SectionNames lists the top-level node blocks in file order.
func SectionNames() []string { return sectionNames[:] }

func (s Section) String() string { return sectionNames[s] }

// Singular names one node of the section: "source", "transform", ...
func (s Section) Singular() string { return sectionNames[s][:len(sectionNames[s])-1] }

// Pipeline is one parsed pipeline file.
type Pipeline struct {
	File        *source.File
	Version     int
	Name        string
	Description string
	// Schedule is a cron expression for `flowrun schedule`, or "".
	Schedule    string
	SchedulePos source.Pos
	// ScheduleOpts holds the other keys of the mapping form of schedule:
	// (all empty for the scalar form `schedule: "@daily"`).
	ScheduleOpts ScheduleOpts
	// Vars holds the resolved value of every variable the file declares or uses.
	Vars    map[string]string
	Schemas []*Schema
	Nodes   []*Node // in file order
	Tests   *yaml.Node
}

// ScheduleOpts are the keys of `schedule: {cron: ..., timezone: ..., ...}`
// besides cron. Values are kept as written (with their positions) and
// checked by dsl/validate.
type ScheduleOpts struct {
	Timezone     Scalar // IANA zone name; default UTC
	Catchup      Scalar // most missed intervals run on start-up (an integer)
	Start        Scalar // first interval to run, a date or RFC 3339 time
	Retries      Scalar // retries of a failed run (an integer)
	RetryBackoff Scalar // first wait before a retry (a duration); doubles
	MaxBackoff   Scalar // longest wait before a retry (a duration)
	Shards       Scalar // shard runs per interval (an integer ≥ 1)
}

// Scalar is a YAML scalar with its position; Set is false when absent.
type Scalar struct {
	Value string
	Pos   source.Pos
	Set   bool
}

// Node returns the node called name, or nil.
func (p *Pipeline) Node(name string) *Node {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Schema is a named schema declared under `schemas:`.
type Schema struct {
	Name    string
	Pos     source.Pos
	Columns []Column
}

// Column is one column of a declared schema.
type Column struct {
	Name    string
	Type    string
	Pos     source.Pos // of the name
	TypePos source.Pos
}

// Ref names another node.
type Ref struct {
	Name string
	Pos  source.Pos
}

// Node is one named source, transform, window or sink.
type Node struct {
	Name    string
	Pos     source.Pos // of the name
	Section Section
	// Type is the operator key, e.g. "file", "map", "postgres".
	Type    string
	TypePos source.Pos
	// Config is the operator's configuration block, after ${VAR} substitution.
	Config      *yaml.Node
	From        []Ref
	DeadLetter  *Ref // `dead_letter:` the sink that receives this node's rejected records
	Late        *Ref // `late:` (windows only) the sink that receives records that missed their window
	Description string
}
