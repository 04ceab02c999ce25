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

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/validate"
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
	// Shard is passed to every node's Resources (flowrun run --shard).
	Shard op.Shard
	// DrainTimeout bounds how long a stop waits for in-flight batches to be
	// written before aborting (default 15s).
	DrainTimeout time.Duration
	// FlushInterval is how often buffering sinks are flushed (default 1s).
	FlushInterval time.Duration
	// CloseTimeout bounds a node's Close after a failure or an abort, and
	// how long Run then waits for nodes to return (default 5s).
	CloseTimeout time.Duration
	// MemoryBytes is the pipeline-wide memory budget shared by the queues
	// and the operators (default op.DefaultMemoryBytes).
	MemoryBytes int64
	// Metrics receives the runtime's and the operators' measurements
	// (default op.NopMetrics).
	Metrics op.Metrics
	Vars    map[string]string
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
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 5 * time.Second
	}
	if o.MemoryBytes <= 0 {
		o.MemoryBytes = op.DefaultMemoryBytes
	}
	if o.Metrics == nil {
		o.Metrics = op.NopMetrics{}
	}
}

// Stats are one node's counters, updated while the pipeline runs.
type Stats struct {
	RowsIn      atomic.Int64
	RowsOut     atomic.Int64
	BatchesIn   atomic.Int64
	BytesIn     atomic.Int64
	Rejected    atomic.Int64
	Late        atomic.Int64 // records that missed their window (windows)
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
	late     *queue   // late sink's queue (windows), or nil
	deadNode string
	res      op.Resources
	metrics  nodeMetrics
	sinkDL   *sinkDeadLetters // a sink's op.DeadLetters, or nil
	running  atomic.Bool
	// sinks reachable from a source through data and dead-letter edges,
	// for op.ResumeFunc.
	reach []*Node
}

// Pipeline is a built, runnable pipeline.
type Pipeline struct {
	Name  string
	Nodes []*Node
	opts  Options
	mem   *op.Budget
	// hard is the running pipeline's abort context and soft the sources'
	// context (set by Run), for pushes made from goroutines operators own.
	hard, soft context.Context
	// recent keeps the last dead letters for the status page.
	recent recentDeadLetters
}

// Memory returns the pipeline-wide memory budget.
func (p *Pipeline) Memory() *op.Budget { return p.mem }

