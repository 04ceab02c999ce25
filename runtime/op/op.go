// Package op is the operator SDK: the Source, Transform and Sink interfaces a
// node implements, the resources the runtime hands it (allocator, clock,
// logger, metrics, memory budget, resume positions), the PositionStore
// contract of exactly-once sinks, and the registry that operators join from
// their init functions.
// Built-in operators use exactly this API, as a third-party one would.
package op

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/batch"
)

// Resources are what the runtime gives a node when it is built.
type Resources struct {
	Node  string // the node's name, for errors and logs
	Alloc memory.Allocator
	Clock Clock
	Log   *slog.Logger
	// BatchRows is the preferred number of rows per batch a source emits.
	BatchRows int
	// Once asks unbounded sources to stop at the input's current end (batch mode).
	Once bool
	// Vars are the pipeline's resolved variables.
	Vars map[string]string
	// DeadLetters takes records a sink could not store (a message Kafka
	// refused, a row the database rejected). It is nil when the node has
	// no dead_letter output: the sink must then fail instead.
	DeadLetters DeadLetters
	// Resume (sources) tells where sinks that store positions want this
	// source to resume; see ResumeFunc. Call it on every partition
	// assignment. Nil means no sink stores positions.
	Resume ResumeFunc
	// Metrics records the node's measurements, already labelled with the
	// pipeline and node. Never nil when built by the runtime (NopMetrics
	// by default); code that builds Resources by hand may leave it nil and
	// should use MetricsOrNop.
	Metrics Metrics
	// Memory is the pipeline-wide memory budget, shared with the queues.
	// A batch handed to Process or Write is charged until that call
	// returns; charge what the node keeps beyond that (batches a sink
	// buffers until Flush, rows a window holds, request bodies in flight)
	// and release it when done. Nil means unlimited (tests); the methods of
	// a nil *Budget do nothing.
	Memory *Budget
	// Shard is this process's share of a bounded input (flowrun run
	// --shard I/N); sources that read lists of files keep only the files
	// Shard.Owns. The zero value reads everything.
	Shard Shard
}

// MetricsOrNop returns r.Metrics, or NopMetrics when it is nil.
func (r Resources) MetricsOrNop() Metrics {
	if r.Metrics == nil {
		return NopMetrics{}
	}
	return r.Metrics
}

// DeadLetters is a sink's way to its dead-letter output. Reject writes one
// record under ack, consuming one reference the caller retained for it, so
// the source position is committed only once the dead letter is stored. It
// may be called from any goroutine the sink owns, until the sink's Close
// returns; later calls fail (the reference is released with the error).
type DeadLetters interface {
	Reject(ack *batch.Ack, record, reason string) error
}

// Output receives what a node produces. Emit passes on one reference to the
// batch (record and ack); it blocks while the consumers' queues are full
// (backpressure) and returns ctx's error if ctx ends first (the batch is
// then released with batch.ErrDropped). A graceful stop does not interrupt a
// source's Emit: a batch already read is delivered during the drain. Emit
// sets b.Final itself; operators leave it alone. A transform that emits
// several batches under one ack emits them consecutively. Reject queues one
// bad record for the node's dead-letter output; the runtime writes queued
// rejects under the ack of the batch being processed (for sources: the next
// emitted batch), so a source position is not committed before its dead
// letters are stored. Reject returns an error when the node has no
// dead-letter output: the node should return it and the pipeline stops
// rather than drop data.
type Output interface {
	Schema() *arrow.Schema
	Emit(ctx context.Context, b batch.Batch) error
	Reject(record, reason string) error
}

// Source produces batches. It gives each batch its own batch.Ack (with the
// positions it covers, batch.Ack.WithPositions) and commits a position once
// its ack succeeded. Run returns nil when a bounded input is drained — the
// end of input, which lets downstream nodes finalise their state (Flusher).
// When ctx ends it returns promptly (nil or ctx's error): that is a graceful
// stop, not an end of input, and nothing downstream finalises. Partition
// revocation (rebalance) is the source's own business: it stops emitting
// for the revoked partitions and forgets their uncommitted acks.
type Source interface {
	Run(ctx context.Context, out Output) error
}

// Transform turns input batches into output batches. Process owns in: it must
// emit or release in.Rec, and pass in.Ack on with what it emits or call
// in.Ack.Done when nothing is emitted. It may emit several batches for one
// input; the runtime marks the last one Final. Position markers (batches
// with Rec == nil, see batch.Batch) never reach Process: the runtime
// forwards them past stateless transforms and drops them at a Flusher, whose
// later output carries the positions through batch.Merge.
type Transform interface {
	Process(ctx context.Context, in batch.Batch, out Output) error
}

// Flusher is implemented by transforms that hold rows (windows, aggregates,
// dedupe state): Flush runs once when every input has really ended (bounded
// input drained), to finalise and emit that state. It never runs on a
// graceful stop or an abort: the state is then dropped without finalising,
// and Close must release what the node holds, failing held acks with
// batch.ErrDropped so their input is read again on the next run.
type Flusher interface {
	Flush(ctx context.Context, out Output) error
}

