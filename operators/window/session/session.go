// Package session is the "session" window: per key, rows closer than a gap
// in event time form one window, which closes after a gap without rows.
package session

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
		Name:    "session",
		Summary: "Aggregate rows per key over sessions: bursts of activity separated by a gap.",
		Doc: `A row at time t opens the window [t, t+gap); rows of the same key whose
windows touch or overlap merge into one session [first, last+gap). A session
is emitted once the watermark passes its end. A row is late when it would
open a new session that has already ended by the watermark (it would have
been merged into a session that is already written); it goes to the late
output. See docs/windows.md.`,
		Example: `windows:
  visits:
    from: events
    late: dead_letters
    session:
      gap: 30m
      key: [user_id]
      event_time: ts
      aggregate: {events: count(), first_page: first(page)}`,
		Config: spec.Obj(append([]*spec.Field{
			spec.F("gap", spec.Duration, "Inactivity that ends a session, e.g. 30m.").Req(),
		}, win.Common()...)...),
	},
	Prepare: win.Prepare(win.Session),
}

func init() { op.MustRegister(Plugin) }
