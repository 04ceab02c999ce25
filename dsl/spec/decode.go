package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/types"
)

// Pos converts a yaml.Node position into a source position in file.
func Pos(file *source.File, n *yaml.Node) source.Pos {
	if n == nil {
		return source.Pos{File: file}
	}
	return source.Pos{File: file, Line: n.Line, Column: n.Column}
}

// Decode checks n against f and returns the decoded value. Every problem is
// added to errs; decoding carries on past errors so all are reported at once.
// A nil n means the field is absent and yields its default.
func Decode(file *source.File, n *yaml.Node, f *Field, errs *source.Errors) *Value {
	d := decoder{file: file, errs: errs}
	return d.decode(n, f, "")
}

type decoder struct {
	file *source.File
	errs *source.Errors
}

func (d *decoder) pos(n *yaml.Node) source.Pos { return Pos(d.file, n) }

func (d *decoder) fail(n *yaml.Node, code, format string, args ...any) {
	e := d.errs.Add(d.pos(n), format, args...)
	e.Code = code
}

func label(path string) string {
	if path == "" {
		return "value"
	}
	return "'" + path + "'"
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (d *decoder) decode(n *yaml.Node, f *Field, path string) *Value {
	v := &Value{Field: f, Pos: d.pos(n)}
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null" && f.Kind != Any) {
		d.setDefault(v, f, path)
		return v
	}
	v.Set = true
	switch f.Kind {
	case String:
		if s, ok := d.scalar(n, f, path); ok {
			v.Str = s
		}
	case Enum:
		if s, ok := d.scalar(n, f, path); ok {
			v.Str = s
			if !contains(f.Enum, s) {
				e := d.errs.Add(d.pos(n), "%s must be one of %s, not %q", label(path), strings.Join(f.Enum, ", "), s)
				e.Code = "enum"
				e.Hint = source.DidYouMean(s, f.Enum)
			}
		}
	case Int, Size:
		if s, ok := d.scalar(n, f, path); ok {
			var (
				i   int64
				err error
			)
			if f.Kind == Size {
				i, err = ParseSize(s)
			} else {
				i, err = strconv.ParseInt(s, 10, 64)
			}
			if err != nil {
				d.fail(n, "type", "%s must be %s, not %q", label(path), article(f.Kind), s)
			}
			v.Int = i
		}
	case Float:
		if s, ok := d.scalar(n, f, path); ok {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(x) {
				d.fail(n, "type", "%s must be a number, not %q", label(path), s)
			}
			v.Float = x
		}
	case Bool:
		if s, ok := d.scalar(n, f, path); ok {
			switch strings.ToLower(s) {
			case "true", "yes", "on":
				v.Bool = true
			case "false", "no", "off":
			default:
				d.fail(n, "type", "%s must be true or false, not %q", label(path), s)
			}
		}
	case Duration:
		if s, ok := d.scalar(n, f, path); ok {
			dur, err := ParseDuration(s)
			if err != nil {
				d.fail(n, "duration", "%s: bad duration %q: write a number and a unit, e.g. 500ms, 30s, 1m, 2h, 1d", label(path), s)
			}
			v.Dur = dur
		}
	case Type:
		if s, ok := d.scalar(n, f, path); ok {
			v.Str = s
			if _, err := types.Parse(s); err != nil {
				e := d.errs.Add(d.pos(n), "%s: unknown type %q", label(path), s)
				e.Code = "type"
				e.Hint = source.DidYouMean(s, types.Names())
			}
		}
	case Expr:
		if s, ok := d.scalar(n, f, path); ok {
			v.Expr = d.expr(n, s)
		}
	case StringList:
		switch n.Kind {
		case yaml.ScalarNode:
			v.Strs = []string{n.Value}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				if s, ok := d.scalar(c, &Field{Kind: String}, path+"[]"); ok {
					v.Strs = append(v.Strs, s)
				}
			}
		default:
			d.fail(n, "type", "%s must be a list of strings", label(path))
		}
	case ExprMap, StringMap:
		if n.Kind != yaml.MappingNode {
			d.fail(n, "type", "%s must be a mapping of %s", label(path), map[Kind]string{ExprMap: "column: expression", StringMap: "name: value"}[f.Kind])
			break
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				d.fail(k, "duplicate", "%s: duplicate key %q", label(path), k.Value)
			}
			seen[k.Value] = true
			ev := &Value{Pos: d.pos(val), Set: true}
			if s, ok := d.scalar(val, &Field{Kind: String}, join(path, k.Value)); ok {
				ev.Str = s
				if f.Kind == ExprMap {
					ev.Expr = d.expr(val, s)
				}
			}
			v.Entries = append(v.Entries, Entry{Key: k.Value, KeyPos: d.pos(k), Value: ev})
		}
	case SchemaRef:
		switch n.Kind {
		case yaml.ScalarNode:
			v.Str = n.Value
		case yaml.MappingNode:
			tf := &Field{Kind: Type}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				v.Entries = append(v.Entries, Entry{Key: k.Value, KeyPos: d.pos(k), Value: d.decode(n.Content[i+1], tf, join(path, k.Value))})
			}
		default:
			d.fail(n, "type", "%s must be a schema name or a mapping of column: type", label(path))
		}
	case Object:
		if n.Kind == yaml.ScalarNode && f.Scalar != "" {
			inner := f.Field(f.Scalar)
			v.Entries = append(v.Entries, Entry{Key: f.Scalar, KeyPos: d.pos(n), Value: d.decode(n, inner, join(path, f.Scalar))})
			for _, c := range f.Fields {
				if c != inner {
					d.defaultChild(v, c, path, n)
				}
			}
			break
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, "type", "%s must be a mapping, not %s", label(path), describe(n))
			break
		}
		d.object(v, n, f, path)
	case List:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, "type", "%s must be a list, not %s", label(path), describe(n))
			break
		}
		for i, c := range n.Content {
			v.Items = append(v.Items, d.decode(c, f.Elem, fmt.Sprintf("%s[%d]", path, i)))
		}
	case Any:
		v.Raw = n
	}
	return v
}

