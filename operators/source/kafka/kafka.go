// Package kafka is the "kafka" source: it reads one or more Kafka topics as
// a member of a consumer group (github.com/IBM/sarama, wrapped by
// operators/kafkaclient), decodes each message (JSON against a declared
// schema, or raw text) into Arrow record batches, and commits a partition's
// offset only once every batch up to it has been acknowledged by the sinks:
// at-least-once delivery with no avoidable duplicates.
//
// Batching: a batch holds messages of one partition only, gathered until
// the node's batch size (Resources.BatchRows) or the linger time (100ms) is
// reached, then emitted with an ack that carries the partition's offset
// range as a batch.Position, so a sink can store it with the rows
// (op.PositionStore). Acks may complete out of order; per partition the
// committed offset is the end of the longest run of acknowledged batches.
// A failed ack stops the source with an error (its messages are read again
// after a restart). When the group rebalances, a partition being given up
// stops reading, waits (up to drain_timeout) for its in-flight batches,
// commits, and only then is released. On start and on every assignment the
// source asks Resources.Resume where sinks that store positions want each
// partition resumed and seeks there (see handler.Setup).
//
// Bounded: at most max_in_flight batches, and max_in_flight_bytes of them,
// are emitted but not yet committable (acknowledged, with every earlier
// batch of their partition); a claim that would exceed the bound waits for
// acknowledgements before it emits (and so before it reads on), so a sink
// that holds acknowledgements holds back the source instead of letting it
// grow without bound.
//
// At most GOMAXPROCS-1 claims (at least one) decode at a time, so that the
// client's fetch loop always finds a free processor.
//
// Undecodable messages go to the node's dead_letter output as
// "topic/partition@offset: reason"; the dead letter travels under the ack
// of the batch holding the message's offset, so the offset is committed only
// after the dead letter is stored. Null-valued messages (tombstones) are
// skipped in json format.
//
// Records are read with isolation read_committed by default: records of
// aborted transactions are skipped and reading stops before a transaction
// still open.
//
// In --once mode (Resources.Once) the source reads the end offset of every
// partition at start (the last stable offset with read_committed), stops
// each partition when it reaches it, commits, and ends when all partitions
// are done. Transaction markers take offsets but are never delivered, so a
// partition whose next offset is below its end and that has received
// nothing for a while asks the broker whether any deliverable record is
// left before the end (kafkaclient.HasData); if only markers are, it is
// done and commits the end offset. This assumes the process is the group's
// only member.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/codec/jsondec"
	"github.com/flowrun/flowrun/operators/codec/jsonenc"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Metadata column names, appended when `metadata: true`.
const (
	ColKey       = "_key"
	ColPartition = "_partition"
	ColOffset    = "_offset"
	ColTimestamp = "_timestamp"
	ColHeaders   = "_headers"
	// ColValue is the single column of format raw.
	ColValue = "value"
)

