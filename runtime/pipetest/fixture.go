package pipetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/testfile"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// item is one thing the driver hands a fixture source: input rows, or
// watermarks to announce.
type item struct {
	recs  []partRecord // input rows, one record per partition
	marks []*testfile.Watermark
	done  chan error
}

type partRecord struct {
	partition int32
	rec       arrow.RecordBatch
}

// fixtureSource replaces a pipeline's source: it emits what the test's
// steps give it and ends (a real end of input) when the driver closes items.
type fixtureSource struct {
	name    string
	items   chan item
	offsets map[int32]int64
	pending *atomic.Int64 // acks emitted and not yet done, across the test
}

func (s *fixtureSource) Run(ctx context.Context, out op.Output) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case it, ok := <-s.items:
			if !ok {
				return nil
			}
			var err error
			for i, pr := range it.recs {
				first := s.offsets[pr.partition]
				n := pr.rec.NumRows()
				s.offsets[pr.partition] = first + n
				s.pending.Add(1)
				// Positions name the partition, so windows keep a
				// watermark per partition as they do behind Kafka.
				ack := batch.NewAck(func(error) { s.pending.Add(-1) }).WithPositions(batch.Position{
					Source: s.name, Partition: pr.partition, First: first, Last: first + n - 1})
				if err = out.Emit(ctx, batch.Batch{Rec: pr.rec, Ack: ack}); err != nil {
					for _, rest := range it.recs[i+1:] {
						rest.rec.Release()
					}
					break
				}
			}
			if err == nil && len(it.marks) > 0 {
				err = s.announce(ctx, out, it.marks)
			}
			it.done <- err
			if err != nil {
				return err
			}
		}
	}
}

// announce emits a watermark control per partition a step names (or, when
// it names none, per partition fed so far, or partition 0), in order with
// the batches already emitted.
func (s *fixtureSource) announce(ctx context.Context, out op.Output, marks []*testfile.Watermark) error {
	co, ok := out.(op.ControlOutput)
	if !ok {
		return fmt.Errorf("source %s: the runtime's output does not carry watermarks", s.name)
	}
	for _, m := range marks {
		parts := []int32{m.Partition}
		if m.Partition < 0 {
			parts = parts[:0]
			for p := range s.offsets {
				parts = append(parts, p)
			}
			if len(parts) == 0 {
				parts = append(parts, 0)
			}
			slices.Sort(parts)
		}
		for _, p := range parts {
			c := op.Control{Kind: op.Watermark, Partition: batch.Position{Source: s.name, Partition: p}, Time: m.Time}
			if err := co.EmitControl(ctx, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// fixtureSink replaces a pipeline's sink: it keeps every row it receives,
// as Go values, and acknowledges at once.
type fixtureSink struct {
	mu     sync.Mutex
	schema *arrow.Schema
	rows   [][]any
}

func (s *fixtureSink) Write(_ context.Context, b batch.Batch) error {
	if b.Rec != nil {
		n := int(b.Rec.NumRows())
		getters := make([]arrowx.Getter, b.Rec.NumCols())
		for i, col := range b.Rec.Columns() {
			getters[i] = arrowx.NewGetter(col)
		}
		s.mu.Lock()
		if s.schema == nil {
			s.schema = b.Rec.Schema()
		}
		for r := 0; r < n; r++ {
			row := make([]any, len(getters))
			for c, g := range getters {
				row[c] = detach(g(r))
			}
			s.rows = append(s.rows, row)
		}
		s.mu.Unlock()
	}
	b.Release(nil)
	return nil
}

// detach copies values that may share Arrow buffers.
func detach(v any) any {
	switch x := v.(type) {
	case string:
		return string([]byte(x))
	case []byte:
		return append([]byte(nil), x...)
	}
	return v
}

func (s *fixtureSink) snapshot() (*arrow.Schema, [][]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.schema, s.rows
}
