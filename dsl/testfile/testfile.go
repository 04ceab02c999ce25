// Package testfile owns the pipeline test format: the `NAME.test.yaml` files
// `flowrun test` reads beside a pipeline. It decodes them strictly (unknown
// keys, wrong types, missing names), keeping every position so a failing
// test and a mistake in the file both point at `file:line:col`. It checks
// only the file's own shape; what names a source or sink, and whether a
// value fits its column, is checked against the pipeline by runtime/pipetest.
//
// The format:
//
//	pipeline: pinterest_clean.yaml   # default: NAME.yaml beside NAME.test.yaml
//	vars: {TOPIC: t}                 # variables for loading the pipeline
//	tests:
//	  - name: counts become numbers
//	    at: 2026-11-25T13:00:00Z     # the simulated clock's start (default 2026-01-01T00:00:00Z)
//	    input:                       # one step: rows per source
//	      posts:
//	        - {unique_id: a, follower_count: 10k}
//	        - {unique_id: b, $partition: 1}   # $partition, $key: Kafka metadata
//	    steps:                       # or several steps, in order
//	      - input: {posts: [...]}
//	      - advance: 1m              # move the simulated clock
//	      - watermark: {posts: 2026-11-25T13:05:00Z}   # no older rows will come (every partition fed)
//	      - watermark: {posts: {time: 2026-11-25T13:05:00Z, partition: 1}}
//	    expect:
//	      pins:                      # rows per sink (dead-letter and late outputs are sinks)
//	        - {unique_id: a, follower_count: 10000}
//	      dead_letters:
//	        rows: [{node: valid, reason: missing category}]
//	        ordered: true            # default: order-insensitive
//	        columns: [node, reason]  # default: the columns the rows name
package testfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/source"
)

// DefaultStart is the simulated clock's start when a test gives no `at:`.
var DefaultStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one decoded test file.
type File struct {
	Src         *source.File
	Root        *yaml.Node // the document's mapping, for --update
	Pipeline    string     // as written, relative to the test file's folder
	PipelinePos source.Pos
	Vars        map[string]string
	Tests       []*Test
}

// Test is one named test.
type Test struct {
	Name   string
	Pos    source.Pos
	Start  time.Time
	Steps  []*Step
	Expect []*Expect
}

// Step is one thing a test does: feed rows, advance the clock, or announce
// a watermark. Exactly one of Inputs, Advance and Watermarks is set.
// Watermarks otherwise follow the event times of the rows fed, per
// partition, as in production: a test moves a partition's watermark by
// feeding it a later row, lets an idle partition go by advancing the clock
// past the window's idle_timeout, or says outright that a source will send
// nothing older than a time with a watermark step (what a source with an
// upstream watermark, or a quiet partition, does in production).
type Step struct {
	Pos        source.Pos
	Inputs     []*Input
	Advance    time.Duration
	Watermarks []*Watermark
}

// Watermark is a step's announcement that a source will send no more rows
// with an event time before Time: for one partition, or (Partition < 0)
// for every partition the source has fed so far, or partition 0 when it
// has fed none.
type Watermark struct {
	Source    string
	Pos       source.Pos
	Partition int32
	Time      time.Time
}

// Input is the rows one step feeds one source.
type Input struct {
	Source string
	Pos    source.Pos
	Rows   []*Row
}

// Row is one row of input or expectation. Cells keep their YAML nodes so
// values are converted to the column's type where the column is known.
type Row struct {
	Pos   source.Pos
	Node  *yaml.Node
	Cells []*Cell
	// Partition and Key are Kafka metadata ($partition, $key) for inputs.
	Partition int32
	Key       *string
}

// Cell is one column value of a row.
type Cell struct {
	Column string
	Pos    source.Pos
	Value  *yaml.Node
}

// Expect is what one sink must have received by the end of a test.
type Expect struct {
	Sink    string
	Pos     source.Pos
	Node    *yaml.Node // the value under the sink's key, replaced by --update
	Rows    []*Row
	Ordered bool
	Columns []string // nil: each row's own columns
}

