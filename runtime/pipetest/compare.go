package pipetest

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/testfile"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
)

// goValue turns a YAML value into the Go value the column's appender takes:
// YAML's own types for numbers and booleans, the text as written for
// string columns (so `id: 0123` stays "0123"), lists element by element.
func goValue(n *yaml.Node, dt arrow.DataType) (any, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, nil
		}
		if dt.ID() == arrow.STRING || dt.ID() == arrow.LARGE_STRING || dt.ID() == arrow.TIMESTAMP {
			return n.Value, nil
		}
		switch n.Tag {
		case "!!int":
			i, err := strconv.ParseInt(n.Value, 0, 64)
			if err != nil {
				return nil, fmt.Errorf("%s is not a 64-bit integer", n.Value)
			}
			return int(i), nil
		case "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return nil, fmt.Errorf("%s is not a number", n.Value)
			}
			return f, nil
		case "!!bool":
			return n.Value == "true", nil
		}
		return n.Value, nil
	case yaml.SequenceNode:
		var elem arrow.DataType = arrow.BinaryTypes.String
		if lt, ok := dt.(*arrow.ListType); ok {
			elem = lt.Elem()
		}
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, err := goValue(c, elem)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("a mapping cannot be stored in a %s column", types.Name(dt))
}

// checkFits reports whether v can be stored in a column of type dt,
// without touching the real builders.
func checkFits(v any, dt arrow.DataType) error {
	b := array.NewBuilder(memory.NewGoAllocator(), dt)
	defer b.Release()
	return appendValue(b, v)
}

func appendValue(b array.Builder, v any) error {
	return arrowx.NewAppender(b)(v)
}

