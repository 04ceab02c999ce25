// Package stdout is the "stdout" sink: it prints its input for people, as an
// aligned table (header printed once unless columns widen, cells cut at 40 characters), or as JSON lines
// for other programs. Each batch is written and acknowledged as it arrives.
package stdout

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/codec/jsonenc"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sinks,
	Spec: spec.Spec{
		Name:    "stdout",
		Summary: "Print rows as a table or JSON lines.",
		Doc: `Prints every input row to standard output (or standard error). table
aligns columns and prints the header once (again only when a later batch
needs wider columns), cutting cells at 40 characters with "…"; json prints
one JSON object per line.`,
		Example: `sinks:
  show:
    from: clean
    stdout: {format: table}`,
		Config: spec.Obj(
			spec.F("format", spec.Enum, "table for people, json for programs.").OneOf("table", "json").Def("table"),
			spec.F("to", spec.Enum, "Which stream to write.").OneOf("stdout", "stderr").Def("stdout"),
		),
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	format, to := c.Config.String("format"), c.Config.String("to")
	return nil, func(op.Resources) (any, error) {
		w := io.Writer(os.Stdout)
		if to == "stderr" {
			w = os.Stderr
		}
		return New(w, format), nil
	}
}

// MaxWidth caps a table cell, in characters.
const MaxWidth = 40

// Sink prints batches.
type Sink struct {
	mu     sync.Mutex
	w      *bufio.Writer
	json   bool
	enc    *jsonenc.Encoder
	encFor *arrow.Schema
	widths []int // table column widths of the last header printed
	buf    []byte
}

// New returns a sink printing to w in format "table" (default) or "json".
func New(w io.Writer, format string) *Sink {
	return &Sink{w: bufio.NewWriterSize(w, 64<<10), json: format == "json"}
}

// Write implements op.Sink.
func (s *Sink) Write(ctx context.Context, b batch.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if b.Rec != nil {
		if s.json {
			s.writeJSON(b.Rec)
		} else {
			s.writeTable(b.Rec)
		}
		b.Rec.Release()
	}
	err = s.w.Flush()
	b.Ack.Done(err)
	return err
}

func (s *Sink) writeJSON(rec arrow.RecordBatch) {
	if s.enc == nil || s.encFor != rec.Schema() {
		s.enc, s.encFor = jsonenc.NewEncoder(rec.Schema()), rec.Schema()
	}
	for i := 0; i < int(rec.NumRows()); i++ {
		s.buf = s.enc.AppendRow(s.buf[:0], rec, i)
		s.buf = append(s.buf, '\n')
		s.w.Write(s.buf)
	}
}

// Cell returns the table text of element i of arr: strings as they are
// (with control characters escaped), null as "null", the rest as JSON.
func Cell(arr arrow.Array, i int) string {
	if arr.IsNull(i) {
		return "null"
	}
	switch a := arr.(type) {
	case *array.String:
		return strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '␣'
			}
			return r
		}, a.Value(i))
	case *array.Timestamp:
		b := jsonenc.AppendValue(nil, arr, i)
		return string(b[1 : len(b)-1])
	}
	return string(jsonenc.AppendValue(nil, arr, i))
}

func fit(s string, w int) string {
	n := utf8.RuneCountInString(s)
	if n > w {
		r := []rune(s)
		return string(r[:w-1]) + "…"
	}
	return s + strings.Repeat(" ", w-n)
}

func (s *Sink) writeTable(rec arrow.RecordBatch) {
	ncol := int(rec.NumCols())
	rows := int(rec.NumRows())
	cells := make([][]string, rows)
	for r := range cells {
		cells[r] = make([]string, ncol)
		for c := 0; c < ncol; c++ {
			cells[r][c] = Cell(rec.Column(c), r)
		}
	}
	// Widths come from the header and the data, capped; a later batch with
	// wider values widens its columns and prints the header again.
	widths := make([]int, ncol)
	first := s.widths == nil || len(s.widths) != ncol
	grown := first
	for c, f := range rec.Schema().Fields() {
		w := utf8.RuneCountInString(f.Name)
		if !first {
			w = max(w, s.widths[c])
		}
		for r := range cells {
			w = max(w, utf8.RuneCountInString(cells[r][c]))
		}
		widths[c] = min(max(w, 1), MaxWidth)
		if !first && widths[c] > s.widths[c] {
			grown = true
		}
	}
	if grown {
		s.widths = widths
		var head, rule []string
		for c, f := range rec.Schema().Fields() {
			head = append(head, fit(f.Name, s.widths[c]))
			rule = append(rule, strings.Repeat("─", s.widths[c]))
		}
		s.line(head)
		s.line(rule)
	}
	for r := range cells {
		row := cells[r]
		for c := range row {
			if c < len(s.widths) {
				row[c] = fit(row[c], s.widths[c])
			}
		}
		s.line(row)
	}
}

func (s *Sink) line(cells []string) {
	s.w.WriteString(strings.TrimRight(strings.Join(cells, "  "), " "))
	s.w.WriteByte('\n')
}

// Flush implements op.SinkFlusher.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Flush()
}

// Close implements op.Closer; it flushes and is safe to call twice.
func (s *Sink) Close(ctx context.Context) error { return s.Flush(ctx) }
