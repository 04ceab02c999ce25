// Package jsonschema generates a JSON Schema (draft 2020-12) of the
// pipeline language from the operator specs, so editors can complete and
// check pipeline files. Every operator contributes one branch of its
// section's oneOf, built from the same spec.Field declarations that drive
// decoding and validation.
package jsonschema

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/parse"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/testfile"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
)

// Catalog is what Generate needs of the operator registry.
type Catalog interface {
	Names(ast.Section) []string
	Lookup(ast.Section, string) (validate.Operator, bool)
}

// ID is the schema's $id.
const ID = "https://flowrun.dev/schema/pipeline.json"

type obj = map[string]any

// varPattern matches a value that is entirely a ${VAR} reference, allowed
// wherever a number, boolean or enum is expected.
const varPattern = `^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$`

// Generate returns the JSON Schema, indented.
func Generate(cat Catalog) ([]byte, error) {
	defs := obj{
		"type": obj{
			"description": "a column type",
			"anyOf": []any{
				obj{"enum": append(types.Names(), "int", "float")},
				obj{"type": "string", "pattern": `^list<.+>$`},
			},
		},
		"schema": obj{
			"description":          "a mapping of column name to type",
			"type":                 "object",
			"additionalProperties": obj{"$ref": "#/$defs/type"},
		},
		"ref":  obj{"type": "string", "description": "the name of another node"},
		"refs": obj{"oneOf": []any{obj{"$ref": "#/$defs/ref"}, obj{"type": "array", "items": obj{"$ref": "#/$defs/ref"}, "minItems": 1}}},
	}
	props := obj{
		"flowrun":     obj{"const": parse.Version, "description": "the pipeline language version"},
		"name":        obj{"type": "string", "description": "the pipeline's name"},
		"description": obj{"type": "string"},
		"schedule": obj{"oneOf": []any{
			obj{"type": "string", "description": "a cron expression (or @hourly, @daily) for `flowrun schedule`, in UTC"},
			obj{"type": "object", "additionalProperties": false, "required": []string{"cron"}, "properties": obj{
				"cron":          obj{"type": "string", "description": "a cron expression: minute hour day-of-month month day-of-week, or @hourly, @daily, @weekly, @monthly"},
				"timezone":      obj{"type": "string", "description": "IANA time zone the cron expression is read in (default UTC)"},
				"catchup":       obj{"type": "integer", "minimum": 0, "description": "most missed intervals run at once, oldest first (default 10)"},
				"start":         obj{"type": "string", "description": "first interval's start (a date or RFC 3339 time); without it the scheduler starts with the latest complete interval"},
				"retries":       obj{"type": "integer", "minimum": 0, "description": "retries of a failed run (default 2)"},
				"retry_backoff": obj{"type": "string", "description": "first wait before a retry, doubling (default 1m)"},
				"max_backoff":   obj{"type": "string", "description": "longest wait before a retry (default 1h)"},
				"shards":        obj{"type": "integer", "minimum": 1, "description": "run every interval as this many shard runs, each reading its share of the lake files (flowrun run --shard I/N; default 1)"},
			}},
		}},
		"include": obj{
			"description": "files whose vars, schemas, transforms and windows join this pipeline (paths relative to this file)",
			"oneOf":       []any{obj{"type": "string"}, obj{"type": "array", "items": obj{"type": "string"}}},
		},
		"vars": obj{
			"type":                 "object",
			"description":          "variables with their defaults; ${NAME} in any value is replaced by the environment, --set NAME=VALUE, or this default",
			"additionalProperties": obj{"type": []string{"string", "number", "boolean", "null"}},
		},
		"schemas": obj{"type": "object", "description": "named schemas", "additionalProperties": obj{"$ref": "#/$defs/schema"}},
		"tests":   testfile.Schema(),
	}
	for s, name := range ast.SectionNames() {
		sec := ast.Section(s)
		var branches []any
		for _, opName := range cat.Names(sec) {
			o, ok := cat.Lookup(sec, opName)
			if !ok {
				continue
			}
			sp := o.OperatorSpec()
			if sp == nil || sp.Config == nil {
				return nil, fmt.Errorf("jsonschema: %s %q has no config spec", sec.Singular(), opName)
			}
			def := "op." + name + "." + opName
			defs[def] = nodeSchema(sec, opName, sp)
			branches = append(branches, obj{"$ref": "#/$defs/" + def})
		}
		node := obj{"type": "object", "description": "a " + sec.Singular() + ": a mapping with one operator key"}
		if len(branches) > 0 {
			node = obj{"oneOf": branches}
		}
		defs[sec.Singular()] = node
		props[name] = obj{
			"type":                 "object",
			"description":          name + " by name",
			"additionalProperties": obj{"$ref": "#/$defs/" + sec.Singular()},
		}
	}
	root := obj{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  ID,
		"title":                "flowrun pipeline",
		"type":                 "object",
		"required":             []string{"flowrun"},
		"additionalProperties": false,
		"properties":           props,
		"$defs":                defs,
	}
	return json.MarshalIndent(root, "", "  ")
}

