// Package tumbling is the "tumbling" window: fixed, non-overlapping windows
// of one size, per key, on event time or processing time.
package tumbling

import (
	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/operators/window/internal/win"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Windows,
	Spec: spec.Spec{
		Name:    "tumbling",
		Summary: "Aggregate rows per key over fixed, non-overlapping windows of event time.",
		Doc: `Every row falls into exactly one window [start, start+size), start a multiple
of size since the Unix epoch (UTC). A window is emitted once the watermark
(the lowest, over the input's source partitions, of the highest event time
seen, minus allowed_lateness) passes its end: one row per key with the key
columns, window_start, window_end and the aggregates. Rows that arrive after
their window was emitted go to the node's late: output (else its
dead_letter:) with the window they missed. When a bounded input ends, every
open window is emitted; a graceful stop emits nothing and leaves the held
input uncommitted, to be replayed. See docs/windows.md.`,
		Example: `windows:
  category_counts:
    from: pins
    late: dead_letters
    tumbling:
      size: 1m
      key: [category]
      event_time: ingested_at
      allowed_lateness: 10s
      aggregate: {posts: count(), avg_followers: avg(follower_count)}`,
		Config: spec.Obj(append([]*spec.Field{
			spec.F("size", spec.Duration, "Window length, e.g. 1m.").Req(),
		}, win.Common()...)...),
	},
	Prepare: win.Prepare(win.Tumbling),
}

func init() { op.MustRegister(Plugin) }