// MetadataFields are the columns `metadata: true` appends.
var MetadataFields = []arrow.Field{
	{Name: ColKey, Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: ColPartition, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: ColOffset, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: ColTimestamp, Type: types.Timestamp, Nullable: true},
	{Name: ColHeaders, Type: arrow.BinaryTypes.String, Nullable: true},
}

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sources,
	Spec: spec.Spec{
		Name:    "kafka",
		Summary: "Read Kafka topics as a consumer group, committing offsets after the sinks acknowledge.",
		Doc: `Reads one or more topics as a member of consumer group 'group'. Each
message is decoded as one JSON object against 'schema' (format json) or kept
as text in a single 'value' column (format raw). Offsets are committed only
after every batch up to them has been written by all sinks, so a crash or a
restart re-reads at most the batches in flight (at-least-once).

'brokers: embedded' uses an in-process Kafka broker shared by every node of
the process (no server needed; data is kept in memory). Setting
FLOWRUN_EMBEDDED_KAFKA_ADDR=127.0.0.1:19092 makes it listen on that port so
other flowrun processes can share it.

Where a partition starts when the group has no committed offset is set by
'start'. Without 'group' nothing is committed and every run starts at 'start'.

'metadata: true' appends the columns _key (string), _partition (int64),
_offset (int64), _timestamp (timestamp) and _headers (string: a JSON object
of the message headers, null when there are none).

Each batch holds messages of one partition and carries its offset range, so
sinks that store positions with their rows (postgres) get exactly-once
output: on start and on every rebalance the source resumes each partition
from the positions those sinks stored, and still commits offsets to Kafka.
At most 'max_in_flight' batches (and 'max_in_flight_bytes') are read but not
yet committable; beyond that reading waits for the sinks.

Undecodable messages go to the node's dead_letter output with the reason
"topic/partition@offset: ...". With --once the source stops at the end of
each partition as it was when the run started (also when the partition ends
with transaction markers); once every partition has sent its last batch the
source ends its input, so nodes that acknowledge only at the end of their
input (aggregate, windows, open lake files) finish and every offset read is
committed before the run ends.`,
		Example: `sources:
  posts:
    kafka:
      brokers: [localhost:9092]
      topic: pinterest.posts
      group: flowrun-clean
      schema: pin
    dead_letter: bad`,
		Config: spec.Obj(
			spec.F("brokers", spec.StringList, "Bootstrap brokers as host:port, or embedded for the in-process broker.").Req().Ex("[localhost:9092]"),
			spec.F("topic", spec.String, "Topic to read (or use 'topics')."),
			spec.F("topics", spec.StringList, "Topics to read, all with the same schema."),
			spec.F("group", spec.String, "Consumer group id; offsets are committed for it. Without a group nothing is committed."),
			spec.F("start", spec.Enum, "Where to start a partition the group has no committed offset for.").OneOf("earliest", "latest").Def("earliest"),
			spec.F("format", spec.Enum, "Message format: json (one object per message, decoded against 'schema') or raw (a 'value' string column).").OneOf("json", "raw").Def("json"),
			spec.F("schema", spec.SchemaRef, "Schema of the JSON messages (required for format json)."),
			spec.F("metadata", spec.Bool, "Append _key, _partition, _offset, _timestamp and _headers columns.").Def(false),
			spec.F("linger", spec.Duration, "Longest time a partial batch waits for more messages.").Def(100*time.Millisecond),
			spec.F("isolation", spec.Enum, "read_committed skips records of aborted transactions and does not read past an open one; read_uncommitted reads every record.").OneOf("read_committed", "read_uncommitted").Def("read_committed"),
			spec.F("max_in_flight", spec.Int, "Most batches emitted but not yet committable (acknowledged with every earlier batch of their partition) before reading waits.").Def(int64(1024)),
			spec.F("max_in_flight_bytes", spec.Size, "Most bytes of such batches (Arrow buffers) before reading waits; one batch is always let through.").Def(int64(256<<20)),
			spec.F("drain_timeout", spec.Duration, "How long a stopping or rebalanced partition waits for its in-flight batches to be acknowledged before giving up its uncommitted offsets (they are read again later).").Def(10*time.Second),
		),
	},
	Prepare: prepare,
	Flow: func(cfg *spec.Value, once bool) validate.Flow {
		f := validate.Flow{Unbounded: !once}
		if strings.TrimSpace(cfg.String("group")) != "" {
			f.Commits = "offsets would never commit"
		}
		return f
	},
}

func init() { op.MustRegister(Plugin) }

// Config is a kafka source's settings.
type Config struct {
	Brokers  []string
	Topics   []string
	Group    string
	Start    string // earliest or latest
	Format   string // json or raw
	Schema   *arrow.Schema
	Metadata bool
	Linger   time.Duration
	Drain    time.Duration
	// Isolation is read_committed (default) or read_uncommitted.
	Isolation string
	// MaxInFlight and MaxInFlightBytes bound the batches emitted but not
	// yet committable (defaults 1024 and 256 MiB).
	MaxInFlight      int
	MaxInFlightBytes int64
}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	v := c.Config
	cfg := Config{
		Brokers:  v.Strings("brokers"),
		Group:    strings.TrimSpace(v.String("group")),
		Start:    v.String("start"),
		Format:   v.String("format"),
		Metadata: v.Boolean("metadata"),
		Linger:   v.Duration("linger"),
		Drain:    v.Duration("drain_timeout"),

		Isolation:        v.String("isolation"),
		MaxInFlight:      int(v.Int64("max_in_flight")),
		MaxInFlightBytes: v.Int64("max_in_flight_bytes"),
	}
	if cfg.MaxInFlight < 1 {
		c.Errorf(v.PosOf("max_in_flight"), "'max_in_flight' must be at least 1")
	}
	if cfg.MaxInFlightBytes < 1 {
		c.Errorf(v.PosOf("max_in_flight_bytes"), "'max_in_flight_bytes' must be at least 1")
	}
	if msg := kafkaclient.CheckBrokers(cfg.Brokers); msg != "" {
		c.Errorf(v.PosOf("brokers"), "%s", msg)
	}
	if t := strings.TrimSpace(v.String("topic")); t != "" {
		cfg.Topics = append(cfg.Topics, t)
	}
	for _, t := range v.Strings("topics") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Topics = append(cfg.Topics, t)
		}
	}
	if len(cfg.Topics) == 0 {
		c.Errorf(v.Pos, "kafka source needs 'topic' (or 'topics')")
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 100 * time.Millisecond
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 10 * time.Second
	}
	var fields []arrow.Field
	switch cfg.Format {
	case "raw":
		if v.Has("schema") {
			c.Errorf(v.PosOf("schema"), "format raw has no schema: each message becomes the string column %q", ColValue)
		}
		fields = []arrow.Field{{Name: ColValue, Type: arrow.BinaryTypes.String, Nullable: true}}
	default:
		if !v.Has("schema") {
			c.Errorf(v.Pos, "kafka source with format json needs 'schema'")
			return nil, nil
		}
		cfg.Schema = c.Schema(v.Get("schema"))
		if cfg.Schema == nil {
			return nil, nil
		}
		fields = cfg.Schema.Fields()
	}
	if cfg.Metadata {
		for _, f := range fields {
			for _, m := range MetadataFields {
				if f.Name == m.Name {
					c.Errorf(v.PosOf("metadata"), "column %q of the schema clashes with the metadata column of the same name", f.Name)
				}
			}
		}
	}
	out := OutputSchema(cfg)
	return out, func(r op.Resources) (any, error) { return New(r, cfg, out), nil }
}