// Sink writes batches somewhere. Write owns b in every case and calls
// b.Ack.Done once the rows are durably stored (it may buffer and ack later,
// on Flush or Close); when it fails it still releases b, with the error,
// and returns the error, which stops the run. A sink that is a
// PositionStore also receives position markers (Rec == nil); other sinks
// never do.
type Sink interface {
	Write(ctx context.Context, b batch.Batch) error
}

// SinkFlusher is implemented by sinks that buffer; the runtime calls Flush
// periodically and at the end of input. A failed Flush fails the acks of the
// batches it was storing with its error, and returns it.
type SinkFlusher interface {
	Flush(ctx context.Context) error
}

// Closer releases a node's resources. The runtime calls Close exactly once
// per node, from the node's goroutine once it is done (a source after Run
// returns, a transform or sink after its input ended or it failed), and
// before the node's outputs close: a sink may Reject dead letters until
// Close returns. After a failure or an abort, ctx carries a deadline
// (Options.CloseTimeout): give up waiting (retries, flushes) when it ends,
// failing what is still held. It should still be safe to call twice.
type Closer interface {
	Close(ctx context.Context) error
}

// Constructor builds a node instance (a Source, Transform or Sink).
type Constructor func(r Resources) (any, error)

// Plugin is one registered operator.
type Plugin struct {
	Spec    spec.Spec
	Section ast.Section
	// Prepare checks the decoded config against the input schemas, reporting
	// problems through c, and returns the output schema (nil for sinks) and a
	// constructor. It must not connect anywhere: validation calls it.
	Prepare func(c *validate.Check) (*arrow.Schema, Constructor)
	// Flow, for sources, tells validation whether the input is unbounded
	// and whether the source commits what sinks acknowledged (see
	// validate.Flow); nil means a bounded input that commits nothing.
	Flow func(cfg *spec.Value, once bool) validate.Flow
}

// SourceFlow implements validate.FlowOperator.
func (p *Plugin) SourceFlow(cfg *spec.Value, once bool) validate.Flow {
	if p.Flow == nil || cfg == nil {
		return validate.Flow{}
	}
	return p.Flow(cfg, once)
}

// OperatorSpec implements validate.Operator.
func (p *Plugin) OperatorSpec() *spec.Spec { return &p.Spec }

// OperatorSection implements validate.Operator.
func (p *Plugin) OperatorSection() ast.Section { return p.Section }

// Check implements validate.Operator.
func (p *Plugin) Check(c *validate.Check) (*arrow.Schema, any) {
	s, ctor := p.Prepare(c)
	return s, ctor
}

// Registry holds plugins by section and name.
type Registry struct {
	mu      sync.RWMutex
	plugins map[ast.Section]map[string]*Plugin
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{plugins: map[ast.Section]map[string]*Plugin{}}
}

// Default is the registry built-in operators join from their init functions
// and the CLI reads.
var Default = NewRegistry()

// Register adds p, failing on a duplicate name within its section.
func (r *Registry) Register(p *Plugin) error {
	if p.Spec.Name == "" || p.Prepare == nil || p.Spec.Config == nil {
		return errors.New("op: plugin needs a name, a config spec and Prepare")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.plugins[p.Section]
	if m == nil {
		m = map[string]*Plugin{}
		r.plugins[p.Section] = m
	}
	if _, dup := m[p.Spec.Name]; dup {
		return fmt.Errorf("op: %s %q registered twice", p.Section.Singular(), p.Spec.Name)
	}
	m[p.Spec.Name] = p
	return nil
}

// MustRegister registers p in Default and panics on error; for init functions.
func MustRegister(p *Plugin) {
	if err := Default.Register(p); err != nil {
		panic(err)
	}
}

// Lookup implements validate.Catalog.
func (r *Registry) Lookup(section ast.Section, name string) (validate.Operator, bool) {
	p := r.Plugin(section, name)
	return p, p != nil
}

// Plugin returns the named plugin or nil.
func (r *Registry) Plugin(section ast.Section, name string) *Plugin {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.plugins[section][name]
}

// Names implements validate.Catalog.
func (r *Registry) Names(section ast.Section) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var names []string
	for n := range r.plugins[section] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Plugins lists every plugin of a section sorted by name, for docs and schema.
func (r *Registry) Plugins(section ast.Section) []*Plugin {
	var out []*Plugin
	for _, n := range r.Names(section) {
		out = append(out, r.Plugin(section, n))
	}
	return out
}

// Clock is the time source nodes use, so tests can simulate time.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }

// After waits for d on the wall clock.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// PermanentError is implemented by errors that running the same input
// again would repeat (the data exceeds a configured bound, the pipeline is
// not valid): a scheduler records the run as failed for good instead of
// retrying it after a back-off.
type PermanentError interface {
	error
	Permanent() bool
}

// IsPermanent reports whether err (or an error it wraps) is permanent.
func IsPermanent(err error) bool {
	var p PermanentError
	return errors.As(err, &p) && p.Permanent()
}
