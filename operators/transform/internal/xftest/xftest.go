// Package xftest helps transform tests: Prepare runs a plugin's Prepare on a
// YAML snippet, Record builds a record from Go values, Rows reads one back,
// and Collector is an op.Output that keeps what a node emits and rejects and
// checks each ack is finished exactly once.
package xftest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Prepare decodes config (the YAML of the node's operator block, e.g.
// `{a: b}`) against p's spec and calls p.Prepare with one input of schema
// in. The file is named "p.yaml" and holds exactly config, so positions are
// line 1 for a flow-style snippet.
func Prepare(t testing.TB, p *op.Plugin, config string, in *arrow.Schema) (*arrow.Schema, op.Constructor, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(config), &doc); err != nil {
		t.Fatal(err)
	}
	n := doc.Content[0]
	f := source.NewFile("p.yaml", []byte(config))
	var errs source.Errors
	v := spec.Decode(f, n, p.Spec.Config, &errs)
	c := &validate.Check{
		Pipeline: &ast.Pipeline{File: f},
		Node:     &ast.Node{Name: "t", Section: p.Section, Type: p.Spec.Name, Config: n},
		Config:   v,
		Inputs:   []validate.Input{{Name: "in", Schema: in}},
		Errs:     &errs,
	}
	out, ctor := p.Prepare(c)
	errs.Sort()
	return out, ctor, errs
}

// Build prepares config and constructs the transform, failing the test on
// any config error.
func Build(t testing.TB, p *op.Plugin, config string, in *arrow.Schema, mem memory.Allocator) (op.Transform, *arrow.Schema) {
	t.Helper()
	out, ctor, errs := Prepare(t, p, config, in)
	if len(errs) > 0 {
		t.Fatalf("config errors:\n%s", errs.Render())
	}
	n, err := ctor(op.Resources{Node: "t", Alloc: mem, BatchRows: 1024, Clock: op.SystemClock{}})
	if err != nil {
		t.Fatal(err)
	}
	return n.(op.Transform), out
}

// Record builds a record of schema s from rows of Go values (arrowx
// conventions; nil is null).
func Record(t testing.TB, mem memory.Allocator, s *arrow.Schema, rows ...[]any) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, s)
	defer b.Release()
	apps := make([]arrowx.Appender, s.NumFields())
	for i := range apps {
		apps[i] = arrowx.NewAppender(b.Field(i))
	}
	for _, r := range rows {
		for i, v := range r {
			if err := apps[i](v); err != nil {
				t.Fatalf("row %v col %d: %v", r, i, err)
			}
		}
	}
	return b.NewRecordBatch()
}

// Rows reads rec back as Go values.
func Rows(rec arrow.RecordBatch) [][]any {
	gs := make([]arrowx.Getter, rec.NumCols())
	for i := range gs {
		gs[i] = arrowx.NewGetter(rec.Column(i))
	}
	out := make([][]any, rec.NumRows())
	for r := range out {
		row := make([]any, len(gs))
		for i, g := range gs {
			row[i] = g(r)
		}
		out[r] = row
	}
	return out
}

// Reject is one dead letter.
type Reject struct{ Record, Reason string }

// Collector is an op.Output that keeps emitted batches and rejects.
type Collector struct {
	Out     *arrow.Schema
	mu      sync.Mutex
	Batches []batch.Batch
	Rejects []Reject
}

// Schema implements op.Output.
func (c *Collector) Schema() *arrow.Schema { return c.Out }

// Emit implements op.Output; it keeps b (release it with Release).
func (c *Collector) Emit(ctx context.Context, b batch.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Out != nil && !b.Rec.Schema().Equal(c.Out) {
		return fmt.Errorf("emitted schema %v, want %v", b.Rec.Schema(), c.Out)
	}
	c.Batches = append(c.Batches, b)
	return nil
}

// Reject implements op.Output.
func (c *Collector) Reject(record, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Rejects = append(c.Rejects, Reject{record, reason})
	return nil
}

// Rows returns every emitted row, in order.
func (c *Collector) Rows() [][]any {
	var out [][]any
	for _, b := range c.Batches {
		out = append(out, Rows(b.Rec)...)
	}
	return out
}

// Release releases and acks every kept batch.
func (c *Collector) Release() {
	for _, b := range c.Batches {
		b.Release(nil)
	}
	c.Batches = nil
}

// Ack returns an ack that fails t unless it is finished exactly once before
// the test ends.
func Ack(t testing.TB) *batch.Ack {
	done := 0
	a := batch.NewAck(func(error) { done++ })
	t.Cleanup(func() {
		if done != 1 {
			t.Errorf("ack finished %d times, want 1", done)
		}
	})
	return a
}

// CheckPrepare runs each case, {config snippet, output columns comma-joined,
// errors ("" for none)}, through Prepare and compares the errors and output
// columns exactly.
func CheckPrepare(t *testing.T, p *op.Plugin, in *arrow.Schema, cases [][3]string) {
	t.Helper()
	for _, c := range cases {
		tc := struct{ Config, Columns, Errs string }{c[0], c[1], c[2]}
		out, _, errs := Prepare(t, p, tc.Config, in)
		if errs.Error() != tc.Errs {
			t.Errorf("%s: errors %q, want %q", tc.Config, errs.Error(), tc.Errs)
		}
		var names []string
		if out != nil {
			for _, f := range out.Fields() {
				names = append(names, f.Name)
			}
		}
		if got := strings.Join(names, ","); got != tc.Columns {
			t.Errorf("%s: columns %q, want %q", tc.Config, got, tc.Columns)
		}
	}
}