// OutputSchema is the schema a source with cfg emits.
func OutputSchema(cfg Config) *arrow.Schema {
	var fields []arrow.Field
	if cfg.Format == "raw" {
		fields = []arrow.Field{{Name: ColValue, Type: arrow.BinaryTypes.String, Nullable: true}}
	} else {
		if !cfg.Metadata {
			return cfg.Schema
		}
		fields = append(fields, cfg.Schema.Fields()...)
	}
	if cfg.Metadata {
		fields = append(fields, MetadataFields...)
	}
	return arrow.NewSchema(fields, nil)
}

// Source reads Kafka. Build it with New; Run may be called once.
type Source struct {
	cfg    Config
	res    op.Resources
	schema *arrow.Schema // output

	out    op.Output
	outMu  sync.Mutex // serialises Reject+Emit of concurrent claims
	ctx    context.Context
	commit bool
	client sarama.Client
	iso    sarama.IsolationLevel
	budget *budget
	// decoders bounds the claims decoding at once to GOMAXPROCS-1 (at
	// least 1). Throughput is bounded by sarama's fetch loop, one
	// goroutine per broker that requests, decompresses and hands out
	// records serially; with every processor busy decoding it waited up
	// to a scheduler time slice (10ms) for one after each response. With
	// a processor left to it, 1M posts on 2 cores gained ~11 points of a
	// bare sarama consumer's records/s at the same CPU (decoding them
	// needs well under one core).
	decoders chan struct{}

	commits *commits // nil without a group

	stop    context.CancelFunc
	errMu   sync.Mutex
	err     error
	once    map[kafkaclient.Partition]kafkaclient.Marks // nil unless --once
	done    map[kafkaclient.Partition]bool
	allDone bool
	// emitted holds the --once partitions that emitted their last batch;
	// allEmitted is closed when all have (and the input was ended).
	emitted    map[kafkaclient.Partition]bool
	allEmitted chan struct{}
	inputEnded bool

	// onMark, when set (tests), is told after each mark what the claim of
	// tp has marked (-1: nothing yet) and how many of its batches are
	// acknowledged but not yet committable.
	onMark func(tp kafkaclient.Partition, marked int64, ackedPending int)
	// onceMarked, when set (tests), runs after --once read the end offsets.
	onceMarked func()
	// onFinish, when set (tests), is called when a claim starts draining
	// (its session ended: a rebalance, a stop).
	onFinish func(tp kafkaclient.Partition)
}

// New returns a source emitting schema (OutputSchema(cfg)).
func New(r op.Resources, cfg Config, schema *arrow.Schema) *Source {
	if r.BatchRows <= 0 {
		r.BatchRows = 1024
	}
	if r.Clock == nil {
		r.Clock = op.SystemClock{}
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 100 * time.Millisecond
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 10 * time.Second
	}
	if cfg.Start == "" {
		cfg.Start = "earliest"
	}
	if cfg.Format == "" {
		cfg.Format = "json"
	}
	if cfg.Isolation == "" {
		cfg.Isolation = "read_committed"
	}
	if cfg.MaxInFlight < 1 {
		cfg.MaxInFlight = 1024
	}
	if cfg.MaxInFlightBytes < 1 {
		cfg.MaxInFlightBytes = 256 << 20
	}
	src := &Source{cfg: cfg, res: r, schema: schema, budget: newBudget(cfg.MaxInFlight, cfg.MaxInFlightBytes),
		decoders: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))}
	src.budget.measure(r.MetricsOrNop())
	if cfg.Group != "" {
		src.commits = newCommits(r.Clock, r.MetricsOrNop())
	}
	return src
}