// New constructs every node of a checked pipeline (connecting nothing yet
// beyond what constructors do) and wires the queues between them.
func New(res *validate.Result, opts Options) (*Pipeline, error) {
	opts.defaults()
	p := &Pipeline{Name: res.Pipeline.Name, opts: opts, mem: op.NewBudget(opts.MemoryBytes)}
	byName := map[string]*Node{}
	for _, cn := range res.Nodes {
		ctor, ok := cn.Build.(op.Constructor)
		if !ok {
			return nil, fmt.Errorf("node %q: operator %q returned no constructor", cn.Name(), cn.AST.Type)
		}
		n := &Node{Name: cn.Name(), Section: cn.AST.Section, Type: cn.AST.Type, Stats: &Stats{}, checked: cn}
		m := op.WithLabels(opts.Metrics, op.Label{Name: "pipeline", Value: p.Name}, op.Label{Name: "node", Value: n.Name})
		n.metrics = newNodeMetrics(m, n.Type, opts.Clock)
		if cn.AST.Section == ast.Sinks {
			n.metrics.writeLatency = newWriteLatency(m, n.Type)
		}
		r := op.Resources{
			Node: cn.Name(), Alloc: opts.Alloc, Clock: opts.Clock,
			Log:       opts.Log.With("node", cn.Name()),
			BatchRows: opts.BatchRows, Once: opts.Once, Vars: opts.Vars, Shard: opts.Shard,
			Metrics: m, Memory: p.mem,
		}
		if cn.DeadLetter != nil && cn.AST.Section == ast.Sinks {
			n.sinkDL = &sinkDeadLetters{p: p, node: n}
			r.DeadLetters = n.sinkDL
		}
		if cn.AST.Section == ast.Sources {
			r.Resume = func(ctx context.Context, topic string, parts []int32) (map[int32]int64, error) {
				return p.resume(ctx, n, topic, parts)
			}
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
			n.in = newQueue(opts.QueueBatches, opts.QueueBytes, p.mem, newQueueGauges(m))
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
		if l := n.checked.Late; l != nil {
			n.late = byName[l.Name()].in
			n.late.addProducer()
		}
	}
	// A queue nobody feeds (a dead-letter sink no node uses) starts closed.
	for _, n := range p.Nodes {
		if n.in != nil && n.in.producers == 0 {
			n.in.addProducer()
			n.in.producerDone(false)
		}
	}
	for _, n := range p.Nodes {
		if n.Section == ast.Sources {
			n.reach = reachableSinks(n, byName)
		}
	}
	if err := checkStorePaths(p.Nodes); err != nil {
		p.close(context.Background())
		return nil, err
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
// batches drain through to the sinks, sinks flush, and Run returns nil; a
// stop is not an end of input, so transforms that hold state do not
// finalise it (op.Flusher). If draining takes longer than DrainTimeout, or
// any node fails, everything is aborted and Run returns the first error.
func (p *Pipeline) Run(ctx context.Context) error {
	hard, abort := context.WithCancelCause(context.Background())
	defer abort(nil)
	soft, stopSources := context.WithCancel(hard)
	defer stopSources()
	p.hard, p.soft = hard, soft

	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		abort(err)
	}
	for _, n := range p.Nodes {
		wg.Add(1)
		n.running.Store(true)
		go func() {
			defer wg.Done()
			defer n.running.Store(false)
			out := &output{node: n, p: p, ctx: hard, soft: soft}
			stopped, err := p.runNode(soft, hard, n, out)
			if err != nil {
				fail(err) // before Close, which may take until its deadline
			}
			if err := p.finishNode(hard, n, out, err, stopped); err != nil {
				fail(err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// After an abort, nodes get CloseTimeout to return; one whose Close
	// ignores its deadline is reported and left behind rather than hang
	// the process.
	waitAborted := func() {
		t := time.NewTimer(p.opts.CloseTimeout + time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			var stuck []string
			for _, n := range p.Nodes {
				if n.running.Load() {
					stuck = append(stuck, n.Name)
				}
			}
			p.opts.Log.Error("nodes did not stop after the abort", "nodes", stuck)
			fail(fmt.Errorf("nodes %q did not stop within %s of the abort", stuck, p.opts.CloseTimeout))
		}
	}
	select {
	case <-done:
	case <-hard.Done():
		waitAborted()
	case <-ctx.Done():
		p.opts.Log.Info("stopping: draining in-flight batches", "deadline", p.opts.DrainTimeout)
		stopSources()
		timer := time.NewTimer(p.opts.DrainTimeout)
		select {
		case <-done:
			timer.Stop()
		case <-hard.Done():
			timer.Stop()
			waitAborted()
		case <-timer.C:
			fail(fmt.Errorf("drain did not finish within %s; aborted", p.opts.DrainTimeout))
			waitAborted()
		}
	}
	for _, n := range p.Nodes {
		if n.in != nil {
			n.in.discard()
		}
	}
	errMu.Lock()
	defer errMu.Unlock()
	return firstErr
}

// close closes the nodes of a pipeline that never ran (New failed).
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
// stopped reports that the node ended on a graceful stop rather than at the
// end of its input.
func (p *Pipeline) runNode(soft, hard context.Context, n *Node, out *output) (stopped bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &NodeError{Node: n.Name, Err: fmt.Errorf("panic: %v\n%s", r, debug.Stack())}
		}
		if err != nil {
			n.Stats.Errors.Add(1)
			n.metrics.errors.Add(1)
		}
	}()
	switch inst := n.inst.(type) {
	case op.Source:
		err = inst.Run(soft, out)
		stopped = soft.Err() != nil
		if err != nil && stopped && hard.Err() == nil && errors.Is(err, context.Canceled) {
			err = nil // a requested stop, not a failure
		}
		if err == nil {
			err = out.flushRejects(hard, nil)
		}
	case op.Transform:
		stopped, err = p.runTransform(hard, n, inst, out)
	case op.Sink:
		err = p.runSink(hard, n, inst)
	}
	if err != nil && hard.Err() != nil && errors.Is(err, context.Canceled) {
		return stopped, nil // aborted because another node failed; that error is reported
	}
	if err != nil {
		var ne *NodeError
		if !errors.As(err, &ne) {
			err = &NodeError{Node: n.Name, Err: err}
		}
	}
	return stopped, err
}

// finishNode closes a node that is done (op.Closer, exactly once) and only
// then closes its outputs, so a sink's dead letters stay writable until its
// Close returns. It returns Close's error on the normal path.
func (p *Pipeline) finishNode(hard context.Context, n *Node, out *output, runErr error, stopped bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &NodeError{Node: n.Name, Err: fmt.Errorf("panic in Close: %v\n%s", r, debug.Stack())}
		}
		if sr, ok := n.inst.(op.StoredRows); ok {
			n.Stats.RowsOut.Store(sr.StoredRows())
		}
		if n.sinkDL != nil {
			n.sinkDL.close()
		}
		out.closeOutputs(stopped)
	}()
	out.release()
	if cerr := p.closeNode(hard, n, runErr); cerr != nil {
		return &NodeError{Node: n.Name, Err: fmt.Errorf("close: %w", cerr)}
	}
	return nil
}

// closeNode calls the node's Close once. After a failure or an abort it
// gets a fresh context with the CloseTimeout deadline; its error is then
// only logged (the run already fails).
func (p *Pipeline) closeNode(hard context.Context, n *Node, runErr error) error {
	c, ok := n.inst.(op.Closer)
	if !ok {
		return nil
	}
	if runErr == nil && hard.Err() == nil {
		return c.Close(hard)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.CloseTimeout)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		p.opts.Log.Warn("close failed", "node", n.Name, "err", err)
	}
	return nil
}

// runTransform feeds the node's input to t until the input ends; stopped
// reports that it ended on a graceful stop (then t is not flushed).
func (p *Pipeline) runTransform(ctx context.Context, n *Node, t op.Transform, out *output) (stopped bool, err error) {
	if timeAware(t) {
		return p.runTimed(ctx, n, t, out)
	}
	_, holds := t.(op.Flusher)
	for {
		it, ok, err := n.in.pop(ctx)
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		if it.ctl != nil { // a control message: passed on, in order (time.go)
			if err := out.EmitControl(ctx, *it.ctl); err != nil {
				return false, err
			}
			continue
		}
		b := it.b
		if b.Rec == nil { // a position marker
			n.in.release(it)
			if holds {
				b.Release(nil) // the held rows' merged ack carries the positions on
			} else if err := out.forward(ctx, b); err != nil {
				return false, err
			}
			continue
		}
		rows := int64(b.Rows())
		n.Stats.RowsIn.Add(rows)
		n.Stats.BatchesIn.Add(1)
		n.metrics.rowsIn.Add(float64(rows))
		n.metrics.batchesIn.Add(1)
		n.metrics.bytesIn.Add(float64(it.n))
		// Hold one reference to the input's ack so that dead letters of
		// this batch are written under it even if its rows are gone already.
		guard := b.Ack
		guard.Retain(1)
		start := time.Now()
		out.begin(b.Ack, b.Final)
		err = process(ctx, t, b, out)
		if err == nil {
			err = out.end(ctx)
		} else {
			out.drop(err)
		}
		n.Stats.BusyNanos.Add(int64(time.Since(start)))
		n.in.release(it)
		if err != nil {
			guard.Done(err)
			var pe *panicError
			if errors.As(err, &pe) {
				// Whatever references the panicking call held are lost:
				// finish the ack now so its source learns of the failure.
				b.Ack.Abandon(err)
			}
			return false, err
		}
		if err := out.flushRejects(ctx, guard); err != nil {
			return false, err
		}
	}
	if n.in.wasStopped() {
		return true, nil // a graceful stop: drained, not finalised
	}
	if f, ok := t.(op.Flusher); ok {
		out.begin(nil, true)
		err := f.Flush(ctx, out)
		if err == nil {
			err = out.end(ctx)
		} else {
			out.drop(err)
		}
		if err != nil {
			return false, err
		}
		return false, out.flushRejects(ctx, nil)
	}
	return false, nil
}

func (p *Pipeline) runSink(ctx context.Context, n *Node, s op.Sink) error {
	flusher, _ := s.(op.SinkFlusher)
	_, stores := s.(op.PositionStore)
	tick := time.NewTicker(p.opts.FlushInterval)
	defer tick.Stop()
	for {
		var (
			it  queued
			ok  bool
			err error
		)
		select {
		case it, ok = <-n.in.ch:
		case <-tick.C:
			if flusher != nil {
				if err := n.timedFlush(ctx, flusher); err != nil {
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
		if it.ctl != nil { // control messages end at sinks
			continue
		}
		b := it.b
		if b.Rec == nil && !stores { // a position marker, for position stores only
			n.in.release(it)
			b.Release(nil)
			continue
		}
		rows := int64(b.Rows())
		n.Stats.RowsIn.Add(rows)
		n.Stats.BatchesIn.Add(1)
		n.Stats.BytesIn.Add(it.n)
		n.metrics.rowsIn.Add(float64(rows))
		n.metrics.batchesIn.Add(1)
		n.metrics.bytesIn.Add(float64(it.n))
		start := time.Now()
		err = s.Write(ctx, b)
		took := time.Since(start)
		n.Stats.BusyNanos.Add(int64(took))
		n.metrics.writeLatency.Observe(took.Seconds())
		n.in.release(it)
		if err != nil {
			return err
		}
		n.Stats.RowsOut.Add(rows)
		n.metrics.rowsOut.Add(float64(rows))
	}
	if flusher != nil {
		if err := n.timedFlush(ctx, flusher); err != nil {
			return err
		}
	}
	return nil
}

// timedFlush flushes a sink, recording the call in its write latency.
func (n *Node) timedFlush(ctx context.Context, f op.SinkFlusher) error {
	start := time.Now()
	err := f.Flush(ctx)
	n.metrics.writeLatency.Observe(time.Since(start).Seconds())
	return err
}

// Progress is the node's op.Progress when its operator reports one (a
// bounded source that knows its input's size, e.g. lake).
func (n *Node) Progress() (op.Progress, bool) {
	if p, ok := n.inst.(op.Progresser); ok {
		return p.Progress(), true
	}
	return op.Progress{}, false
}
