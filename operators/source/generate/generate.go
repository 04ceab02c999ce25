// Package generate is the "generate" source: synthetic Pinterest posts from
// a seeded generator (operators/source/generate/posts), at a chosen rate,
// stamped with an ingested_at time from the node's clock. It feeds demos,
// benchmarks and tests without any external system.
package generate

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// IngestedAt is the column holding the time each batch was generated.
const IngestedAt = "ingested_at"

// Schema is the source's output: posts.Schema() plus ingested_at.
var Schema = arrow.NewSchema(append(posts.Schema().Fields(),
	arrow.Field{Name: IngestedAt, Type: types.Timestamp, Nullable: true}), nil)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sources,
	Spec: spec.Spec{
		Name:    "generate",
		Summary: "Synthetic Pinterest posts from a seeded generator.",
		Doc: `Emits raw Pinterest posts with the shapes and dirty values of real data
(placeholders, "1.2k" follower counts, duplicate ids, records missing unique_id
or category), plus an ingested_at timestamp. The same seed gives the same posts.
With count 0 the source runs until stopped; in --once mode it then emits one
batch and ends.`,
		Example: `sources:
  posts:
    generate: {count: 10000, rate: 500, seed: 7}`,
		Config: spec.Obj(
			spec.F("count", spec.Int, "Number of posts to emit, then stop; 0 means unbounded.").Def(0),
			spec.F("rate", spec.Int, "Posts per second; 0 means as fast as possible.").Def(0),
			spec.F("seed", spec.Int, "Random seed; equal seeds give equal posts.").Def(1),
		),
	},
	Prepare: prepare,
	Flow: func(cfg *spec.Value, once bool) validate.Flow {
		return validate.Flow{Unbounded: cfg.Int64("count") == 0 && !once}
	},
}

func init() { op.MustRegister(Plugin) }

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	cfg := c.Config
	count, rate, seed := cfg.Int64("count"), cfg.Int64("rate"), cfg.Int64("seed")
	if count < 0 {
		c.Errorf(cfg.PosOf("count"), "'count' must not be negative")
	}
	if rate < 0 {
		c.Errorf(cfg.PosOf("rate"), "'rate' must not be negative")
	}
	return Schema, func(r op.Resources) (any, error) {
		return New(r, count, rate, seed), nil
	}
}

// Source emits generated posts.
type Source struct {
	res         op.Resources
	count, rate int64
	gen         *posts.Generator
}

// New returns a generate source; count 0 is unbounded, rate 0 unthrottled.
func New(r op.Resources, count, rate, seed int64) *Source {
	if r.BatchRows <= 0 {
		r.BatchRows = 1024
	}
	if r.Clock == nil {
		r.Clock = op.SystemClock{}
	}
	return &Source{res: r, count: count, rate: rate, gen: posts.New(seed)}
}

// Run emits batches until count posts are out (then returns nil) or ctx ends.
func (s *Source) Run(ctx context.Context, out op.Output) error {
	b := array.NewRecordBuilder(s.res.Alloc, Schema)
	defer b.Release()
	count := s.count
	if count == 0 && s.res.Once {
		count = int64(s.res.BatchRows)
	}
	size := int64(s.res.BatchRows)
	if s.rate > 0 {
		// About ten batches a second keeps a throttled stream smooth.
		size = max(1, min(size, s.rate/10))
	}
	start := s.res.Clock.Now()
	var sent int64
	ts := b.Field(posts.NumCols).(*array.TimestampBuilder)
	for count == 0 || sent < count {
		if err := ctx.Err(); err != nil {
			return nil
		}
		n := size
		if count > 0 {
			n = min(n, count-sent)
		}
		if s.rate > 0 {
			due := start.Add(time.Duration(float64(sent) / float64(s.rate) * float64(time.Second)))
			if wait := due.Sub(s.res.Clock.Now()); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-s.res.Clock.After(wait):
				}
			}
		}
		b.Reserve(int(n))
		for range n {
			s.gen.AppendTo(b)
		}
		now, err := arrow.TimestampFromTime(s.res.Clock.Now(), arrow.Microsecond)
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		for range n {
			ts.Append(now)
		}
		rec := b.NewRecordBatch()
		if err := out.Emit(ctx, batch.Batch{Rec: rec}); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		sent += n
	}
	return nil
}