func (s *Source) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	stop := s.stop
	s.errMu.Unlock()
	if stop != nil {
		stop()
	}
}

func (s *Source) failed() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Run consumes until ctx ends, an ack fails, or (in --once mode) every
// partition reached the high-water mark it had at start.
func (s *Source) Run(ctx context.Context, out op.Output) error {
	addrs, release, err := kafkaclient.ResolveBrokers(s.cfg.Brokers, s.cfg.Topics...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer release()

	scfg := kafkaclient.NewConfig("flowrun-" + s.res.Node)
	scfg.Consumer.Return.Errors = true
	// Commits share the connection with fetches, and the broker answers a
	// connection's requests in order: a long-polling fetch delays a commit
	// (and the end of a --once run) by up to this much.
	scfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	if s.res.Once {
		// A --once run has data until each partition ends; after that the
		// fetch for it only delays the last commit and the session's end
		// (about 2 × 100ms, 5% of a million-record run): poll briefly.
		scfg.Consumer.MaxWaitTime = onceMaxWait
	}
	s.iso = sarama.ReadCommitted
	if s.cfg.Isolation == "read_uncommitted" {
		s.iso = sarama.ReadUncommitted
	}
	scfg.Consumer.IsolationLevel = s.iso
	scfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	if s.cfg.Start == "latest" {
		scfg.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	group := s.cfg.Group
	s.commit = group != ""
	if !s.commit {
		group = fmt.Sprintf("flowrun-%s-%d-%d", s.res.Node, os.Getpid(), time.Now().UnixNano())
	}
	// Offsets are marked only after acks; the handler's commit loop sends
	// what is marked every second (timed: commits), and a partition being
	// released commits explicitly. sarama's own auto-commit stays enabled
	// only for the retried last flush when a session closes; its loop would
	// commit untimed, so its interval is pushed out of the way.
	scfg.Consumer.Offsets.AutoCommit.Enable = s.commit
	scfg.Consumer.Offsets.AutoCommit.Interval = 24 * time.Hour

	client, err := sarama.NewClient(addrs, scfg)
	if err != nil {
		return fmt.Errorf("kafka: connect to %s: %w", strings.Join(addrs, ","), err)
	}
	defer client.Close()

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	s.errMu.Lock()
	s.stop, s.ctx, s.out, s.client = stop, ctx, out, client
	s.errMu.Unlock()

	if s.res.Once {
		marks, err := kafkaclient.EndMarks(client, s.cfg.Topics, s.iso)
		if err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		s.once, s.done = map[kafkaclient.Partition]kafkaclient.Marks{}, map[kafkaclient.Partition]bool{}
		s.emitted, s.allEmitted = map[kafkaclient.Partition]bool{}, make(chan struct{})
		for p, m := range marks {
			if m.High > m.Low {
				s.once[p] = m
			}
		}
		if len(s.once) == 0 {
			return nil // nothing to read
		}
		if s.onceMarked != nil {
			s.onceMarked()
		}
	}

	cg, err := sarama.NewConsumerGroupFromClient(group, client)
	if err != nil {
		return fmt.Errorf("kafka: consumer group %q: %w", group, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for err := range cg.Errors() {
			if s.commits != nil {
				s.commits.errs.Add(1)
			}
			if s.failed() == nil && cctx.Err() == nil {
				s.res.Log.Warn("kafka consumer", "err", err)
			}
		}
	})
	defer func() {
		cg.Close()
		wg.Wait()
	}()

	h := &handler{s: s}
	failures := 0
	for {
		err := cg.Consume(cctx, s.cfg.Topics, h)
		if cctx.Err() != nil {
			break
		}
		if err == nil {
			failures = 0
			continue
		}
		if errors.Is(err, sarama.ErrClosedConsumerGroup) {
			break
		}
		failures++
		if failures > 5 {
			return fmt.Errorf("kafka: consume %s: %w", strings.Join(s.cfg.Topics, ","), err)
		}
		s.res.Log.Warn("kafka consume failed; retrying", "err", err, "attempt", failures)
		select {
		case <-cctx.Done():
		case <-time.After(time.Duration(failures) * 500 * time.Millisecond):
		}
	}
	if err := s.failed(); err != nil {
		return err
	}
	return nil
}

// partDone records that a partition reached its --once mark; when all have,
// the run stops.
func (s *Source) partDone(p kafkaclient.Partition) {
	s.errMu.Lock()
	s.done[p] = true
	all := !s.allDone && len(s.done) >= len(s.once)
	if all {
		for q := range s.once {
			if !s.done[q] {
				all = false
				break
			}
		}
	}
	if all {
		s.allDone = true
	}
	stop := s.stop
	s.errMu.Unlock()
	if all {
		stop()
	}
}

// partEmitted records that a --once partition emitted its last batch. When
// every one has, the source ends its input (op.InputEnder): nodes that hold
// acks until the end of their input (an aggregate, a window, a lake file
// still open) finalise now, so the claims' drain gets the acks it waits for
// and commits every offset read. Without it they waited the whole
// drain_timeout for acks that came only after Run returned, and left those
// offsets to be read again by the next run.
func (s *Source) partEmitted(p kafkaclient.Partition) {
	s.errMu.Lock()
	if s.emitted == nil || s.inputEnded {
		s.errMu.Unlock()
		return
	}
	s.emitted[p] = true
	all := true
	for q := range s.once {
		if !s.emitted[q] {
			all = false
			break
		}
	}
	s.inputEnded = all
	s.errMu.Unlock()
	if !all {
		return
	}
	if ie, ok := s.out.(op.InputEnder); ok {
		s.outMu.Lock()
		err := ie.EndInput(s.ctx)
		s.outMu.Unlock()
		if err != nil {
			s.fail(fmt.Errorf("kafka: ending the input: %w", err))
		}
	}
	close(s.allEmitted)
}

type handler struct {
	s *Source
	// The session's commit loop (a group only): started by Setup, stopped
	// and joined by Cleanup.
	stopCommits chan struct{}
	commitsDone chan struct{}
}

// Setup runs on every partition assignment, before any claim starts: when
// sinks downstream store positions (Resources.Resume), each claimed
// partition they know is moved to the next offset they have not stored, so
// reading resumes exactly after what they hold; the offset is committed to
// Kafka too (consumer lag stays visible). Partitions they do not know start
// from the group's committed offset.
func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	s := h.s
	if s.commit && s.commits != nil {
		h.stopCommits, h.commitsDone = make(chan struct{}), make(chan struct{})
		go func(stop, done chan struct{}) {
			defer close(done)
			s.commits.loop(sess, stop)
		}(h.stopCommits, h.commitsDone)
	}
	if s.res.Resume == nil {
		return nil
	}
	for topic, parts := range sess.Claims() {
		next, err := s.res.Resume(sess.Context(), topic, parts)
		if err != nil {
			return fmt.Errorf("kafka: positions stored downstream for %s: %w", topic, err)
		}
		for _, p := range parts {
			off, ok := next[p]
			if !ok {
				continue
			}
			// ResetOffset only moves back and MarkOffset only forward:
			// together they set the offset the claim starts from.
			sess.ResetOffset(topic, p, off, "")
			sess.MarkOffset(topic, p, off, "")
			s.res.Log.Debug("kafka: resuming from the stored position", "partition", fmt.Sprintf("%s/%d", topic, p), "offset", off)
		}
	}
	return nil
}

// Cleanup runs when the session ends (also after a failed Setup), once
// every claim has returned: it stops the session's commit loop.
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error {
	if h.stopCommits != nil {
		close(h.stopCommits)
		<-h.commitsDone
		h.stopCommits, h.commitsDone = nil, nil
	}
	return nil
}

// onceMaxWait is how long the broker holds a fetch that finds no records
// in --once mode.
const onceMaxWait = 10 * time.Millisecond

// endCheckEvery is how long a --once partition short of its end waits
// without receiving anything before it asks the broker whether only
// transaction markers are left.
const endCheckEvery = 200 * time.Millisecond

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	s := h.s
	tp := kafkaclient.Partition{Topic: claim.Topic(), Partition: claim.Partition()}
	c := newClaim(s, tp, sess)
	defer c.release()
	c.next = claim.InitialOffset()
	c.hwm = claim.HighWaterMarkOffset
	c.lag = s.res.MetricsOrNop().Gauge("flowrun_kafka_consumer_lag", "Records of the partition after the last one read (high-water mark minus next offset), as of the last batch.",
		op.Label{Name: "topic", Value: tp.Topic}, op.Label{Name: "partition", Value: fmt.Sprint(tp.Partition)})
	var high int64 = -1
	var endCheck <-chan time.Time
	if s.once != nil {
		m, ok := s.once[tp]
		switch c.next {
		case sarama.OffsetOldest:
			c.next = m.Low
		case sarama.OffsetNewest:
			c.next = m.High
		}
		if !ok || c.next >= m.High {
			if ok {
				s.partEmitted(tp)
			}
			s.partDone(tp)
			return idle(claim)
		}
		high = m.High
		endCheck = s.res.Clock.After(endCheckEvery)
	}
	var linger <-chan time.Time
	received := false // since the last end check
	msgs := claim.Messages()
	for {
		select {
		case msg, ok := <-msgs:
			if !ok {
				c.revoking = true
				return c.finish()
			}
			if high >= 0 && msg.Offset >= high {
				// Written after the run started, past markers that ended
				// the partition then: not this run's.
				return c.end(claim, high)
			}
			if c.msgs == 0 {
				linger = s.res.Clock.After(s.cfg.Linger)
			}
			if past := c.burst(msg, msgs, high); past {
				return c.end(claim, high)
			}
			received = true
			if high >= 0 && c.next >= high {
				return c.end(claim, high)
			}
			if c.rows >= s.res.BatchRows {
				if err := c.flush(true); err != nil {
					return c.stopped(err)
				}
				linger = nil
			}
		case <-linger:
			linger = nil
			if err := c.flush(true); err != nil {
				return c.stopped(err)
			}
		case <-endCheck:
			endCheck = s.res.Clock.After(endCheckEvery)
			if received {
				received = false
				continue
			}
			more, err := kafkaclient.HasData(s.client, tp, c.next, high, s.iso)
			if err != nil {
				s.res.Log.Warn("kafka: checking for records before the end offset", "partition", tp.String(), "err", err)
				continue
			}
			if !more {
				return c.end(claim, high)
			}
		case <-c.tr.notify:
			if err := c.mark(); err != nil {
				return err
			}
		case <-sess.Context().Done():
			return c.finish()
		}
	}
}