// render is the one text form values are compared in: arrowx.Text for
// scalars, [a, b] for lists, null for null.
func render(v any) string {
	if v == nil {
		return "null"
	}
	if s, ok := arrowx.Text(v); ok {
		if _, isStr := v.(string); isStr {
			return strconv.Quote(s)
		}
		return s
	}
	switch x := v.(type) {
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case []int:
		q := make([]string, len(x))
		for i, n := range x {
			q[i] = strconv.Itoa(n)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case []float64:
		q := make([]string, len(x))
		for i, f := range x {
			q[i] = strconv.FormatFloat(f, 'g', -1, 64)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case []any:
		q := make([]string, len(x))
		for i, e := range x {
			q[i] = render(e)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// sinkSchema is what a sink receives: its input's output, or the
// dead-letter schema for a sink that only takes dead letters.
func sinkSchema(n *validate.Node) *arrow.Schema {
	for _, in := range n.Inputs {
		if in.Output != nil {
			return in.Output
		}
	}
	return types.DeadLetterSchema
}

type expRow struct {
	row   *testfile.Row
	cells map[string]string // column → rendered value
	order []string
}

// compare checks what sink received against e; it returns nil when they
// match, else the difference and the rows --update would write.
// checkExpect reports expectations that cannot hold whatever the pipeline
// does: columns the sink never receives, values its column types cannot hold.
func checkExpect(node *validate.Node, e *testfile.Expect, probs *source.Errors) {
	expected(node, e, probs)
}

func compare(sink *fixtureSink, node *validate.Node, e *testfile.Expect, probs *source.Errors) (*SinkDiff, *update) {
	schema := sinkSchema(node)
	exp, ok := expected(node, e, probs)
	if !ok {
		return nil, nil
	}
	colIndex := map[string]int{}
	for i, f := range schema.Fields() {
		colIndex[f.Name] = i
	}
	_, got := sink.snapshot()
	// The columns shown for unexpected rows: those the expectation names,
	// or every column when it names none.
	var shown []string
	seen := map[string]bool{}
	for _, er := range exp {
		for _, c := range er.order {
			if !seen[c] {
				seen[c] = true
				shown = append(shown, c)
			}
		}
	}
	if len(shown) == 0 {
		shown = fieldNames(schema)
	}
	gotText := make([]map[string]string, len(got))
	for i, row := range got {
		m := make(map[string]string, len(row))
		for c, idx := range colIndex {
			if idx < len(row) {
				m[c] = render(row[idx])
			}
		}
		gotText[i] = m
	}
	matches := func(er expRow, g map[string]string) bool {
		for c, want := range er.cells {
			if g[c] != want {
				return false
			}
		}
		return true
	}
	d := &SinkDiff{Sink: e.Sink, Pos: e.Pos, Want: len(exp), Got: len(got)}
	if e.Ordered {
		for i := 0; i < len(exp) || i < len(got); i++ {
			switch {
			case i >= len(got):
				d.Missing = append(d.Missing, RowDiff{N: i + 1, Pos: exp[i].row.Pos, Text: format(exp[i].order, exp[i].cells)})
			case i >= len(exp):
				d.Unexpected = append(d.Unexpected, RowDiff{N: i + 1, Text: format(shown, gotText[i])})
			case !matches(exp[i], gotText[i]):
				d.Missing = append(d.Missing, RowDiff{N: i + 1, Pos: exp[i].row.Pos, Text: format(exp[i].order, exp[i].cells)})
				d.Unexpected = append(d.Unexpected, RowDiff{N: i + 1, Text: format(exp[i].order, gotText[i])})
			}
		}
	} else {
		used := make([]bool, len(got))
		for _, er := range exp {
			found := false
			for j, g := range gotText {
				if !used[j] && matches(er, g) {
					used[j], found = true, true
					break
				}
			}
			if !found {
				d.Missing = append(d.Missing, RowDiff{N: indexOf(exp, er) + 1, Pos: er.row.Pos, Text: format(er.order, er.cells)})
			}
		}
		for j, u := range used {
			if !u {
				d.Unexpected = append(d.Unexpected, RowDiff{N: j + 1, Text: format(shown, gotText[j])})
			}
		}
	}
	if len(d.Missing) == 0 && len(d.Unexpected) == 0 {
		return nil, nil
	}
	// What --update writes: every produced row, in the columns the
	// expectation compares (all columns when it names none).
	cols := shown
	up := &update{node: e.Node}
	if e.Node.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(e.Node.Content); i += 2 {
			if e.Node.Content[i].Value == "rows" {
				up.node = e.Node.Content[i+1]
			}
		}
	}
	for _, row := range got {
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
		for _, c := range cols {
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: c}, yamlScalar(row[colIndex[c]]))
		}
		up.rows = append(up.rows, m)
	}
	return d, up
}

// expected renders the expected rows through the sink's column types.
func expected(node *validate.Node, e *testfile.Expect, probs *source.Errors) ([]expRow, bool) {
	schema := sinkSchema(node)
	colIndex := map[string]int{}
	for i, f := range schema.Fields() {
		colIndex[f.Name] = i
	}
	// Expected rows, rendered through the column types.
	var exp []expRow
	bad := false
	for _, c := range e.Columns {
		if _, ok := colIndex[c]; !ok {
			pe := probs.Add(e.Pos, "sink '%s' receives no column '%s'", e.Sink, c)
			pe.Hint = source.DidYouMean(c, fieldNames(schema))
			bad = true
		}
	}
	for _, r := range e.Rows {
		er := expRow{row: r, cells: map[string]string{}}
		for _, c := range r.Cells {
			i, ok := colIndex[c.Column]
			if !ok {
				pe := probs.Add(c.Pos, "sink '%s' receives no column '%s'", e.Sink, c.Column)
				pe.Hint = source.DidYouMean(c.Column, fieldNames(schema))
				bad = true
				continue
			}
			if e.Columns != nil && !contains(e.Columns, c.Column) {
				probs.Add(c.Pos, "column '%s' is not in this expectation's columns: list", c.Column)
				bad = true
				continue
			}
			text, err := canonical(c.Value, schema.Field(i).Type)
			if err != nil {
				probs.Add(c.Pos, "column '%s': %v", c.Column, err)
				bad = true
				continue
			}
			er.cells[c.Column] = text
			er.order = append(er.order, c.Column)
		}
		if e.Columns != nil {
			for _, c := range e.Columns {
				if _, ok := er.cells[c]; !ok && colIndex[c] >= 0 {
					probs.Add(r.Pos, "row lacks column '%s' of this expectation's columns: list", c)
					bad = true
				}
			}
			er.order = e.Columns
		}
		exp = append(exp, er)
	}
	return exp, !bad
}

func indexOf(rows []expRow, er expRow) int {
	for i := range rows {
		if rows[i].row == er.row {
			return i
		}
	}
	return -1
}

// canonical renders an expected YAML value as the column would hold it.
func canonical(n *yaml.Node, dt arrow.DataType) (string, error) {
	v, err := goValue(n, dt)
	if err != nil {
		return "", err
	}
	b := array.NewBuilder(memory.NewGoAllocator(), dt)
	defer b.Release()
	if err := appendValue(b, v); err != nil {
		return "", err
	}
	arr := b.NewArray()
	defer arr.Release()
	return render(detach(arrowx.NewGetter(arr)(0))), nil
}

func format(cols []string, cells map[string]string) string {
	parts := make([]string, 0, len(cols))
	for _, c := range cols {
		parts = append(parts, c+": "+cells[c])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func yamlScalar(v any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode}
	switch x := v.(type) {
	case nil:
		n.Tag, n.Value = "!!null", "null"
	case string:
		n.Tag, n.Value = "!!str", x
	case int, int64:
		n.Tag, n.Value = "!!int", fmt.Sprint(x)
	case float64:
		n.Tag, n.Value = "!!float", strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		n.Tag, n.Value = "!!bool", strconv.FormatBool(x)
	case time.Time:
		n.Tag, n.Value = "!!str", x.UTC().Format(time.RFC3339Nano)
	case []string:
		n.Kind, n.Tag, n.Style = yaml.SequenceNode, "!!seq", yaml.FlowStyle
		for _, s := range x {
			n.Content = append(n.Content, yamlScalar(s))
		}
	case []int:
		n.Kind, n.Tag, n.Style = yaml.SequenceNode, "!!seq", yaml.FlowStyle
		for _, s := range x {
			n.Content = append(n.Content, yamlScalar(s))
		}
	case []float64:
		n.Kind, n.Tag, n.Style = yaml.SequenceNode, "!!seq", yaml.FlowStyle
		for _, s := range x {
			n.Content = append(n.Content, yamlScalar(s))
		}
	default:
		n.Tag, n.Value = "!!str", fmt.Sprint(x)
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