type decoder struct {
	file *source.File
	errs source.Errors
}

// Parse decodes a test file, reporting every mistake with its position.
func Parse(name string, text []byte) (*File, source.Errors) {
	d := &decoder{file: source.NewFile(name, text)}
	f := &File{Src: d.file, Vars: map[string]string{}}
	root, ok := d.load(text)
	if !ok {
		return nil, d.errs
	}
	f.Root = root
	d.mapping(root, "a test file", []string{"pipeline", "vars", "tests"}, func(k, v *yaml.Node) {
		switch k.Value {
		case "pipeline":
			f.Pipeline = d.str(v, "pipeline")
			f.PipelinePos = d.pos(v)
		case "vars":
			d.mapping(v, "vars", nil, func(k, v *yaml.Node) {
				f.Vars[k.Value] = d.str(v, "variable "+k.Value)
			})
		case "tests":
			f.Tests = d.tests(v)
		}
	})
	if f.Tests == nil && len(d.errs) == 0 {
		d.errorf(root, "missing", "a test file needs 'tests:', a list of tests")
	}
	d.errs.Sort()
	return f, d.errs
}

// ParseTests decodes a pipeline's own `tests:` block (the same list of
// tests a test file holds) from the pipeline file's YAML.
func ParseTests(file *source.File, n *yaml.Node) ([]*Test, source.Errors) {
	d := &decoder{file: file}
	tests := d.tests(n)
	d.errs.Sort()
	return tests, d.errs
}

func (d *decoder) load(text []byte) (*yaml.Node, bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		line := 1
		msg := err.Error()
		if _, rest, ok := strings.Cut(msg, "line "); ok {
			if n, err := strconv.Atoi(strings.SplitN(rest, ":", 2)[0]); err == nil {
				line = n
			}
		}
		d.errs.Add(source.Pos{File: d.file, Line: line, Column: 1}, "%s", strings.SplitN(msg, "\n", 2)[0]).Code = "syntax"
		return nil, false
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		d.errs.Add(source.Pos{File: d.file, Line: 1, Column: 1}, "empty test file: it needs 'tests:', a list of tests").Code = "missing"
		return nil, false
	}
	return doc.Content[0], true
}

func (d *decoder) pos(n *yaml.Node) source.Pos {
	if n == nil || n.Line < 1 {
		return source.Pos{File: d.file, Line: 1, Column: 1}
	}
	return source.Pos{File: d.file, Line: n.Line, Column: max(n.Column, 1)}
}

func (d *decoder) errorf(n *yaml.Node, code, format string, args ...any) *source.Error {
	e := d.errs.Add(d.pos(n), format, args...)
	e.Code = code
	return e
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "null"
	}
	return fmt.Sprintf("%q", n.Value)
}

// mapping calls fn for each key of n in order; with known non-nil, other
// keys are errors with a suggestion.
func (d *decoder) mapping(n *yaml.Node, what string, known []string, fn func(k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "type", "%s must be a mapping, not %s", what, kind(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if known != nil && !contains(known, k.Value) {
			e := d.errorf(k, "unknown-key", "unknown key '%s' in %s", k.Value, what)
			e.Hint = source.DidYouMean(k.Value, known)
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "duplicate", "duplicate key '%s' in %s", k.Value, what)
			continue
		}
		seen[k.Value] = true
		fn(k, v)
	}
}

func (d *decoder) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, "type", "%s must be a string, not %s", what, kind(n))
		return ""
	}
	return n.Value
}

func (d *decoder) seq(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "type", "%s must be a list, not %s", what, kind(n))
		return nil
	}
	return n.Content
}

