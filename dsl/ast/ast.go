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
	// Vars holds the resolved value of every variable the file declares or uses.
	Vars    map[string]string
	Schemas []*Schema
	Nodes   []*Node // in file order
	Tests   *yaml.Node
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
