// Package kafka is the "kafka" source: it reads one or more Kafka topics as
// a member of a consumer group (github.com/IBM/sarama, wrapped by
// operators/kafkaclient), decodes each message (JSON against a declared
// schema, or raw text) into Arrow record batches, and commits a partition's
// offset only once every batch up to it has been acknowledged by the sinks:
// at-least-once delivery with no avoidable duplicates.
//
// Batching: messages of one partition are gathered until the node's batch
// size (Resources.BatchRows) or the linger time (100ms) is reached, then
// emitted with an ack. Acks may complete out of order; per partition the
// committed offset is the end of the longest run of acknowledged batches.
// A failed ack stops the source with an error (its messages are read again
// after a restart). When the group rebalances, a partition being given up
// stops reading, waits (up to drain_timeout) for its in-flight batches,
// commits, and only then is released.
//
// Undecodable messages go to the node's dead_letter output as
// "topic/partition@offset: reason"; the dead letter travels under the ack
// of the batch holding the message's offset, so the offset is committed only
// after the dead letter is stored. Null-valued messages (tombstones) are
// skipped in json format.
//
// In --once mode (Resources.Once) the source reads the high-water mark of
// every partition at start, stops each partition when it reaches its mark,
// commits, and ends when all partitions are done. This assumes the process
// is the group's only member.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
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