func (d *decoder) tests(n *yaml.Node) []*Test {
	items := d.seq(n, "tests")
	out := []*Test{}
	names := map[string]bool{}
	for _, item := range items {
		t := &Test{Pos: d.pos(item), Start: DefaultStart}
		var input *yaml.Node
		var steps *yaml.Node
		d.mapping(item, "a test", []string{"name", "at", "input", "steps", "expect"}, func(k, v *yaml.Node) {
			switch k.Value {
			case "name":
				t.Name = d.str(v, "name")
				if t.Name != "" && names[t.Name] {
					d.errorf(v, "duplicate", "two tests are named %q", t.Name)
				}
				names[t.Name] = true
			case "at":
				if at, ok := d.time(v, "at"); ok {
					t.Start = at
				}
			case "input":
				input = k
				t.Steps = append(t.Steps, d.inputStep(k, v))
			case "steps":
				steps = k
				for _, s := range d.seq(v, "steps") {
					if st := d.step(s); st != nil {
						t.Steps = append(t.Steps, st)
					}
				}
			case "expect":
				t.Expect = d.expects(v)
			}
		})
		if item.Kind != yaml.MappingNode {
			continue
		}
		if t.Name == "" && !hasKey(item, "name") {
			d.errorf(item, "missing", "a test needs a 'name:'")
		}
		if input != nil && steps != nil {
			d.errorf(steps, "conflict", "a test has either 'input:' or 'steps:', not both")
		}
		if t.Expect == nil && !hasKey(item, "expect") {
			d.errorf(item, "missing", "test %q has no 'expect:' (what each sink must receive)", t.Name)
		}
		out = append(out, t)
	}
	return out
}

func (d *decoder) step(n *yaml.Node) *Step {
	var st *Step
	d.mapping(n, "a step", []string{"input", "advance", "watermark"}, func(k, v *yaml.Node) {
		if st != nil {
			d.errorf(k, "conflict", "a step does one thing: 'input', 'advance' or 'watermark' (start a new '- ' item)")
			return
		}
		switch k.Value {
		case "input":
			st = d.inputStep(k, v)
		case "advance":
			dur, err := time.ParseDuration(d.str(v, "advance"))
			if err != nil || dur <= 0 {
				d.errorf(v, "type", "advance must be a positive duration such as 30s or 1h, not %s", kind(v))
			}
			st = &Step{Pos: d.pos(k), Advance: dur}
		case "watermark":
			st = d.watermarkStep(k, v)
		}
	})
	if st == nil && n.Kind == yaml.MappingNode && len(n.Content) == 0 {
		d.errorf(n, "missing", "an empty step: give 'input', 'advance' or 'watermark'")
	}
	return st
}

func (d *decoder) time(n *yaml.Node, what string) (time.Time, bool) {
	s := d.str(n, what)
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.errorf(n, "type", "%s must be an RFC 3339 time such as 2026-11-25T13:00:00Z, not %s", what, kind(n))
		return time.Time{}, false
	}
	return t.UTC(), true
}

// watermarkStep decodes `watermark: {SOURCE: TIME}` (every partition the
// source has fed) or `watermark: {SOURCE: {time: TIME, partition: N}}`.
func (d *decoder) watermarkStep(k, v *yaml.Node) *Step {
	st := &Step{Pos: d.pos(k), Watermarks: []*Watermark{}}
	d.mapping(v, "watermark (source: time)", nil, func(k, v *yaml.Node) {
		w := &Watermark{Source: k.Value, Pos: d.pos(k), Partition: -1}
		if v.Kind != yaml.MappingNode {
			w.Time, _ = d.time(v, "a watermark")
			st.Watermarks = append(st.Watermarks, w)
			return
		}
		d.mapping(v, "a watermark", []string{"time", "partition"}, func(k, v *yaml.Node) {
			switch k.Value {
			case "time":
				w.Time, _ = d.time(v, "a watermark's time")
			case "partition":
				p, err := strconv.ParseInt(v.Value, 10, 32)
				if v.Kind != yaml.ScalarNode || err != nil || p < 0 {
					d.errorf(v, "type", "a watermark's partition must be a partition number (0, 1, ...), not %s", kind(v))
				}
				w.Partition = int32(p)
			}
		})
		if !hasKey(v, "time") {
			d.errorf(v, "missing", "a watermark needs a 'time:' (RFC 3339)")
		}
		st.Watermarks = append(st.Watermarks, w)
	})
	return st
}

