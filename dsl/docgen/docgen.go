// Package docgen renders the operator reference (docs/operators.md) from the
// operator specs, the same declarations that drive decoding, validation and
// the JSON Schema, so the docs cannot drift from what flowrun accepts.
package docgen

import (
	"fmt"
	"strings"
	"time"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
)

// Catalog is what Markdown needs of the operator registry.
type Catalog interface {
	Names(ast.Section) []string
	Lookup(ast.Section, string) (validate.Operator, bool)
}

// Markdown returns the operator reference.
func Markdown(cat Catalog) string {
	var b strings.Builder
	b.WriteString("# Operator reference\n\n")
	b.WriteString("<!-- Generated from the operator specs by `go test ./cmd/flowrun -run TestOperatorDocs -update`; do not edit. -->\n\n")
	b.WriteString("Every node has exactly one operator key plus the common keys `from` (one node or a list), `dead_letter` (a sink that receives the node's rejected records: `record`, `node`, `reason`, `time`) and `description`.\n\n")
	for _, sec := range []ast.Section{ast.Sources, ast.Transforms, ast.Windows, ast.Sinks} {
		names := cat.Names(sec)
		if len(names) == 0 {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n", strings.ToUpper(sec.String()[:1])+sec.String()[1:])
		for _, n := range names {
			o, _ := cat.Lookup(sec, n)
			operator(&b, o.OperatorSpec())
		}
	}
	return b.String()
}

func operator(b *strings.Builder, s *spec.Spec) {
	fmt.Fprintf(b, "### `%s`\n\n%s\n\n", s.Name, s.Summary)
	if s.Doc != "" {
		b.WriteString(strings.TrimSpace(s.Doc))
		b.WriteString("\n\n")
	}
	c := s.Config
	switch {
	case c.Kind == spec.Object && len(c.Fields) > 0:
		b.WriteString("| field | type | default | description |\n|---|---|---|---|\n")
		for _, f := range c.Fields {
			fields(b, f, "")
		}
		b.WriteString("\n")
	case c.Kind != spec.Object:
		fmt.Fprintf(b, "Configuration: %s. %s\n\n", c.Kind, c.Doc)
	}
	if s.Example != "" {
		fmt.Fprintf(b, "```yaml\n%s\n```\n\n", strings.TrimRight(s.Example, "\n"))
	}
}

func fields(b *strings.Builder, f *spec.Field, prefix string) {
	kind := f.Kind.String()
	if f.Kind == spec.Enum {
		kind = strings.Join(f.Enum, " \\| ")
	}
	def := defaultText(f)
	if f.Required {
		def = "required"
	}
	fmt.Fprintf(b, "| `%s%s` | %s | %s | %s |\n", prefix, f.Name, kind, def, strings.ReplaceAll(f.Doc, "|", "\\|"))
	if f.Kind == spec.Object {
		for _, c := range f.Fields {
			fields(b, c, prefix+f.Name+".")
		}
	}
}

func defaultText(f *spec.Field) string {
	switch d := f.Default.(type) {
	case nil:
		return ""
	case string:
		if d == "" {
			return ""
		}
		return "`" + d + "`"
	case time.Duration:
		return "`" + d.String() + "`"
	case []string:
		return "`" + strings.Join(d, ", ") + "`"
	default:
		return fmt.Sprintf("`%v`", d)
	}
}