func (d *decoder) object(v *Value, n *yaml.Node, f *Field, path string) {
	names := make([]string, len(f.Fields))
	for i, c := range f.Fields {
		names[i] = c.Name
	}
	present := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		c := f.Field(k.Value)
		if c == nil {
			e := d.errs.Add(d.pos(k), "unknown key '%s' in %s", k.Value, objName(path))
			e.Code = "unknown-key"
			e.Hint = source.DidYouMean(k.Value, names)
			continue
		}
		if present[k.Value] {
			d.fail(k, "duplicate", "duplicate key '%s'", k.Value)
			continue
		}
		present[k.Value] = true
		v.Entries = append(v.Entries, Entry{Key: k.Value, KeyPos: d.pos(k), Value: d.decode(val, c, join(path, k.Value))})
	}
	for _, c := range f.Fields {
		if !present[c.Name] {
			d.defaultChild(v, c, path, n)
		}
	}
}

func (d *decoder) defaultChild(v *Value, c *Field, path string, at *yaml.Node) {
	if c.Required {
		e := d.errs.Add(d.pos(at), "missing required key '%s'", join(path, c.Name))
		e.Code = "missing"
	}
	cv := &Value{Field: c, Pos: d.pos(at)}
	d.setDefault(cv, c, join(path, c.Name))
	v.Entries = append(v.Entries, Entry{Key: c.Name, KeyPos: d.pos(at), Value: cv})
}

func (d *decoder) setDefault(v *Value, f *Field, path string) {
	switch x := f.Default.(type) {
	case string:
		v.Str = x
		if f.Kind == Expr {
			v.Expr = ExprSrc{Src: x, Pos: v.Pos}
		}
	case int:
		v.Int = int64(x)
	case int64:
		v.Int = x
	case float64:
		v.Float = x
	case bool:
		v.Bool = x
	case time.Duration:
		v.Dur = x
	case []string:
		v.Strs = x
	}
	if f.Kind == Object {
		for _, c := range f.Fields {
			cv := &Value{Field: c, Pos: v.Pos}
			d.setDefault(cv, c, join(path, c.Name))
			v.Entries = append(v.Entries, Entry{Key: c.Name, KeyPos: v.Pos, Value: cv})
		}
	}
}

func (d *decoder) scalar(n *yaml.Node, f *Field, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, "type", "%s must be %s, not %s", label(path), article(f.Kind), describe(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) expr(n *yaml.Node, s string) ExprSrc {
	e := ExprSrc{Src: s, Pos: d.pos(n)}
	switch n.Style {
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		e.Quoted = true
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// Block scalars start on the next line, indented.
		e.Pos = source.Pos{File: d.file, Line: n.Line + 1, Column: n.Column + 2}
	}
	return e
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "this"
}

func article(k Kind) string {
	switch k {
	case Int:
		return "an integer"
	case Expr, Enum:
		return "an " + k.String()
	}
	return "a " + k.String()
}

func objName(path string) string {
	if path == "" {
		return "this block"
	}
	return "'" + path + "'"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ParseDuration accepts Go durations plus a "d" (day) unit, e.g. "1d12h".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return days + d, nil
}

// ParseSize accepts a byte count with an optional unit: B, KB, MB, GB
// (powers of 1000) or KiB, MiB, GiB (powers of 1024).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mul    int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mul = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mul, nil
}