func (d *decoder) inputStep(k, v *yaml.Node) *Step {
	st := &Step{Pos: d.pos(k), Inputs: []*Input{}}
	d.mapping(v, "input (source: rows)", nil, func(k, v *yaml.Node) {
		in := &Input{Source: k.Value, Pos: d.pos(k)}
		for _, r := range d.seq(v, "the rows of source "+k.Value) {
			if row := d.row(r, true); row != nil {
				in.Rows = append(in.Rows, row)
			}
		}
		st.Inputs = append(st.Inputs, in)
	})
	return st
}

func (d *decoder) row(n *yaml.Node, input bool) *Row {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "type", "a row must be a mapping of column: value, not %s", kind(n))
		return nil
	}
	r := &Row{Pos: d.pos(n), Node: n}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			d.errorf(k, "duplicate", "column '%s' given twice in one row", k.Value)
			continue
		}
		seen[k.Value] = true
		if strings.HasPrefix(k.Value, "$") {
			if !input {
				d.errorf(k, "unknown-key", "'%s' is input metadata; expected rows name columns only", k.Value)
				continue
			}
			switch k.Value {
			case "$partition":
				p, err := strconv.ParseInt(v.Value, 10, 32)
				if v.Kind != yaml.ScalarNode || err != nil || p < 0 {
					d.errorf(v, "type", "$partition must be a partition number (0, 1, ...), not %s", kind(v))
				}
				r.Partition = int32(p)
			case "$key":
				s := d.str(v, "$key")
				r.Key = &s
			default:
				e := d.errorf(k, "unknown-key", "unknown row metadata '%s'", k.Value)
				e.Hint = source.DidYouMean(k.Value, []string{"$partition", "$key"})
			}
			continue
		}
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		r.Cells = append(r.Cells, &Cell{Column: k.Value, Pos: d.pos(k), Value: v})
	}
	return r
}

func (d *decoder) expects(n *yaml.Node) []*Expect {
	out := []*Expect{}
	d.mapping(n, "expect (sink: rows)", nil, func(k, v *yaml.Node) {
		e := &Expect{Sink: k.Value, Pos: d.pos(k), Node: v}
		rows := v
		if v.Kind == yaml.MappingNode {
			rows = nil
			d.mapping(v, "the expectation of sink "+k.Value, []string{"rows", "ordered", "columns"}, func(k, v *yaml.Node) {
				switch k.Value {
				case "rows":
					rows = v
				case "ordered":
					if v.Kind != yaml.ScalarNode || (v.Value != "true" && v.Value != "false") {
						d.errorf(v, "type", "ordered must be true or false, not %s", kind(v))
					}
					e.Ordered = v.Value == "true"
				case "columns":
					e.Columns = []string{}
					for _, c := range d.seq(v, "columns") {
						e.Columns = append(e.Columns, d.str(c, "a column name"))
					}
				}
			})
			if rows == nil {
				d.errorf(v, "missing", "the expectation of sink %s needs 'rows:'", k.Value)
				rows = &yaml.Node{Kind: yaml.SequenceNode}
			}
		}
		if rows.Kind == yaml.ScalarNode && rows.Tag == "!!null" {
			rows = &yaml.Node{Kind: yaml.SequenceNode}
		}
		for _, r := range d.seq(rows, "the expected rows of sink "+k.Value) {
			if row := d.row(r, false); row != nil {
				e.Rows = append(e.Rows, row)
			}
		}
		out = append(out, e)
	})
	return out
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ErrNoTests is returned when a path holds no test file.
var ErrNoTests = errors.New("no tests found")
