// Package win is the engine the window operators (tumbling, sliding,
// session) share: their common configuration, event time and watermarks
// per input partition, window assignment, aggregate state, late records,
// state bounds and the acknowledgement of held inputs.
//
// State layout (sized for millions of groups without a per-group object):
// each distinct key gets an id from keyTable (one arena of encoded keys
// behind an open-addressing table, keys.go); each open (window, key)
// group is a slot, an index into the aggregates' storage — numeric
// aggregates row by row in one store (rows.go), the others in slices of
// their own (aggs.go); a tumbling or sliding window (unit) lists its
// slots and finds them by key id; a session is a slot with its bounds.
package win

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/op"
)

// Kind is the window shape.
type Kind int

// The window kinds.
const (
	Tumbling Kind = iota
	Sliding
	Session
)

func (k Kind) String() string { return [...]string{"tumbling", "sliding", "session"}[k] }

// Defaults of the state bounds.
const (
	DefaultMaxRows  = 1_000_000
	DefaultMaxBytes = 256 << 20
)

// Common are the configuration fields every window kind has, after its
// own (size, every, gap).
func Common() []*spec.Field {
	return []*spec.Field{
		spec.F("key", spec.StringList, "Columns to group by; one output row per key and window. Empty: one group."),
		spec.F("event_time", spec.Expr, "A timestamp column, or an expression giving a timestamp, e.g. to_timestamp(ts). Required unless processing_time is true."),
		spec.F("processing_time", spec.Bool, "Assign rows to windows by the clock when they arrive instead of by event time.").Def(false),
		spec.F("allowed_lateness", spec.Duration, "How far behind the highest event time seen in a partition a record may be and still count; the watermark is that highest time minus this.").Def(time.Duration(0)),
		spec.F("per_partition", spec.Bool, "Keep separate windows per source partition, each closed by that partition's own watermark, with a source_partition output column: results that do not depend on which process reads which partition, for several processes in one consumer group (see docs/windows.md).").Def(false),
		spec.F("idle_timeout", spec.Duration, "A source partition that delivers nothing for this long (on the clock) stops holding the watermark back.").Def(30 * time.Second),
		spec.F("aggregate", spec.StringMap, "Output column: aggregate call, e.g. posts: count(), avg_followers: avg(follower_count), p90: quantile(follower_count, 0.9).").Req(),
		spec.F("max_state_rows", spec.Int, "Most open (window, key) groups held; more stops the pipeline with an error.").Def(int64(DefaultMaxRows)),
		spec.F("max_state_bytes", spec.Size, "Most bytes of window state (aggregates, distinct sets, quantile values, keys); more stops the pipeline with an error.").Def(int64(DefaultMaxBytes)),
	}
}

// Config is a checked window node.
type Config struct {
	Kind             Kind
	Size, Every, Gap int64 // microseconds
	Keys             []int
	TimeCol          int // input column of the event time, -1 for an expression or processing time
	TimeExpr         *exprc.Program
	Processing       bool
	PerPartition     bool
	Lateness         int64 // microseconds
	Idle             time.Duration
	Aggs             []AggSpec
	MaxRows          int
	MaxBytes         int64
	In, Out          *arrow.Schema
}

// Prepare returns the Prepare function of a window kind's plugin.
func Prepare(kind Kind) func(c *validate.Check) (*arrow.Schema, op.Constructor) {
	return func(c *validate.Check) (*arrow.Schema, op.Constructor) {
		cfg, ok := check(kind, c)
		if !c.RequireWholeInput(fmt.Sprintf("a %s window needs every row of its keys and times", kind)) {
			ok = false
		}
		if !ok {
			return nil, nil
		}
		return cfg.Out, func(r op.Resources) (any, error) { return New(cfg, r), nil }
	}
}

func micros(d time.Duration) int64 { return d.Microseconds() }