func nodeSchema(sec ast.Section, name string, sp *spec.Spec) obj {
	props := obj{
		name:          field(sp.Config),
		"dead_letter": obj{"$ref": "#/$defs/ref", "description": "the sink receiving this node's rejected records"},
		"description": obj{"type": "string"},
	}
	if sec == ast.Windows {
		props["late"] = obj{"$ref": "#/$defs/ref", "description": "the sink receiving records that arrive after their window was emitted"}
	}
	if sec != ast.Sources {
		props["from"] = obj{"$ref": "#/$defs/refs", "description": "the node or nodes this one reads"}
	}
	s := obj{
		"type":                 "object",
		"title":                name,
		"properties":           props,
		"required":             []string{name},
		"additionalProperties": false,
	}
	d := describe(sp.Summary, sp.Doc)
	if d != "" {
		s["description"] = d
	}
	if sp.Example != "" {
		s["markdownDescription"] = d + "\n\nExample:\n```yaml\n" + sp.Example + "\n```"
	}
	return s
}

func describe(summary, doc string) string {
	switch {
	case summary == "":
		return doc
	case doc == "":
		return summary
	}
	return summary + "\n\n" + doc
}

func withVar(s obj) obj {
	return obj{"anyOf": []any{s, obj{"type": "string", "pattern": varPattern}}}
}

// field converts one spec field to a JSON Schema.
func field(f *spec.Field) obj {
	var s obj
	switch f.Kind {
	case spec.String:
		s = obj{"type": []string{"string", "number", "boolean"}}
	case spec.Int:
		s = withVar(obj{"type": "integer"})
	case spec.Float:
		s = withVar(obj{"type": "number"})
	case spec.Bool:
		s = withVar(obj{"type": "boolean"})
	case spec.Duration:
		s = obj{"type": "string", "pattern": `^(\$\{.*\}|([0-9]+d)?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*)$`}
	case spec.Size:
		s = obj{"type": []string{"integer", "string"}, "pattern": `^(\$\{.*\}|[0-9]+ ?(B|KB|MB|GB|KiB|MiB|GiB)?)$`}
	case spec.Enum:
		s = withVar(obj{"enum": f.Enum})
	case spec.Expr:
		s = obj{"type": []string{"string", "number", "boolean"}, "description": "an expression"}
	case spec.ExprMap:
		s = obj{"type": "object", "additionalProperties": obj{"type": []string{"string", "number", "boolean"}}}
	case spec.StringList:
		s = obj{"oneOf": []any{obj{"type": "string"}, obj{"type": "array", "items": obj{"type": []string{"string", "number", "boolean"}}}}}
	case spec.StringMap:
		s = obj{"type": "object", "additionalProperties": obj{"type": []string{"string", "number", "boolean"}}}
	case spec.Object:
		s = object(f)
	case spec.List:
		items := obj{}
		if f.Elem != nil {
			items = field(f.Elem)
		}
		s = obj{"type": "array", "items": items}
	case spec.Type:
		s = obj{"$ref": "#/$defs/type"}
	case spec.SchemaRef:
		s = obj{"oneOf": []any{obj{"type": "string", "description": "a schema declared under schemas:"}, obj{"$ref": "#/$defs/schema"}}}
	default:
		s = obj{}
	}
	if f.Doc != "" {
		s["description"] = f.Doc
	}
	if d := jsonDefault(f.Default); d != nil {
		s["default"] = d
	}
	if f.Example != "" {
		s["examples"] = []string{f.Example}
	}
	return s
}

func object(f *spec.Field) obj {
	props := obj{}
	var req []string
	for _, c := range f.Fields {
		props[c.Name] = field(c)
		if c.Required {
			req = append(req, c.Name)
		}
	}
	s := obj{"type": "object", "properties": props, "additionalProperties": false}
	if len(req) > 0 {
		s["required"] = req
	} else {
		s["type"] = []string{"object", "null"}
	}
	if f.Scalar != "" {
		if inner := f.Field(f.Scalar); inner != nil {
			return obj{"anyOf": []any{s, field(inner)}}
		}
	}
	return s
}

func jsonDefault(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Duration:
		return x.String()
	case []string:
		if len(x) == 0 {
			return nil
		}
	}
	return v
}
