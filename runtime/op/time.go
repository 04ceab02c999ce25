package op

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/flowrun/flowrun/runtime/batch"
)

// This file is the time dimension of the operator SDK: why an input ends,
// timers on the injected Clock, control messages beside the batches
// (watermarks, revoked partitions), and the side output for late records.

// EndReason tells a stateful operator why its input is ending. The two are
// distinct on purpose: only EndOfInput makes held state final. (The third
// signal, a rebalance taking some partitions away, is per partition: a
// Control of kind Revoked, see ControlReceiver.)
type EndReason int

const (
	// EndOfInput: every input really ended (a file read to its end, a
	// topic read to its end offsets with --once). Held state is final:
	// emit it, acknowledging the inputs it covers.
	EndOfInput EndReason = iota + 1
	// Stop: a graceful stop (SIGINT/SIGTERM) was requested. Held state is
	// not final and must not be written as if it were: finish the held
	// acks with batch.ErrDropped so their source positions stay
	// uncommitted and are read again on restart, then drop the state.
	Stop
)

func (r EndReason) String() string {
	switch r {
	case EndOfInput:
		return "end of input"
	case Stop:
		return "stop"
	}
	return "unknown"
}

// Stateful is implemented by transforms that hold rows across batches
// (windows, unbounded aggregates). The runtime calls End once, from the
// node's goroutine: with Stop as soon as a graceful stop is requested (the
// batches still in flight after that are not passed to Process: the runtime
// finishes their acks with batch.ErrDropped), or with EndOfInput once every
// input ended on its own. A Stateful transform's Flush (if any) is not called.
type Stateful interface {
	End(ctx context.Context, reason EndReason, out Output) error
}

// Timed is implemented by transforms that act when time passes without
// input (a processing-time window closing, an idle partition releasing the
// watermark). After every call into the node the runtime asks NextTimer; when
// the node's Clock reaches that instant it calls OnTimer with the clock's
// time. Both run on the node's goroutine, never concurrently with Process.
type Timed interface {
	NextTimer() (at time.Time, ok bool)
	OnTimer(ctx context.Context, now time.Time, out Output) error
}

// LateOutput is implemented by the Output of a node with a `late:` output.
// Late writes one record that arrived after the window it belongs to was
// emitted, with the reason (naming the window it missed); like Reject it is
// written under the ack of the batch being processed. Without a `late:`
// output it falls back to the node's dead-letter output, and without either
// it returns an error (the run stops rather than drop the record).
type LateOutput interface {
	Late(record, reason string) error
}

// ControlKind says what a control message announces.
type ControlKind int

const (
	// Watermark: the source will send no more rows of Partition with an
	// event time before Time.
	Watermark ControlKind = iota + 1
	// Revoked: the source gave Partition up (a rebalance). Rows of it held
	// downstream and not yet acknowledged will be read again by its next
	// owner; a window drops them instead of finishing them.
	Revoked
)

// Control is a message that travels between nodes beside the batches, in
// order with them: a source emits it, transforms pass it on unchanged
// (so its partition keeps its identity through fan-out and fan-in: a node
// with several inputs sees each input's partitions apart), nodes that act
// on it implement ControlReceiver, and sinks ignore it.
type Control struct {
	Kind ControlKind
	// Partition names the source partition (Source, Topic, Partition;
	// the offsets are unused).
	Partition batch.Position
	Time      time.Time // Watermark
}

// ControlOutput is implemented by the runtime's Output: EmitControl sends
// c to every consumer, after the batches already emitted.
type ControlOutput interface {
	EmitControl(ctx context.Context, c Control) error
}

// InputEnder is implemented by the Output the runtime gives a source.
// EndInput tells every node downstream that this source's input has ended,
// exactly as when Run returns (windows and aggregates finalise, sinks
// commit what they hold), while Run goes on: a source that must wait for
// the acks of what it emitted before it can commit them (a --once Kafka
// run behind a sink that acknowledges only at the end of its input) would
// otherwise wait for acks that come only after it returns. After EndInput
// the source emits nothing more: Emit, Reject and EmitControl fail.
type InputEnder interface {
	EndInput(ctx context.Context) error
}

// ControlReceiver is implemented by transforms that act on control
// messages (windows); the runtime passes the others on for them.
type ControlReceiver interface {
	OnControl(ctx context.Context, c Control, out Output) error
}

// InputNamer is implemented by transforms that tell their inputs apart
// (a window keeps one watermark per input when batches carry no source
// positions, and waits for every input before its watermark moves). The
// runtime calls Inputs once with the names of the node's inputs (its
// from: list), before the first batch, and Input before each batch with
// the name of the node that sent it.
type InputNamer interface {
	Inputs(names []string)
	Input(from string)
}

// ManualClock is a Clock that moves only when told to, for tests: After
// returns a channel that fires when Advance passes its deadline, so tests
// of windows and timers never sleep for window time.
type ManualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewManualClock returns a clock reading start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the clock's time once it has been
// advanced by d (at once when d <= 0).
func (c *ManualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock forward by d and fires every timer due.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	sort.Slice(c.waiters, func(i, j int) bool { return c.waiters[i].at.Before(c.waiters[j].at) })
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(now) {
			w.ch <- now
			continue
		}
		keep = append(keep, w)
	}
	c.waiters = keep
	c.mu.Unlock()
}

// Waiters reports how many timers are pending, so a test can wait until a
// node has armed its timer before advancing the clock.
func (c *ManualClock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}