func check(kind Kind, c *validate.Check) (*Config, bool) {
	in := c.In()
	if in == nil {
		return nil, false
	}
	v := c.Config
	cfg := &Config{Kind: kind, In: in, TimeCol: -1, Idle: v.Duration("idle_timeout"),
		Lateness: micros(v.Duration("allowed_lateness")), MaxRows: int(v.Int64("max_state_rows")), MaxBytes: v.Int64("max_state_bytes"),
		Processing: v.Boolean("processing_time"), PerPartition: v.Boolean("per_partition")}
	ok := true
	positive := func(name string) int64 {
		d := v.Duration(name)
		if d < time.Millisecond {
			c.Errorf(v.PosOf(name), "%s window: '%s' must be at least 1ms, got %s", kind, name, d)
			ok = false
		}
		return micros(d)
	}
	switch kind {
	case Tumbling:
		cfg.Size = positive("size")
	case Sliding:
		cfg.Size, cfg.Every = positive("size"), positive("every")
		if ok && (cfg.Size%cfg.Every != 0 || cfg.Every > cfg.Size) {
			e := c.Errorf(v.PosOf("every"), "sliding window: 'every' (%s) must divide 'size' (%s)", v.Duration("every"), v.Duration("size"))
			e.Hint = "e.g. size: 10m, every: 1m; a row belongs to size/every windows"
			ok = false
		}
	case Session:
		cfg.Gap = positive("gap")
	}
	if cfg.MaxRows <= 0 {
		c.Errorf(v.PosOf("max_state_rows"), "'max_state_rows' must be positive")
		ok = false
	}
	// Event time.
	et := v.Get("event_time")
	switch {
	case cfg.Processing && et != nil && et.Set:
		e := c.Errorf(et.Pos, "%s window: choose event_time or processing_time: true, not both", kind)
		e.Hint = "remove one of them"
		ok = false
	case cfg.Processing && cfg.PerPartition:
		c.Errorf(v.PosOf("per_partition"), "%s window: per_partition needs event time; with processing_time every process has its own clock", kind)
		ok = false
	case cfg.Processing:
		if lv := v.Get("allowed_lateness"); lv != nil && lv.Set {
			c.Errorf(lv.Pos, "%s window: allowed_lateness has no meaning with processing_time: nothing arrives late by the clock", kind)
			ok = false
		}
	case et == nil || !et.Set:
		e := c.Errorf(c.Node.TypePos, "%s window '%s' needs 'event_time:' (a timestamp column or expression) or 'processing_time: true'", kind, c.Node.Name)
		e.Hint = "e.g. event_time: ingested_at"
		ok = false
	default:
		if idx := in.FieldIndices(et.Expr.Src); len(idx) > 0 {
			t := in.Field(idx[0]).Type
			if t.ID() != arrow.TIMESTAMP {
				e := c.Errorf(et.Pos, "event_time: column '%s' is %s; it must be a timestamp", et.Expr.Src, types.Name(t))
				e.Hint = fmt.Sprintf("convert it, e.g. event_time: to_timestamp(%s), or cast the column first", et.Expr.Src)
				ok = false
			} else {
				cfg.TimeCol = idx[0]
			}
			break
		}
		prog, errs := exprc.Compile(et.Expr, in, exprc.WantType(types.Timestamp), exprc.Name("event_time"))
		c.Errs.Append(errs)
		if prog == nil {
			ok = false
		}
		cfg.TimeExpr = prog
	}
	// Keys.
	seen := map[string]source.Pos{}
	kv := v.Get("key")
	for _, k := range v.Strings("key") {
		idx := in.FieldIndices(k)
		if len(idx) == 0 {
			e := c.Errorf(kv.Pos, "key: unknown column '%s'", k)
			e.Hint = source.DidYouMean(k, fieldNames(in))
			ok = false
			continue
		}
		if kindOf(in.Field(idx[0]).Type) == kOther {
			c.Errorf(kv.Pos, "key: column '%s' is %s; keys must be numbers, strings, booleans or timestamps", k, types.Name(in.Field(idx[0]).Type))
			ok = false
			continue
		}
		cfg.Keys = append(cfg.Keys, idx[0])
		seen[k] = kv.Pos
	}
	// Aggregates.
	for _, e := range v.Get("aggregate").Entries {
		s, good := ParseAgg(e.Key, e.Value.Str, in, e.Value.Pos, c.Errs)
		if good {
			if _, dup := seen[e.Key]; dup || e.Key == "window_start" || e.Key == "window_end" || (cfg.PerPartition && e.Key == "source_partition") {
				c.Errorf(e.KeyPos, "aggregate '%s': the output already has a column '%s' (keys, source_partition, window_start and window_end come first)", e.Key, e.Key)
				good = false
			}
			seen[e.Key] = e.KeyPos
		}
		ok = ok && good
		cfg.Aggs = append(cfg.Aggs, s)
	}
	if !ok {
		return nil, false
	}
	fields := make([]arrow.Field, 0, len(cfg.Keys)+2+len(cfg.Aggs))
	for _, k := range cfg.Keys {
		f := in.Field(k)
		fields = append(fields, arrow.Field{Name: f.Name, Type: f.Type, Nullable: true})
	}
	if cfg.PerPartition {
		fields = append(fields, arrow.Field{Name: "source_partition", Type: arrow.BinaryTypes.String})
	}
	fields = append(fields,
		arrow.Field{Name: "window_start", Type: types.Timestamp},
		arrow.Field{Name: "window_end", Type: types.Timestamp})
	for _, s := range cfg.Aggs {
		fields = append(fields, arrow.Field{Name: s.Name, Type: s.Out, Nullable: true})
	}
	cfg.Out = arrow.NewSchema(fields, nil)
	return cfg, true
}
