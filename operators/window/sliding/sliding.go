// Package sliding is the "sliding" (hopping) window: overlapping windows of
// one size that start every "every", per key, on event or processing time.
package sliding

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
		Name:    "sliding",
		Summary: "Aggregate rows per key over overlapping windows that start at a fixed interval.",
		Doc: `Windows are [start, start+size) with start a multiple of every since the Unix
epoch (UTC); every must divide size, and each row counts in size/every
windows. Emission, late rows, bounded ends and stops work as for tumbling
windows: a window is emitted when the watermark passes its end, and a row
whose windows were partly emitted is counted in the open ones and sent to the
late output naming the ones it missed. See docs/windows.md.`,
		Example: `windows:
  trending:
    from: pins
    late: dead_letters
    sliding:
      size: 10m
      every: 1m
      key: [category]
      event_time: ingested_at
      aggregate: {posts: count()}`,
		Config: spec.Obj(append([]*spec.Field{
			spec.F("size", spec.Duration, "Window length, e.g. 10m.").Req(),
			spec.F("every", spec.Duration, "How often a window starts, e.g. 1m; must divide size.").Req(),
		}, win.Common()...)...),
	},
	Prepare: win.Prepare(win.Sliding),
}

func init() { op.MustRegister(Plugin) }