// idle keeps a finished --once partition claimed (a handler that returns
// ends the whole session) until the session ends.
func idle(claim sarama.ConsumerGroupClaim) error {
	for range claim.Messages() {
	}
	return nil
}

// claim is the state of one partition being read.
type claim struct {
	s        *Source
	revoking bool // the claim ends because the partition is taken away
	sess     sarama.ConsumerGroupSession
	tp       kafkaclient.Partition
	tr       *tracker
	dec      *jsondec.Decoder // format json
	raw      *array.StringBuilder
	meta     *array.RecordBuilder // metadata columns, or nil
	msgs     int                  // messages in the batch being built
	rows     int
	first    int64 // offset of the first message in the batch being built
	last     int64 // offset of the last message in the batch being built
	next     int64 // offset after the last message received
	marked   int64
	rej      []reject
	hdr      []byte
	hwm      func() int64 // the partition's high-water mark as of the last fetch
	lag      op.Gauge
}

type reject struct{ record, reason string }

func newClaim(s *Source, tp kafkaclient.Partition, sess sarama.ConsumerGroupSession) *claim {
	c := &claim{s: s, sess: sess, tp: tp, tr: newTracker(s.budget), marked: -1}
	if s.cfg.Format == "raw" {
		c.raw = array.NewStringBuilder(s.res.Alloc)
	} else {
		c.dec = jsondec.NewDecoder(s.cfg.Schema, s.res.Alloc, jsondec.Options{})
	}
	if s.cfg.Metadata {
		c.meta = array.NewRecordBuilder(s.res.Alloc, arrow.NewSchema(MetadataFields, nil))
	}
	return c
}

