// Package spec owns the configuration vocabulary of operators: field kinds,
// defaults, enums, durations and expression fields, with docs and examples.
// One Field declaration drives decoding (with positioned errors), validation
// messages, `flowrun schema` and generated docs.
package spec

import (
	"time"

	"github.com/flowrun/flowrun/dsl/source"
)

// Kind is the shape of a configuration value.
type Kind int

const (
	String     Kind = iota // a YAML string (numbers are accepted and kept as text)
	Int                    // a whole number
	Float                  // a number
	Bool                   // true or false
	Duration               // "1m30s", "500ms", "2h", "1d"
	Size                   // "64MiB", "512KB", 1024 (bytes)
	Enum                   // one of Field.Enum
	Expr                   // an expr-lang expression
	ExprMap                // an ordered mapping of column name → expression
	StringList             // a list of strings, or a single string
	StringMap              // an ordered mapping of string → string
	Object                 // a mapping with the declared Fields
	List                   // a list whose elements are described by Elem
	Type                   // a column type name such as "int64" or "list<string>"
	SchemaRef              // a declared schema's name, or an inline mapping column → type
	Any                    // any YAML value, kept undecoded
)

var kindNames = [...]string{"string", "integer", "number", "boolean", "duration", "size", "enum", "expression", "mapping of column to expression", "list of strings", "mapping of strings", "mapping", "list", "type", "schema", "any"}

func (k Kind) String() string { return kindNames[k] }

// Field declares one configuration value.
type Field struct {
	Name     string
	Kind     Kind
	Doc      string
	Required bool
	// Default is used when the field is absent; its Go type matches Kind
	// (string, int64, float64, bool, time.Duration, []string).
	Default any
	Enum    []string
	Fields  []*Field // for Object
	Elem    *Field   // for List
	// Scalar names the field of an Object that a bare scalar fills, so that
	// `kafka: localhost:9092` can stand for `kafka: {brokers: ...}`.
	Scalar  string
	Example string
	// Deprecated or advanced fields could go here; keep it small until needed.
}

// Spec describes an operator: its name, a one-line summary, longer docs,
// an example pipeline fragment, and the shape of its configuration.
type Spec struct {
	Name    string
	Summary string
	Doc     string
	Example string // a YAML fragment of a whole node, as a user would write it
	Config  *Field
}

// Obj is shorthand for an Object field.
func Obj(fields ...*Field) *Field { return &Field{Kind: Object, Fields: fields} }

// F declares a named field.
func F(name string, kind Kind, doc string) *Field { return &Field{Name: name, Kind: kind, Doc: doc} }

// Req marks f required.
func (f *Field) Req() *Field { f.Required = true; return f }

// Def sets f's default.
func (f *Field) Def(v any) *Field { f.Default = v; return f }

// OneOf sets f's allowed values.
func (f *Field) OneOf(v ...string) *Field { f.Enum = v; return f }

// Ex sets f's example.
func (f *Field) Ex(e string) *Field { f.Example = e; return f }

// Field returns the named child of an Object field, or nil.
func (f *Field) Field(name string) *Field {
	for _, c := range f.Fields {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ExprSrc is an expression with the position of its first character, so
// the compiler can point at a column inside it.
type ExprSrc struct {
	Src string
	Pos source.Pos
	// Quoted tells whether the YAML scalar was quoted; offsets inside a
	// quoted scalar are shifted by one for the quote.
	Quoted bool
}

// Entry is one key of an ordered mapping.
type Entry struct {
	Key    string
	KeyPos source.Pos
	Value  *Value
}

// Value is a decoded configuration value with its position.
type Value struct {
	Field *Field
	Pos   source.Pos
	Set   bool // false when the value came from a default or is absent

	Str     string
	Int     int64
	Float   float64
	Bool    bool
	Dur     time.Duration
	Strs    []string
	Expr    ExprSrc
	Entries []Entry  // ExprMap, StringMap, Object (only fields present or defaulted), SchemaRef inline
	Items   []*Value // List
	Raw     any      // Any: the yaml.Node
}

// Get returns the named entry of an Object or mapping value, or nil.
func (v *Value) Get(name string) *Value {
	if v == nil {
		return nil
	}
	for _, e := range v.Entries {
		if e.Key == name {
			return e.Value
		}
	}
	return nil
}

// Has reports whether the named field was written by the user.
func (v *Value) Has(name string) bool {
	c := v.Get(name)
	return c != nil && c.Set
}

// String returns the named string (or enum) field, or "".
func (v *Value) String(name string) string {
	if c := v.Get(name); c != nil {
		return c.Str
	}
	return ""
}

// Int64 returns the named integer or size field, or 0.
func (v *Value) Int64(name string) int64 {
	if c := v.Get(name); c != nil {
		return c.Int
	}
	return 0
}

// Float64 returns the named number field, or 0.
func (v *Value) Float64(name string) float64 {
	if c := v.Get(name); c != nil {
		return c.Float
	}
	return 0
}

// Boolean returns the named boolean field, or false.
func (v *Value) Boolean(name string) bool {
	if c := v.Get(name); c != nil {
		return c.Bool
	}
	return false
}

// Duration returns the named duration field, or 0.
func (v *Value) Duration(name string) time.Duration {
	if c := v.Get(name); c != nil {
		return c.Dur
	}
	return 0
}

// Strings returns the named list-of-strings field, or nil.
func (v *Value) Strings(name string) []string {
	if c := v.Get(name); c != nil {
		return c.Strs
	}
	return nil
}

// PosOf returns the position of the named field, or of v when absent, so
// errors about a missing or defaulted field still point somewhere useful.
func (v *Value) PosOf(name string) source.Pos {
	if c := v.Get(name); c != nil && c.Pos.IsValid() {
		return c.Pos
	}
	return v.Pos
}
