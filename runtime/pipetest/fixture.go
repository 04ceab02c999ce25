package pipetest

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Clock is the simulated clock a test runs on: time moves only when the
// test says `advance:`, and timers due by then fire at once.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []timer
}

type timer struct {
	at time.Time
	ch chan time.Time
}

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now implements op.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After implements op.Clock: the channel fires when Advance passes now+d.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, timer{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock by d and fires every timer due, in time order.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.ch <- t.at
			continue
		}
		keep = append(keep, t)
	}
	c.timers = keep
}

// item is one thing the driver hands a fixture source.
type item struct {
	recs []partRecord // input rows, one record per partition
	done chan error
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
			it.done <- err
			if err != nil {
				return err
			}
		}
	}
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
