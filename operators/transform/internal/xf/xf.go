// Package xf holds what the built-in transforms share: dropping rows from a
// batch by a keep-mask, taking rows by index, rendering a row as JSON for a
// dead letter, emitting under the input's ack, and finding the position of
// one item of a list in the pipeline file.
package xf

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/compute/exec"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Alloc returns r's allocator, or the Go allocator when none is set.
func Alloc(r op.Resources) memory.Allocator {
	if r.Alloc == nil {
		return memory.DefaultAllocator
	}
	return r.Alloc
}

// Emit passes rec on under in's ack, taking over both; an empty rec is
// released and the ack done instead. in.Rec is not touched: the caller
// releases it (or rec is in.Rec).
func Emit(ctx context.Context, out op.Output, ack *batch.Ack, rec arrow.RecordBatch) error {
	if rec == nil || rec.NumRows() == 0 {
		if rec != nil {
			rec.Release()
		}
		ack.Done(nil)
		return nil
	}
	return out.Emit(ctx, batch.Batch{Rec: rec, Ack: ack})
}

// maxSlices is how many zero-copy slices EmitKept passes on before it
// copies the kept rows instead: a few rejected rows in a batch (the usual
// case for bad data) cost a few slices, not a copy of every column.
const maxSlices = 8

// EmitKept passes on the rows of rec where keep is true (kept of them) under
// ack, taking over both: all rows pass rec itself on (zero-copy), none
// releases rec and finishes ack, a few runs of kept rows go on as slices
// that share rec's buffers, and many runs are copied into one new record.
func EmitKept(ctx context.Context, out op.Output, mem memory.Allocator, ack *batch.Ack, rec arrow.RecordBatch, keep []bool, kept int) error {
	switch kept {
	case int(rec.NumRows()):
		return Emit(ctx, out, ack, rec)
	case 0:
		rec.Release()
		ack.Done(nil)
		return nil
	}
	if runs := keptRuns(keep, nil); len(runs) <= maxSlices {
		defer rec.Release()
		ack.Retain(len(runs) - 1)
		for i, r := range runs {
			if err := out.Emit(ctx, batch.Batch{Rec: rec.NewSlice(int64(r[0]), int64(r[1])), Ack: ack}); err != nil {
				for range runs[i+1:] {
					ack.Done(err)
				}
				return err
			}
		}
		return nil
	}
	filtered, err := Keep(ctx, mem, rec, keep)
	rec.Release()
	if err != nil {
		ack.Done(err)
		return err
	}
	return Emit(ctx, out, ack, filtered)
}

// keptRuns appends the [start, end) row ranges where keep is true, stopping
// early once there are more than maxSlices.
func keptRuns(keep []bool, runs [][2]int) [][2]int {
	start := -1
	for i, k := range keep {
		switch {
		case k && start < 0:
			start = i
		case !k && start >= 0:
			runs = append(runs, [2]int{start, i})
			start = -1
			if len(runs) > maxSlices {
				return runs
			}
		}
	}
	if start >= 0 {
		runs = append(runs, [2]int{start, len(keep)})
	}
	return runs
}

// Keep returns a new record holding the rows of rec where keep is true. It
// does not release rec. All-true masks should be handled by the caller
// (emit rec itself, zero-copy).
func Keep(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, keep []bool) (arrow.RecordBatch, error) {
	mb := array.NewBooleanBuilder(mem)
	defer mb.Release()
	mb.AppendValues(keep, nil)
	mask := mb.NewBooleanArray()
	defer mask.Release()
	ctx = exec.WithAllocator(ctx, mem)
	return compute.FilterRecordBatch(ctx, rec, mask, compute.DefaultFilterOptions())
}

// Take returns arr's rows at idx (a null index gives a null row).
func Take(ctx context.Context, mem memory.Allocator, arr arrow.Array, idx arrow.Array) (arrow.Array, error) {
	return compute.TakeArray(exec.WithAllocator(ctx, mem), arr, idx)
}

// RowJSON renders one row of rec as a JSON object in column order, for the
// record text of a dead letter.
func RowJSON(rec arrow.RecordBatch, row int) string {
	b := []byte{'{'}
	for i, f := range rec.Schema().Fields() {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f.Name)
		b = append(b, k...)
		b = append(b, ':')
		v, err := json.Marshal(arrowx.NewGetter(rec.Column(i))(row))
		if err != nil {
			v = []byte("null")
		}
		b = append(b, v...)
	}
	return string(append(b, '}'))
}

// ItemPos returns the position of item i of the list found under keys in
// the node's raw config (no keys: the config itself), or fallback when it
// cannot be found. spec.Value keeps no per-item positions for string lists.
func ItemPos(c *validate.Check, fallback source.Pos, i int, keys ...string) source.Pos {
	if c.Node == nil || c.Node.Config == nil {
		return fallback
	}
	n := c.Node.Config
	for _, k := range keys {
		if n.Kind != yaml.MappingNode {
			return fallback
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == k {
				next = n.Content[j+1]
			}
		}
		if next == nil {
			return fallback
		}
		n = next
	}
	if n.Kind == yaml.SequenceNode && i < len(n.Content) {
		n = n.Content[i]
	} else if n.Kind != yaml.ScalarNode {
		return fallback
	}
	var f *source.File
	if c.Node != nil && c.Node.Pos.File != nil {
		f = c.Node.Pos.File // the node may come from an included file
	} else if c.Pipeline != nil {
		f = c.Pipeline.File
	}
	if f == nil {
		f = fallback.File
	}
	return spec.Pos(f, n)
}

// Names lists the schema's column names.
func Names(s *arrow.Schema) []string {
	names := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		names[i] = f.Name
	}
	return names
}

// UnknownColumn reports a column missing from s at pos with a suggestion.
func UnknownColumn(c *validate.Check, pos source.Pos, name string, s *arrow.Schema) {
	e := c.Errorf(pos, "unknown column '%s'", name)
	e.Code = "unknown-column"
	e.Hint = source.DidYouMean(name, Names(s))
}

// Project returns a record of schema s made of rec's columns idx, sharing
// their memory (zero-copy). It does not release rec.
func Project(rec arrow.RecordBatch, s *arrow.Schema, idx []int) arrow.RecordBatch {
	cols := make([]arrow.Array, len(idx))
	for i, j := range idx {
		cols[i] = rec.Column(j)
	}
	return array.NewRecordBatch(s, cols, rec.NumRows())
}

// Projector is a zero-copy transform that picks input columns by index
// under a new schema; select, drop and rename are Projectors.
type Projector struct {
	Schema *arrow.Schema
	Idx    []int
}

// Process implements op.Transform.
func (p *Projector) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	rec := Project(in.Rec, p.Schema, p.Idx)
	in.Rec.Release()
	return Emit(ctx, out, in.Ack, rec)
}

// ProjectorCtor returns a constructor of p.
func ProjectorCtor(p *Projector) op.Constructor {
	return func(op.Resources) (any, error) { return p, nil }
}

// EvalMsg is an evaluation error's message without the expression's
// position and text, for a dead letter's reason.
func EvalMsg(err error) string {
	var ee *exprc.EvalError
	if errors.As(err, &ee) {
		return ee.Msg
	}
	return err.Error()
}