// release frees the builders and gives back the budget of batches still
// in flight: from now on nothing of this claim is committed.
func (c *claim) release() {
	c.tr.close()
	if c.dec != nil {
		c.dec.Release()
	}
	if c.raw != nil {
		c.raw.Release()
	}
	if c.meta != nil {
		c.meta.Release()
	}
}

// burst decodes msg and the messages already buffered behind it, up to a
// full batch, taking them with plain receives (this goroutine is the
// channel's only reader) rather than one select per message. It holds one
// of the source's decoder slots meanwhile (see Source.decoders) and
// reports whether it met a message at or past the --once end offset high.
func (c *claim) burst(msg *sarama.ConsumerMessage, msgs <-chan *sarama.ConsumerMessage, high int64) (past bool) {
	s := c.s
	s.decoders <- struct{}{}
	defer func() { <-s.decoders }()
	c.add(msg)
	for len(msgs) > 0 && c.rows < s.res.BatchRows && (high < 0 || c.next < high) {
		m := <-msgs
		if high >= 0 && m.Offset >= high {
			return true
		}
		c.add(m)
	}
	return false
}

// add decodes one message into the batch being built (an undecodable one
// becomes a dead letter of the batch).
func (c *claim) add(m *sarama.ConsumerMessage) {
	if c.msgs == 0 {
		c.first = m.Offset
	}
	c.msgs++
	c.last = m.Offset
	c.next = m.Offset + 1
	if c.raw != nil {
		if m.Value == nil {
			c.raw.AppendNull()
		} else {
			c.raw.BinaryBuilder.Append(m.Value)
		}
	} else {
		if m.Value == nil {
			return // a tombstone
		}
		if err := c.dec.Append(m.Value); err != nil {
			c.rej = append(c.rej, reject{string(m.Value), fmt.Sprintf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)})
			return
		}
	}
	c.rows++
	if c.meta != nil {
		c.appendMeta(m)
	}
}