Undecodable messages go to the node's dead_letter output with the reason
"topic/partition@offset: ...". With --once the source stops at the end of
each partition as it was when the run started.`,
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
			spec.F("drain_timeout", spec.Duration, "How long a stopping or rebalanced partition waits for its in-flight batches to be acknowledged before giving up its uncommitted offsets (they are read again later).").Def(10*time.Second),
		),
	},
	Prepare: prepare,
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

	stop    context.CancelFunc
	errMu   sync.Mutex
	err     error
	once    map[kafkaclient.Partition]kafkaclient.Marks // nil unless --once
	done    map[kafkaclient.Partition]bool
	allDone bool
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
	return &Source{cfg: cfg, res: r, schema: schema}
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
	scfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	if s.cfg.Start == "latest" {
		scfg.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	group := s.cfg.Group
	s.commit = group != ""
	if !s.commit {
		group = fmt.Sprintf("flowrun-%s-%d-%d", s.res.Node, os.Getpid(), time.Now().UnixNano())
	}
	// Offsets are marked only after acks; the periodic commit sends what is
	// marked, and a partition being released commits explicitly.
	scfg.Consumer.Offsets.AutoCommit.Enable = s.commit
	scfg.Consumer.Offsets.AutoCommit.Interval = time.Second

	client, err := sarama.NewClient(addrs, scfg)
	if err != nil {
		return fmt.Errorf("kafka: connect to %s: %w", strings.Join(addrs, ","), err)
	}
	defer client.Close()

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	s.errMu.Lock()
	s.stop, s.ctx, s.out = stop, ctx, out
	s.errMu.Unlock()

	if s.res.Once {
		marks, err := kafkaclient.PartitionMarks(client, s.cfg.Topics)
		if err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		s.once, s.done = map[kafkaclient.Partition]kafkaclient.Marks{}, map[kafkaclient.Partition]bool{}
		for p, m := range marks {
			if m.High > m.Low {
				s.once[p] = m
			}
		}
		if len(s.once) == 0 {
			return nil // nothing to read
		}
	}

	cg, err := sarama.NewConsumerGroupFromClient(group, client)
	if err != nil {
		return fmt.Errorf("kafka: consumer group %q: %w", group, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for err := range cg.Errors() {
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

type handler struct{ s *Source }

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	s := h.s
	tp := kafkaclient.Partition{Topic: claim.Topic(), Partition: claim.Partition()}
	var high int64 = -1
	if s.once != nil {
		m, ok := s.once[tp]
		start := claim.InitialOffset()
		switch start {
		case sarama.OffsetOldest:
			start = m.Low
		case sarama.OffsetNewest:
			start = m.High
		}
		if !ok || start >= m.High {
			s.partDone(tp)
			return idle(claim)
		}
		high = m.High
	}
	c := newClaim(s, tp)
	defer c.release()
	var linger <-chan time.Time
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return c.finish(sess)
			}
			if err := c.add(msg); err != nil {
				s.fail(err)
				return err
			}
			if c.msgs == 1 {
				linger = s.res.Clock.After(s.cfg.Linger)
			}
			if high >= 0 && msg.Offset >= high-1 {
				if err := c.finish(sess); err != nil {
					return err
				}
				if s.failed() == nil {
					s.partDone(tp)
				}
				return idle(claim)
			}
			if c.rows >= s.res.BatchRows {
				if err := c.flush(); err != nil {
					return err
				}
				linger = nil
			}
		case <-linger:
			linger = nil
			if err := c.flush(); err != nil {
				return err
			}
		case <-c.tr.notify:
			if err := c.mark(sess); err != nil {
				return err
			}
		case <-sess.Context().Done():
			return c.finish(sess)
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
	s      *Source
	tp     kafkaclient.Partition
	tr     *tracker
	dec    *jsondec.Decoder // format json
	raw    *array.StringBuilder
	meta   *array.RecordBuilder // metadata columns, or nil
	msgs   int                  // messages in the batch being built
	rows   int
	last   int64 // offset of the last message in the batch being built
	marked int64
	rej    []reject
	hdr    []byte
}

type reject struct{ record, reason string }

func newClaim(s *Source, tp kafkaclient.Partition) *claim {
	c := &claim{s: s, tp: tp, tr: newTracker(), marked: -1}
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

func (c *claim) release() {
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

// add decodes one message into the batch being built.
func (c *claim) add(m *sarama.ConsumerMessage) error {
	c.msgs++
	c.last = m.Offset
	if c.raw != nil {
		if m.Value == nil {
			c.raw.AppendNull()
		} else {
			c.raw.BinaryBuilder.Append(m.Value)
		}
	} else {
		if m.Value == nil {
			return nil // a tombstone
		}
		if err := c.dec.Append(m.Value); err != nil {
			c.rej = append(c.rej, reject{string(m.Value), fmt.Sprintf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)})
			return nil
		}
	}
	c.rows++
	if c.meta != nil {
		c.appendMeta(m)
	}
	return nil
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

// flush emits the batch being built (with its dead letters) under an ack
// that reports to the partition's tracker.
func (c *claim) flush() error {
	if c.msgs == 0 {
		return nil
	}
	rec := c.record()
	f := c.tr.add(c.last)
	ack := batch.NewAck(func(err error) { c.tr.ack(f, err) })
	c.msgs, c.rows = 0, 0
	rej := c.rej
	c.rej = c.rej[:0]

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
	if err := s.out.Emit(s.ctx, batch.Batch{Rec: rec, Ack: ack}); err != nil {
		s.fail(err)
		return err
	}
	return nil
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
func (c *claim) mark(sess sarama.ConsumerGroupSession) error {
	next, _, err, end := c.tr.state()
	if c.s.commit && next > c.marked {
		sess.MarkOffset(c.tp.Topic, c.tp.Partition, next, "")
		c.marked = next
	}
	if err != nil {
		err = fmt.Errorf("kafka: batch of %s ending at offset %d failed; it and later offsets stay uncommitted and are read again on restart: %w", c.tp, end, err)
		c.s.fail(err)
		return err
	}
	return nil
}

// finish ends reading the partition: it emits the partial batch, waits up
// to drain_timeout for the in-flight batches, marks and commits.
func (c *claim) finish(sess sarama.ConsumerGroupSession) error {
	s := c.s
	if err := c.flush(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(sess.Context()), s.cfg.Drain)
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
	err := c.mark(sess)
	if s.commit {
		sess.Commit()
	}
	return err
}
