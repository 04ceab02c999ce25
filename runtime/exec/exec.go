// Package exec runs a checked pipeline: one goroutine per node under a
// supervisor, joined by bounded queues, with fan-out, fan-in (union), dead
// letters, graceful drain with a deadline, and panics turned into errors.
// It knows operators only through the SDK in runtime/op, never a concrete one.
package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Options tune a run. Zero values take the defaults noted.
type Options struct {
	Alloc memory.Allocator // default memory.DefaultAllocator
	Clock op.Clock         // default op.SystemClock
	Log   *slog.Logger     // default slog.Default()
	// QueueBatches and QueueBytes bound every edge (defaults 8 and 32 MiB).
	QueueBatches int
	QueueBytes   int64
	BatchRows    int  // rows per source batch (default 1024)
	Once         bool // unbounded sources stop at the current end of input
	// DrainTimeout bounds how long a stop waits for in-flight batches to be
	// written before aborting (default 15s).
	DrainTimeout time.Duration
	// FlushInterval is how often buffering sinks are flushed (default 1s).
	FlushInterval time.Duration
	Vars          map[string]string
}

func (o *Options) defaults() {
	if o.Alloc == nil {
		o.Alloc = memory.DefaultAllocator
	}
	if o.Clock == nil {
		o.Clock = op.SystemClock{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.QueueBatches <= 0 {
		o.QueueBatches = 8
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 32 << 20
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 1024
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 15 * time.Second
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
}

// Stats are one node's counters, updated while the pipeline runs.
type Stats struct {
	RowsIn      atomic.Int64
	RowsOut     atomic.Int64
	BatchesIn   atomic.Int64
	BytesIn     atomic.Int64
	Rejected    atomic.Int64
	Errors      atomic.Int64
	BusyNanos   atomic.Int64 // time spent inside the operator
	QueueLength func() int   // current input queue depth, nil for sources
}

// Node is one running node.
type Node struct {
	Name    string
	Section ast.Section
	Type    string
	Stats   *Stats

	checked  *validate.Node
	inst     any
	in       *queue   // nil for sources
	outs     []*queue // consumers' queues
	dead     *queue   // dead-letter sink's queue, or nil
	deadNode string
	res      op.Resources
}

// Pipeline is a built, runnable pipeline.
type Pipeline struct {
	Name  string
	Nodes []*Node
	opts  Options
	// hard is the running pipeline's abort context (set by Run), for
	// pushes made from goroutines that operators own.
	hard context.Context
}

// New constructs every node of a checked pipeline (connecting nothing yet
// beyond what constructors do) and wires the queues between them.
func New(res *validate.Result, opts Options) (*Pipeline, error) {
	opts.defaults()
	p := &Pipeline{Name: res.Pipeline.Name, opts: opts}
	byName := map[string]*Node{}
	for _, cn := range res.Nodes {
		ctor, ok := cn.Build.(op.Constructor)
		if !ok {
			return nil, fmt.Errorf("node %q: operator %q returned no constructor", cn.Name(), cn.AST.Type)
		}
		n := &Node{Name: cn.Name(), Section: cn.AST.Section, Type: cn.AST.Type, Stats: &Stats{}, checked: cn}
		r := op.Resources{
			Node: cn.Name(), Alloc: opts.Alloc, Clock: opts.Clock,
			Log:       opts.Log.With("node", cn.Name()),
			BatchRows: opts.BatchRows, Once: opts.Once, Vars: opts.Vars,
		}
		if cn.DeadLetter != nil && cn.AST.Section == ast.Sinks {
			r.DeadLetters = &sinkDeadLetters{p: p, node: n}
		}
		inst, err := ctor(r)
		if err != nil {
			p.close(context.Background())
			return nil, fmt.Errorf("node %q (%s): %w", cn.Name(), cn.AST.Type, err)
		}
		if err := checkKind(cn.AST.Section, inst); err != nil {
			p.close(context.Background())
			return nil, fmt.Errorf("node %q (%s): %w", cn.Name(), cn.AST.Type, err)
		}
		n.inst, n.res = inst, r
		if cn.AST.Section != ast.Sources {
			n.in = newQueue(opts.QueueBatches, opts.QueueBytes)
			q := n.in
			n.Stats.QueueLength = func() int { return len(q.ch) }
		}
		byName[n.Name] = n
		p.Nodes = append(p.Nodes, n)
	}
	for _, n := range p.Nodes {
		for _, c := range n.checked.Consumers {
			q := byName[c.Name()].in
			q.addProducer()
			n.outs = append(n.outs, q)
		}
		if dl := n.checked.DeadLetter; dl != nil {
			n.dead = byName[dl.Name()].in
			n.deadNode = dl.Name()
			n.dead.addProducer()
		}
	}
	// A queue nobody feeds (a dead-letter sink no node uses) starts closed.
	for _, n := range p.Nodes {
		if n.in != nil && n.in.producers == 0 {
			n.in.addProducer()
			n.in.producerDone()
		}
	}
	return p, nil
}

func checkKind(s ast.Section, inst any) error {
	var ok bool
	switch s {
	case ast.Sources:
		_, ok = inst.(op.Source)
	case ast.Transforms, ast.Windows:
		_, ok = inst.(op.Transform)
	case ast.Sinks:
		_, ok = inst.(op.Sink)
	}
	if !ok {
		return fmt.Errorf("operator does not implement a %s", s.Singular())
	}
	return nil
}

// NodeError is a failure inside one node.
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string { return fmt.Sprintf("node %q: %v", e.Node, e.Err) }
func (e *NodeError) Unwrap() error { return e.Err }

// RejectError is returned by Output.Reject when a node has no dead-letter
// output: the run stops rather than drop the record.
type RejectError struct {
	Record, Reason string
}

func (e *RejectError) Error() string {
	rec := e.Record
	if len(rec) > 300 {
		rec = rec[:300] + "…"
	}
	return fmt.Sprintf("record rejected (%s) and the node has no dead_letter output to keep it: %s", e.Reason, rec)
}

// Run executes the pipeline until every source ends (bounded input) or ctx
// is cancelled. Cancelling ctx is a graceful stop: sources stop, in-flight
// batches drain through to the sinks, sinks flush, and Run returns nil. If
// draining takes longer than DrainTimeout, or any node fails, everything is
// aborted and Run returns the first error.
func (p *Pipeline) Run(ctx context.Context) error {
	hard, abort := context.WithCancelCause(context.Background())
	defer abort(nil)
	p.hard = hard
	soft, stopSources := context.WithCancel(hard)
	defer stopSources()

	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		abort(err)
	}
	for _, n := range p.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.runNode(soft, hard, n); err != nil {
				fail(err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	select {
	case <-done:
	case <-ctx.Done():
		p.opts.Log.Info("stopping: draining in-flight batches", "deadline", p.opts.DrainTimeout)
		stopSources()
		timer := time.NewTimer(p.opts.DrainTimeout)
		select {
		case <-done:
			timer.Stop()
		case <-hard.Done():
			timer.Stop()
			<-done
		case <-timer.C:
			fail(fmt.Errorf("drain did not finish within %s; aborted", p.opts.DrainTimeout))
			<-done
		}
	}
	for _, n := range p.Nodes {
		if n.in != nil {
			n.in.discard()
		}
	}
	p.close(context.Background())
	return firstErr
}

func (p *Pipeline) close(ctx context.Context) {
	for _, n := range p.Nodes {
		if c, ok := n.inst.(op.Closer); ok {
			if err := c.Close(ctx); err != nil {
				p.opts.Log.Warn("close failed", "node", n.Name, "err", err)
			}
		}
	}
}

// runNode runs one node to completion; soft ends sources, hard aborts all.
func (p *Pipeline) runNode(soft, hard context.Context, n *Node) (err error) {
	out := &output{node: n, p: p, ctx: hard}
	defer func() {
		if r := recover(); r != nil {
			err = &NodeError{Node: n.Name, Err: fmt.Errorf("panic: %v\n%s", r, debug.Stack())}
		}
		out.release()
		for _, q := range n.outs {
			q.producerDone()
		}
		if n.dead != nil {
			n.dead.producerDone()
		}
		if err != nil {
			n.Stats.Errors.Add(1)
		}
	}()
	switch inst := n.inst.(type) {
	case op.Source:
		err = inst.Run(soft, out)
		if err != nil && soft.Err() != nil && hard.Err() == nil && errors.Is(err, context.Canceled) {
			err = nil // a requested stop, not a failure
		}
		if err == nil {
			err = out.flushRejects(hard, nil)
		}
	case op.Transform:
		err = p.runTransform(hard, n, inst, out)
	case op.Sink:
		err = p.runSink(hard, n, inst)
	}
	if err != nil && hard.Err() != nil && errors.Is(err, context.Canceled) {
		return nil // aborted because another node failed; that error is reported
	}
	if err != nil {
		var ne *NodeError
		if !errors.As(err, &ne) {
			err = &NodeError{Node: n.Name, Err: err}
		}
	}
	return err
}

func (p *Pipeline) runTransform(ctx context.Context, n *Node, t op.Transform, out *output) error {
	for {
		b, ok, err := n.in.pop(ctx)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		n.Stats.RowsIn.Add(int64(b.Rows()))
		n.Stats.BatchesIn.Add(1)
		// Hold one reference to the input's ack so that dead letters of
		// this batch are written under it even if its rows are gone already.
		guard := b.Ack
		guard.Retain(1)
		start := time.Now()
		err = process(ctx, t, b, out)
		n.Stats.BusyNanos.Add(int64(time.Since(start)))
		if err != nil {
			guard.Done(err)
			return err
		}
		if err := out.flushRejects(ctx, guard); err != nil {
			return err
		}
	}
	if f, ok := t.(op.Flusher); ok {
		if err := f.Flush(ctx, out); err != nil {
			return err
		}
		return out.flushRejects(ctx, nil)
	}
	return nil
}

func (p *Pipeline) runSink(ctx context.Context, n *Node, s op.Sink) error {
	flusher, _ := s.(op.SinkFlusher)
	tick := time.NewTicker(p.opts.FlushInterval)
	defer tick.Stop()
	for {
		var (
			b   batch.Batch
			ok  bool
			err error
		)
		select {
		case it, open := <-n.in.ch:
			if open {
				n.in.bytes.Release(it.n)
				b, ok = it.b, true
			}
		case <-tick.C:
			if flusher != nil {
				if err := flusher.Flush(ctx); err != nil {
					return err
				}
			}
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			break
		}
		n.Stats.RowsIn.Add(int64(b.Rows()))
		n.Stats.BatchesIn.Add(1)
		n.Stats.BytesIn.Add(b.Bytes())
		start := time.Now()
		err = s.Write(ctx, b)
		n.Stats.BusyNanos.Add(int64(time.Since(start)))
		if err != nil {
			return err
		}
		n.Stats.RowsOut.Add(int64(b.Rows()))
	}
	if flusher != nil {
		if err := flusher.Flush(ctx); err != nil {
			return err
		}
	}
	if c, ok := s.(op.Closer); ok {
		return c.Close(ctx)
	}
	return nil
}

// output is the op.Output a node writes to.
type output struct {
	node *Node
	p    *Pipeline
	ctx  context.Context // aborts pushes when the run is aborted

	dlb   *array.RecordBuilder // pending dead letters
	dlRow int
}

func (o *output) Schema() *arrow.Schema { return o.node.checked.Output }

func (o *output) Emit(ctx context.Context, b batch.Batch) error {
	rows := b.Rows()
	if o.dlRow > 0 {
		// Dead letters found while building this batch commit with it.
		b.Ack.Retain(1)
		if err := o.flushRejects(ctx, b.Ack); err != nil {
			b.Release(err)
			return err
		}
	}
	if rows == 0 {
		b.Release(nil)
		return nil
	}
	o.node.Stats.RowsOut.Add(int64(rows))
	if o.node.Section == ast.Sources {
		o.node.Stats.RowsIn.Add(int64(rows))
		o.node.Stats.BatchesIn.Add(1)
	}
	return o.fanOut(ctx, o.node.outs, b)
}

func (o *output) fanOut(ctx context.Context, qs []*queue, b batch.Batch) error {
	if len(qs) == 0 {
		b.Release(nil)
		return nil
	}
	// Take every consumer's reference before the first push: a fast
	// consumer could otherwise finish the ack before the others hold it.
	for range qs[1:] {
		b.Rec.Retain()
	}
	b.Ack.Retain(len(qs) - 1)
	for i, q := range qs {
		// Push under the run's hard context even for a source that is being
		// stopped: a batch already read is delivered during the drain rather
		// than dropped and replayed.
		if err := q.push(o.ctx, b); err != nil {
			for range qs[i:] {
				b.Release(batch.ErrDropped)
			}
			return err
		}
	}
	return nil
}

func (o *output) Reject(record, reason string) error {
	o.node.Stats.Rejected.Add(1)
	if o.node.dead == nil {
		return &RejectError{Record: record, Reason: reason}
	}
	if o.dlb == nil {
		o.dlb = array.NewRecordBuilder(o.p.opts.Alloc, types.DeadLetterSchema)
	}
	o.dlb.Field(0).(*array.StringBuilder).Append(record)
	o.dlb.Field(1).(*array.StringBuilder).Append(o.node.Name)
	o.dlb.Field(2).(*array.StringBuilder).Append(reason)
	o.dlb.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(o.p.opts.Clock.Now().UnixMicro()))
	o.dlRow++
	return nil
}

// flushRejects sends pending dead letters under ack (which it consumes).
func (o *output) flushRejects(ctx context.Context, ack *batch.Ack) error {
	if o.dlRow == 0 {
		ack.Done(nil)
		return nil
	}
	rec := o.dlb.NewRecordBatch()
	o.dlRow = 0
	return o.fanOut(ctx, []*queue{o.node.dead}, batch.Batch{Rec: rec, Ack: ack})
}

func (o *output) release() {
	if o.dlb != nil {
		o.dlb.Release()
		o.dlb = nil
	}
}

// process calls t.Process, turning a panic into an error so the caller can
// still fail the batch's ack.
func process(ctx context.Context, t op.Transform, b batch.Batch, out op.Output) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return t.Process(ctx, b, out)
}

// sinkDeadLetters is op.DeadLetters for a sink with a dead_letter output.
type sinkDeadLetters struct {
	p    *Pipeline
	node *Node
}

func (d *sinkDeadLetters) Reject(ack *batch.Ack, record, reason string) error {
	d.node.Stats.Rejected.Add(1)
	b := array.NewRecordBuilder(d.p.opts.Alloc, types.DeadLetterSchema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append(record)
	b.Field(1).(*array.StringBuilder).Append(d.node.Name)
	b.Field(2).(*array.StringBuilder).Append(reason)
	b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(d.p.opts.Clock.Now().UnixMicro()))
	bt := batch.Batch{Rec: b.NewRecordBatch(), Ack: ack}
	if err := d.node.dead.push(d.p.hard, bt); err != nil {
		bt.Release(err)
		return err
	}
	return nil
}