func (c *claim) appendMeta(m *sarama.ConsumerMessage) {
	key := c.meta.Field(0).(*array.StringBuilder)
	if m.Key == nil {
		key.AppendNull()
	} else {
		key.BinaryBuilder.Append(m.Key)
	}
	c.meta.Field(1).(*array.Int64Builder).Append(int64(m.Partition))
	c.meta.Field(2).(*array.Int64Builder).Append(m.Offset)
	ts := c.meta.Field(3).(*array.TimestampBuilder)
	if m.Timestamp.IsZero() || m.Timestamp.Unix() <= 0 {
		ts.AppendNull()
	} else {
		ts.Append(arrow.Timestamp(m.Timestamp.UnixMicro()))
	}
	hb := c.meta.Field(4).(*array.StringBuilder)
	if len(m.Headers) == 0 {
		hb.AppendNull()
		return
	}
	c.hdr = append(c.hdr[:0], '{')
	for i, h := range m.Headers {
		if i > 0 {
			c.hdr = append(c.hdr, ',')
		}
		c.hdr = appendJSONString(c.hdr, h.Key)
		c.hdr = append(c.hdr, ':')
		c.hdr = appendJSONString(c.hdr, h.Value)
	}
	c.hdr = append(c.hdr, '}')
	hb.BinaryBuilder.Append(c.hdr)
}

func appendJSONString(dst, s []byte) []byte {
	return jsonenc.AppendString(dst, string(s))
}

// errRevoked reports that a batch was not delivered because the claim's
// session ended (a rebalance revoked the partition, or the source stops):
// its offsets are not committed, and whoever reads the partition next
// reads them again.
var errRevoked = errors.New("kafka: partition revoked")

// flush emits the batch being built (with its dead letters) under an ack
// that reports to the partition's tracker. With wait it first waits for
// room in the source's in-flight budget (marking acknowledged offsets
// meanwhile); a claim that is ending does not wait. The emit gives up when
// the session ends (a sink that holds batches must not hold up the group's
// rebalance); the batch is then dropped and flush returns errRevoked.
func (c *claim) flush(wait bool) error {
	if c.msgs == 0 {
		return nil
	}
	rec := c.record()
	first, last := c.first, c.last
	if c.hwm != nil {
		c.lag.Set(float64(max(c.hwm()-c.next, 0)))
	}
	c.msgs, c.rows = 0, 0
	rej := c.rej
	c.rej = c.rej[:0]
	size := batch.Batch{Rec: rec}.Bytes()
	if wait {
		if err := c.acquire(size); err != nil {
			rec.Release()
			return err
		}
	} else {
		c.s.budget.take(size)
	}
	f := c.tr.add(first, last, size)
	ack := batch.NewAck(func(err error) { c.tr.ack(f, err) }).WithPositions(batch.Position{
		Source: c.s.res.Node, Topic: c.tp.Topic, Partition: c.tp.Partition, First: first, Last: last})

	s := c.s
	s.outMu.Lock()
	defer s.outMu.Unlock()
	for _, r := range rej {
		if err := s.out.Reject(r.record, r.reason); err != nil {
			rec.Release()
			ack.Done(err)
			err = fmt.Errorf("kafka: %w", err)
			s.fail(err)
			return err
		}
	}
	sctx := c.sess.Context()
	if err := s.out.Emit(sctx, batch.Batch{Rec: rec, Ack: ack}); err != nil {
		if sctx.Err() != nil { // a rebalance or a stop: not delivered, not committed
			c.tr.drop(f)
			return errRevoked
		}
		s.fail(err)
		return err
	}
	return nil
}

// acquire waits until the budget has room for a batch of size bytes,
// marking offsets as acknowledgements arrive. When the session ends
// meanwhile it returns errRevoked: the batch is dropped, not committed.
func (c *claim) acquire(size int64) error {
	b := c.s.budget
	for {
		freed, ok := b.tryTake(size)
		if ok {
			return nil
		}
		select {
		case <-freed:
		case <-c.tr.notify:
			if err := c.mark(); err != nil {
				return err
			}
		case <-c.sess.Context().Done():
			return errRevoked
		}
	}
}

func (c *claim) record() arrow.RecordBatch {
	var body arrow.RecordBatch
	if c.raw != nil {
		arr := c.raw.NewArray()
		body = array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: ColValue, Type: arrow.BinaryTypes.String, Nullable: true}}, nil), []arrow.Array{arr}, int64(arr.Len()))
		arr.Release()
	} else {
		body = c.dec.Flush()
	}
	if c.meta == nil && c.raw == nil {
		return body
	}
	cols := append([]arrow.Array(nil), body.Columns()...)
	var meta arrow.RecordBatch
	if c.meta != nil {
		meta = c.meta.NewRecordBatch()
		cols = append(cols, meta.Columns()...)
	}
	rec := array.NewRecordBatch(c.s.schema, cols, body.NumRows())
	body.Release()
	if meta != nil {
		meta.Release()
	}
	return rec
}

// mark marks the committable offset in the session (the periodic commit
// sends it) and reports a failed ack.
func (c *claim) mark() error {
	next, _, err, end := c.tr.state()
	if c.s.commit && next > c.marked {
		c.sess.MarkOffset(c.tp.Topic, c.tp.Partition, next, "")
		c.marked = next
		if c.s.commits != nil {
			c.s.commits.marked()
		}
	}
	if c.s.onMark != nil {
		c.s.onMark(c.tp, c.marked, c.tr.ackedPending())
	}
	if errors.Is(err, batch.ErrDropped) {
		// Abandoned because the run is stopping (a window drops its open
		// state on a graceful stop): not a failure. The batch and every
		// later one stay uncommitted and are read again on restart.
		return nil
	}
	if err != nil {
		err = fmt.Errorf("kafka: batch of %s ending at offset %d failed; it and later offsets stay uncommitted and are read again on restart: %w", c.tp, end, err)
		c.s.fail(err)
		return err
	}
	return nil
}

// stopped handles a failed flush: a revoked claim drains and commits what
// it delivered; any other error is the source's.
func (c *claim) stopped(err error) error {
	if errors.Is(err, errRevoked) {
		return c.finish()
	}
	return err
}

// end finishes a --once partition that reached its end offset high: the
// offsets up to high that were never delivered (transaction markers) are
// committed with the last batch, then the partition idles until the run
// stops.
func (c *claim) end(claim sarama.ConsumerGroupClaim, high int64) error {
	if err := c.flush(false); err != nil {
		return c.stopped(err)
	}
	c.tr.skip(high - 1)
	// Drain only once every partition has emitted its last batch and the
	// input has ended: before that, acks a node holds until the end of its
	// input cannot come.
	c.s.partEmitted(c.tp)
	select {
	case <-c.s.allEmitted:
	case <-c.sess.Context().Done():
	}
	if err := c.finish(); err != nil {
		return err
	}
	if c.s.failed() == nil {
		c.s.partDone(c.tp)
	}
	return idle(claim)
}

// revoke tells the nodes downstream, after the partition's last batch, that
// this process gives the partition up (op.Revoked): a window drops what it
// holds of it at once (its next owner reads it again) instead of keeping
// the acks until drain_timeout.
func (c *claim) revoke() {
	co, ok := c.s.out.(op.ControlOutput)
	if !ok {
		return
	}
	c.s.outMu.Lock()
	defer c.s.outMu.Unlock()
	err := co.EmitControl(context.WithoutCancel(c.sess.Context()), op.Control{Kind: op.Revoked,
		Partition: batch.Position{Source: c.s.res.Node, Topic: c.tp.Topic, Partition: c.tp.Partition}})
	if err != nil {
		c.s.res.Log.Warn("kafka: telling downstream nodes a partition is revoked", "partition", c.tp.String(), "err", err)
	}
}

// finish ends reading the partition: it emits the partial batch, waits up
// to drain_timeout for the in-flight batches, marks and commits.
func (c *claim) finish() error {
	s := c.s
	if s.onFinish != nil {
		s.onFinish(c.tp)
	}
	if err := c.flush(false); err != nil && !errors.Is(err, errRevoked) {
		return err
	}
	if c.revoking {
		c.revoke()
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(c.sess.Context()), s.cfg.Drain)
	defer cancel()
	for {
		_, pending, err, _ := c.tr.state()
		if pending == 0 || err != nil {
			break
		}
		select {
		case <-c.tr.notify:
			continue
		case <-wctx.Done():
		}
		s.res.Log.Warn("kafka: in-flight batches not acknowledged in time; their offsets stay uncommitted and will be read again",
			"partition", c.tp.String(), "batches", pending, "waited", s.cfg.Drain)
		break
	}
	err := c.mark()
	if s.commit {
		s.commits.commit(c.sess)
	}
	return err
}
