// Package kafka is the "kafka" sink: it writes each row as one JSON message
// to a Kafka topic through an idempotent sarama AsyncProducer (acks from all
// in-sync replicas, one open request per broker, retries with backoff), and
// acknowledges a batch only when the broker has acknowledged every one of
// its messages. A message that cannot be delivered after the retries goes to
// the node's dead-letter output (its batch is acknowledged once the dead
// letter is stored); without one it fails its batch's ack, so the source
// decides (the kafka source stops and replays later, the http source answers
// 503); a batch without an ack (from a source that cannot replay) fails the
// sink and the pipeline stops rather than drop data.
//
// The number of batches in flight is bounded (max_in_flight), so a slow
// cluster holds back the pipeline instead of growing memory.
//
// With transactional: true (txn.go) batches go through transactional
// producers instead: a batch is acknowledged only once the Kafka
// transaction holding it committed, and fails whole (nothing of it visible
// to read_committed consumers) when any of its messages could not be
// stored.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/codec/jsonenc"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sinks,
	Spec: spec.Spec{
		Name:    "kafka",
		Summary: "Write rows as JSON messages to a Kafka topic (idempotent producer, acked after delivery).",
		Doc: `Each row becomes one message whose value is the row as a JSON object and
whose key is the 'key' expression (no key when absent or null). The producer
is idempotent, waits for all in-sync replicas and retries with backoff; a
batch is acknowledged upstream (so its source commits) only when every one of
its messages is stored. A message that still fails after the retries (or that
the producer refuses, e.g. one larger than max_message_bytes) goes to the
node's dead_letter output with the reason; without one it fails its batch's
acknowledgement: a kafka source then stops (and reads the batch again after a
restart), the http source answers 503 so the client retries, and a source
that cannot replay (file, generate) stops the pipeline. Message sizes are
checked before a batch is sent: without a dead_letter output, a batch with a
message larger than max_message_bytes is not written at all and its
acknowledgement fails with the rows that can never be stored, so the http
source answers those posts' requests 422 and sends the rest again. Headers are expressions too; a null header is left out.

'partitioner: hash' sends equal keys to the same partition (sarama's FNV-1a
hash, which differs from the Java client's murmur2); messages without a key
are spread at random. 'brokers: embedded' uses the in-process broker shared
with kafka sources of the same process.

'transactional: true' writes in Kafka transactions: each batch, joined with
the batches already waiting behind it, is one transaction, acknowledged only
once it committed. When any of its messages cannot be stored (a broker down
past the retries, a leader change, a timeout) or the commit fails, the
transaction is aborted and every batch in it fails whole, without
op.FailedRows: the messages already written stay in the log but are never
delivered to read_committed consumers (the kafka source's default), so an
http request answered 503 left nothing behind and its retry stores each post
once. Each producer runs one transaction at a time (AddPartitionsToTxn,
produce, EndTxn: about three broker round trips);
'transaction_producers' producers run in parallel, each with its own
transactional id, at the price of batch order. The transactional id must
belong to one running instance: a producer started with the same id fences
the older one and aborts its open transaction, which is what a restart
wants (the default, flowrun.{pipeline}.{node}.{host}, does that for one
process per host; give two processes on one host different ids, e.g. with
their listen address). After a failed transaction the producer is replaced
by a new one with the same id, whose initialisation makes the broker abort
the failed transaction. A commit whose answer is lost (the broker may have
performed it) is settled the same way, and then one of its messages is
looked up with read_committed: the batches are acknowledged if it was
committed, failed if not, and failed as unknown only when that cannot be
told (Kafka unreachable). A process killed in the
middle of a transaction leaves it open until the next start with its id or
transaction_timeout; read_committed consumers of its partitions wait until
then and never see its messages. With a dead_letter output, messages larger
than max_message_bytes go to it before the transaction; any other delivery
failure fails the batch. Read the topic with read_committed: a
read_uncommitted consumer sees aborted messages too.`,
		Example: `sinks:
  out:
    from: clean
    kafka:
      brokers: [localhost:9092]
      topic: pinterest.clean
      key: unique_id
      headers: {source: '"flowrun"', category: category}
      # transactional: true    # all-or-nothing batches (see above)
    dead_letter: undeliverable`,
		Config: spec.Obj(
			spec.F("brokers", spec.StringList, "Bootstrap brokers as host:port, or embedded for the in-process broker.").Req().Ex("[localhost:9092]"),
			spec.F("topic", spec.String, "Topic to write to.").Req(),
			spec.F("key", spec.Expr, "Message key: an expression over the row (a column name is the simplest); null means no key."),
			spec.F("headers", spec.ExprMap, "Message headers: name: expression over the row; a null value leaves the header out."),
			spec.F("max_message_bytes", spec.Size, "Largest message the producer sends; a larger one is a delivery failure.").Def(int64(1_000_000)),
			spec.F("format", spec.Enum, "Message value format.").OneOf("json").Def("json"),
			spec.F("compression", spec.Enum, "Compression codec of produced batches.").OneOf("none", "gzip", "snappy", "lz4", "zstd").Def("snappy"),
			spec.F("partitioner", spec.Enum, "How messages are spread over partitions.").OneOf("hash", "random", "roundrobin").Def("hash"),
			spec.F("max_in_flight", spec.Int, "Batches sent but not yet acknowledged by the broker before Write waits.").Def(int64(8)),
			spec.F("retries", spec.Int, "Delivery attempts after the first before a message fails the pipeline.").Def(int64(10)),
			spec.F("retry_backoff", spec.Duration, "Wait between delivery attempts.").Def(250*time.Millisecond),
			spec.F("transactional", spec.Bool, "Write each batch (with the batches waiting behind it) in one Kafka transaction: acknowledged when committed; on any failure aborted, so read_committed consumers see none of it.").Def(false),
			spec.F("transactional_id", spec.String, "Transactional id of the producer; {pipeline}, {node} and {host} are replaced by the pipeline's name, the node's name and the host name. Each running instance needs its own: a new producer with the same id fences the old one and aborts its open transaction.").Def(DefaultTransactionalID),
			spec.F("transaction_timeout", spec.Duration, "How long the broker keeps a transaction open before aborting it (after a crash, read_committed consumers of its partitions wait up to this long).").Def(DefaultTransactionTimeout),
			spec.F("transaction_deadline", spec.Duration, "A transaction whose messages are not all stored this long after it began is not committed: its batches fail at once (keep it below the http source's ack_timeout, so a 503 for a timeout is never followed by a commit).").Def(DefaultTransactionDeadline),
			spec.F("transaction_producers", spec.Int, "Transactional producers (each with its own transactional id, the given one plus .1, .2, ...) committing in parallel; above 1, batches may be committed out of order.").Def(int64(1)),
		),
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

// Defaults of the transactional mode.
const (
	DefaultTransactionalID    = "flowrun.{pipeline}.{node}.{host}"
	DefaultTransactionTimeout = 10 * time.Second
	// DefaultTransactionDeadline is below the http source's ack_timeout.
	DefaultTransactionDeadline = 20 * time.Second
)

// Header is one message header computed per row.
type Header struct {
	Name  string
	Value *exprc.Program
}

// Config is a kafka sink's settings.
type Config struct {
	Brokers      []string
	Topic        string
	Key          *exprc.Program // nil: no key
	Headers      []Header
	MaxMessage   int
	Compression  string
	Partitioner  string
	MaxInFlight  int
	Retries      int
	RetryBackoff time.Duration

	// Transactional mode (txn.go). TransactionalID is the id with
	// {pipeline}, {node} and {host} still to replace.
	Transactional        bool
	TransactionalID      string
	TransactionTimeout   time.Duration
	TransactionDeadline  time.Duration
	TransactionProducers int
	Pipeline             string // the pipeline's name, for {pipeline}
}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	v := c.Config
	cfg := Config{
		Brokers:      v.Strings("brokers"),
		Topic:        strings.TrimSpace(v.String("topic")),
		Compression:  v.String("compression"),
		Partitioner:  v.String("partitioner"),
		MaxInFlight:  int(v.Int64("max_in_flight")),
		Retries:      int(v.Int64("retries")),
		RetryBackoff: v.Duration("retry_backoff"),
		MaxMessage:   int(v.Int64("max_message_bytes")),

		Transactional:        v.Boolean("transactional"),
		TransactionalID:      strings.TrimSpace(v.String("transactional_id")),
		TransactionTimeout:   v.Duration("transaction_timeout"),
		TransactionDeadline:  v.Duration("transaction_deadline"),
		TransactionProducers: int(v.Int64("transaction_producers")),
	}
	if c.Pipeline != nil {
		cfg.Pipeline = c.Pipeline.Name
	}
	if cfg.Transactional {
		if cfg.TransactionalID == "" {
			c.Errorf(v.PosOf("transactional_id"), "'transactional_id' must not be empty")
		}
		if cfg.TransactionTimeout <= 0 {
			c.Errorf(v.PosOf("transaction_timeout"), "'transaction_timeout' must be positive")
		}
		if cfg.TransactionDeadline <= 0 {
			c.Errorf(v.PosOf("transaction_deadline"), "'transaction_deadline' must be positive")
		}
		for _, u := range c.Upstream {
			if u.Flow.AckTimeout > 0 && cfg.TransactionDeadline >= u.Flow.AckTimeout {
				c.Errorf(v.PosOf("transaction_deadline"), "'transaction_deadline' (%s) must be below the ack_timeout (%s) of the %s source '%s': a transaction still running when its requests are answered 503 could commit their posts after all",
					cfg.TransactionDeadline, u.Flow.AckTimeout, u.Type, u.Name)
			}
		}
		if cfg.TransactionProducers < 1 {
			c.Errorf(v.PosOf("transaction_producers"), "'transaction_producers' must be at least 1")
		}
	}
	if msg := kafkaclient.CheckBrokers(cfg.Brokers); msg != "" {
		c.Errorf(v.PosOf("brokers"), "%s", msg)
	}
	if cfg.Topic == "" {
		c.Errorf(v.PosOf("topic"), "kafka sink needs a 'topic'")
	}
	if cfg.MaxInFlight < 1 {
		c.Errorf(v.PosOf("max_in_flight"), "'max_in_flight' must be at least 1")
	}
	if cfg.Retries < 0 {
		c.Errorf(v.PosOf("retries"), "'retries' must not be negative")
	}
	in := c.In()
	if v.Has("key") && in != nil {
		p, errs := exprc.Compile(v.Get("key").Expr, in, exprc.Name("key"))
		c.Errs.Append(errs)
		if len(errs) == 0 {
			cfg.Key = p
		}
	}
	if in != nil {
		for _, e := range v.Get("headers").Entries {
			p, errs := exprc.Compile(e.Value.Expr, in, exprc.Name("header '"+e.Key+"'"))
			c.Errs.Append(errs)
			if len(errs) == 0 {
				cfg.Headers = append(cfg.Headers, Header{Name: e.Key, Value: p})
			}
		}
	}
	return nil, func(r op.Resources) (any, error) { return New(r, cfg, in) }
}

// Sink produces to Kafka. It is safe for the runtime's use: Write, Flush and
// Close from the node's goroutine, Close possibly twice.
type Sink struct {
	cfg      Config
	res      op.Resources
	enc      *jsonenc.Encoder
	key      *exprc.Evaluator
	headers  []*exprc.Evaluator
	producer sarama.AsyncProducer // nil in transactional mode
	release  func()

	slots    chan struct{} // one token per batch in flight
	trackers chan *tracker // free trackers with their buffers (at most max_in_flight)
	rowBytes int           // encoded bytes per row of the last batch (Write only)
	wg       sync.WaitGroup
	err      atomic.Pointer[error] // first delivery failure
	stored   atomic.Int64          // messages the broker acknowledged (committed)
	// produceLatency times a batch from its first message handed to the
	// producer to the broker's acknowledgement of its last (in
	// transactional mode: to the commit).
	produceLatency op.Histogram

	txn *txnPool // transactional mode (txn.go); nil otherwise

	closeOnce sync.Once
	closeErr  error
}

// tracker counts the undelivered messages of one batch. It also owns the
// batch's encoded keys and values and its messages, which point into them
// until delivered; once every message is back it returns to the sink's
// pool, so a steady stream of batches reuses the same buffers.
type tracker struct {
	left atomic.Int64
	mu   sync.Mutex
	err  error
	ack  *batch.Ack
	s    *Sink
	n    int   // rows of the batch
	rows []int // rows whose delivery failed (for op.FailedRows)
	all  bool  // a failure of the whole batch, not of single rows

	buf, keys  []byte // encoded values and keys, back to back
	ends, kend []int  // end of each row's value and key in buf, keys (kend -1: no key)
	refs       []bytesRef
	msgs       []sarama.ProducerMessage
	sent       time.Time // when the first message was handed to the producer

	// Transactional mode: the messages the transaction sends (those not
	// already gone to the dead letters), and a signal once every one of
	// them is back from the producer; the ack waits for the commit.
	send     []*sarama.ProducerMessage
	back     chan struct{}
	answered bool  // the ack is done; the messages are not all back yet
	part     int32 // partition and offset of one stored message (at -1: none yet)
	at       int64
	noted    atomic.Bool // part and at are set
}

// answer fails the batch's ack before its messages are back (a transaction
// past its deadline, which will not be committed); settle recycles the
// tracker once they are.
func (t *tracker) answer(err error) {
	t.ack.Done(err)
	t.answered = true
}

// done counts one message (or, with the left count adjusted, the rest of
// the batch) as finished; err fails the whole batch.
func (t *tracker) done(err error) { t.finish(-1, err) }

// finish counts one message as finished; a failure of row (>= 0) fails
// that row alone: when the others were stored, the ack fails with
// op.FailedRows naming the failed rows, so a source that can tell its rows
// apart answers for them alone. In transactional mode the last message
// only signals the transaction, which settles the batch once it committed
// or aborted.
func (t *tracker) finish(row int, err error) {
	if err != nil {
		t.mu.Lock()
		if t.err == nil {
			t.err = err
		}
		if row >= 0 {
			t.rows = append(t.rows, row)
		} else {
			t.all = true
		}
		t.mu.Unlock()
	}
	if t.left.Add(-1) != 0 {
		return
	}
	if t.back != nil {
		t.back <- struct{}{}
		return
	}
	t.mu.Lock()
	err = t.err
	if err == nil && !t.sent.IsZero() {
		t.s.produceLatency.Observe(time.Since(t.sent).Seconds())
	}
	if err != nil && !t.all && len(t.rows) < t.n && t.ack != nil {
		rows := slices.Clone(t.rows)
		slices.Sort(rows)
		err = &op.FailedRows{Rows: t.n, Index: rows, Err: err}
	}
	t.mu.Unlock()
	t.settle(err)
}

// settle acknowledges the batch with err (unless answer already did) and
// returns the tracker and its slot to the sink.
func (t *tracker) settle(err error) {
	s := t.s
	t.mu.Lock()
	t.rows, t.all, t.err = t.rows[:0], false, nil
	t.mu.Unlock()
	if !t.answered {
		t.ack.Done(err)
	}
	t.ack, t.answered = nil, false
	select {
	case s.trackers <- t:
	default:
	}
	<-s.slots
}

// rowOf returns the row of m, one of t's messages (-1 if it is not).
func (t *tracker) rowOf(m *sarama.ProducerMessage) int {
	for i := range t.msgs[:t.n] {
		if &t.msgs[i] == m {
			return i
		}
	}
	return -1
}

// bytesRef is a message key or value inside a tracker's buffers; as a
// pointer it becomes a sarama.Encoder without an allocation per message.
type bytesRef struct{ b []byte }

func (r *bytesRef) Encode() ([]byte, error) { return r.b, nil }
func (r *bytesRef) Length() int             { return len(r.b) }

// producerConfig is the sarama configuration of cfg's producers: idempotent,
// acks from all in-sync replicas, one open request per broker.
func producerConfig(cfg Config, node string) *sarama.Config {
	pc := kafkaclient.NewConfig("flowrun-" + node)
	pc.Producer.Idempotent = true
	pc.Producer.RequiredAcks = sarama.WaitForAll
	pc.Net.MaxOpenRequests = 1
	pc.Producer.Retry.Max = cfg.Retries
	if cfg.Retries == 0 {
		pc.Producer.Retry.Max = 1 // idempotence needs at least one retry
	}
	if cfg.RetryBackoff > 0 {
		pc.Producer.Retry.Backoff = cfg.RetryBackoff
	}
	if cfg.MaxMessage > 0 {
		pc.Producer.MaxMessageBytes = cfg.MaxMessage
	}
	pc.Producer.Return.Successes = true
	pc.Producer.Return.Errors = true
	// No linger: with one request in flight (idempotence), messages that
	// arrive while it is out are batched into the next one anyway, so a
	// fixed wait only adds latency to every acknowledged HTTP post.
	pc.Producer.Flush.Frequency = 0
	pc.Producer.Flush.Bytes = 0
	switch cfg.Compression {
	case "none":
		pc.Producer.Compression = sarama.CompressionNone
	case "gzip":
		pc.Producer.Compression = sarama.CompressionGZIP
	case "lz4":
		pc.Producer.Compression = sarama.CompressionLZ4
	case "zstd":
		pc.Producer.Compression = sarama.CompressionZSTD
	default:
		pc.Producer.Compression = sarama.CompressionSnappy
	}
	switch cfg.Partitioner {
	case "random":
		pc.Producer.Partitioner = sarama.NewRandomPartitioner
	case "roundrobin":
		pc.Producer.Partitioner = sarama.NewRoundRobinPartitioner
	default:
		pc.Producer.Partitioner = sarama.NewHashPartitioner
	}
	return pc
}

// New connects a producer for cfg (in transactional mode, its pool of
// transactional producers); in is the schema of the rows written.
func New(r op.Resources, cfg Config, in *arrow.Schema) (*Sink, error) {
	if cfg.MaxInFlight < 1 {
		cfg.MaxInFlight = 8
	}
	addrs, release, err := kafkaclient.ResolveBrokers(cfg.Brokers, cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	s := &Sink{cfg: cfg, res: r, enc: jsonenc.NewEncoder(in), release: release,
		slots: make(chan struct{}, cfg.MaxInFlight), trackers: make(chan *tracker, cfg.MaxInFlight)}
	if cfg.Key != nil {
		s.key = cfg.Key.NewEvaluator()
	}
	for _, h := range cfg.Headers {
		s.headers = append(s.headers, h.Value.NewEvaluator())
	}
	s.produceLatency = r.MetricsOrNop().Histogram("flowrun_kafka_produce_latency_seconds",
		"Time from a batch's first message handed to the producer to the broker's acknowledgement of its last.", op.LatencyBuckets)
	if cfg.Transactional {
		if s.txn, err = newTxnPool(s, addrs); err != nil {
			release()
			return nil, err
		}
		return s, nil
	}
	p, err := sarama.NewAsyncProducer(addrs, producerConfig(cfg, r.Node))
	if err != nil {
		release()
		return nil, fmt.Errorf("kafka: producer for %s: %w", strings.Join(addrs, ","), err)
	}
	s.producer = p
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.results(p)
	}()
	return s, nil
}

// results takes p's delivery reports until p is closed.
func (s *Sink) results(p sarama.AsyncProducer) {
	txn := s.cfg.Transactional
	succ, errs := p.Successes(), p.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			t := m.Metadata.(*tracker)
			if !txn {
				s.stored.Add(1)
			} else if t.noted.CompareAndSwap(false, true) {
				// Only this goroutine writes them; the transaction reads
				// them after every message is back.
				t.part, t.at = m.Partition, m.Offset
			}
			t.done(nil)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			t := e.Msg.Metadata.(*tracker)
			err := fmt.Errorf("kafka: deliver to %s: %w", s.cfg.Topic, e.Err)
			if txn {
				// The transaction is aborted: every message of it fails.
				t.done(err)
				continue
			}
			if dl := s.res.DeadLetters; dl != nil {
				// The dead letter holds the batch's ack until it is stored.
				t.ack.Retain(1)
				value, _ := e.Msg.Value.Encode()
				if dlErr := dl.Reject(t.ack, string(value), err.Error()); dlErr == nil {
					t.done(nil)
					continue
				}
			}
			// The failure goes to whoever can act on it: the batch's source,
			// through its ack (the kafka source stops and replays, the http
			// source answers 503 and its client retries), so the sink keeps
			// serving once Kafka is back. A batch without an ack comes from
			// a source that cannot replay (a file, a generator): then the
			// sink fails and the pipeline stops rather than lose the rows.
			if t.ack == nil {
				s.err.CompareAndSwap(nil, &err)
			}
			t.finish(t.rowOf(e.Msg), err)
		}
	}
}

// StoredRows implements op.StoredRows: the messages the broker acknowledged.
func (s *Sink) StoredRows() int64 { return s.stored.Load() }

func (s *Sink) failed() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Write sends every row of b; b's ack completes when all are delivered.
func (s *Sink) Write(ctx context.Context, b batch.Batch) error {
	if err := s.failed(); err != nil {
		b.Release(err)
		return err
	}
	n := b.Rows()
	if n == 0 {
		b.Release(nil)
		return nil
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		b.Release(ctx.Err())
		return ctx.Err()
	}
	rec := b.Rec
	defer rec.Release()
	var t *tracker
	select {
	case t = <-s.trackers:
	default:
		t = &tracker{s: s}
		if s.cfg.Transactional {
			t.back = make(chan struct{}, 1)
		}
	}
	t.ack, t.n = b.Ack, n
	t.at = -1
	t.noted.Store(false)
	t.left.Store(int64(n))
	// Values (and keys) are encoded back to back into the tracker's
	// buffers first; the messages point into them once they stop growing.
	t.buf, t.keys = t.buf[:0], t.keys[:0]
	t.ends, t.kend = t.ends[:0], t.kend[:0]
	if want := s.rowBytes * n * 9 / 8; cap(t.buf) < want {
		t.buf = make([]byte, 0, want) // rather than growing it row by row
	}
	for row := range n {
		t.buf = s.enc.AppendRow(t.buf, rec, row)
		t.ends = append(t.ends, len(t.buf))
	}
	s.rowBytes = len(t.buf)/n + 1
	if s.key != nil {
		s.key.Bind(rec)
		for row := range n {
			k, err := s.key.Eval(row)
			if err != nil {
				t.settle(err)
				return err
			}
			end := -1
			if k != nil {
				t.keys = append(t.keys, keyString(k)...)
				end = len(t.keys)
			}
			t.kend = append(t.kend, end)
		}
	}
	for _, h := range s.headers {
		h.Bind(rec)
	}
	// Every message is built and its size checked before any is sent: a
	// message the producer would refuse (larger than max_message_bytes)
	// can never be stored, and without a dead-letter output the batch then
	// fails whole with op.RejectedRows, nothing of it written, so its
	// source can answer for those rows alone and send the others again.
	// In transactional mode such a message goes to the dead letters here,
	// since a refusal by the producer would abort the whole transaction.
	if cap(t.msgs) < n {
		t.msgs = make([]sarama.ProducerMessage, n)
		t.refs = make([]bytesRef, 2*n)
	}
	msgs, refs := t.msgs[:n], t.refs[:2*n]
	t.send = t.send[:0]
	var rejected *op.RejectedRows
	start, kstart := 0, 0
	for row := range n {
		v := &refs[2*row]
		v.b = t.buf[start:t.ends[row]:t.ends[row]]
		start = t.ends[row]
		msgs[row] = sarama.ProducerMessage{Topic: s.cfg.Topic, Value: v, Metadata: t}
		m := &msgs[row]
		if s.key != nil {
			if end := t.kend[row]; end >= 0 {
				k := &refs[2*row+1]
				k.b = t.keys[kstart:end:end]
				kstart = end
				m.Key = k
			}
		}
		for i, h := range s.headers {
			v, err := h.Eval(row)
			if err != nil {
				t.settle(err)
				return err
			}
			if v != nil {
				m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(s.cfg.Headers[i].Name), Value: []byte(keyString(v))})
			}
		}
		size := m.ByteSize(2)
		if s.cfg.MaxMessage <= 0 || size <= s.cfg.MaxMessage {
			t.send = append(t.send, m)
			continue
		}
		reason := fmt.Sprintf("message of %d bytes (encoded) is larger than max_message_bytes (%d) of topic %s", size, s.cfg.MaxMessage, s.cfg.Topic)
		switch {
		case s.res.DeadLetters == nil:
			if rejected == nil {
				rejected = &op.RejectedRows{Rows: n}
			}
			rejected.Index = append(rejected.Index, row)
			rejected.Reasons = append(rejected.Reasons, reason)
		case s.txn != nil:
			t.ack.Retain(1)
			// A failed Reject releases its reference with the error, which
			// fails the batch: its source replays it.
			_ = s.res.DeadLetters.Reject(t.ack, string(v.b), "kafka: deliver to "+s.cfg.Topic+": "+reason)
		default:
			t.send = append(t.send, m) // the producer refuses it: a dead letter then
		}
	}
	if rejected != nil {
		if b.Ack == nil {
			// A source that cannot replay: stop rather than drop rows.
			err := fmt.Errorf("kafka: %w", rejected)
			s.err.CompareAndSwap(nil, &err)
			t.settle(err)
			return err
		}
		t.settle(rejected)
		return nil
	}
	if s.txn != nil {
		if len(t.send) == 0 {
			t.settle(nil) // every row went to the dead letters
			return nil
		}
		t.left.Store(int64(len(t.send)))
		s.txn.queue <- t // never blocks: it holds one of the slots
		return nil
	}
	t.sent = time.Now()
	for row := range msgs {
		select {
		case s.producer.Input() <- &msgs[row]:
		case <-ctx.Done():
			t.left.Add(-int64(n - row - 1))
			t.done(ctx.Err())
			return ctx.Err()
		}
	}
	return nil
}

func keyString(k any) string {
	if s, ok := arrowx.Text(k); ok {
		return s
	}
	return fmt.Sprint(k)
}

// Flush reports a delivery failure; the producer sends on its own.
func (s *Sink) Flush(ctx context.Context) error { return s.failed() }

// Close waits (bounded by ctx) for the batches in flight, then closes the
// producer and releases the brokers.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		// Take every slot: each is returned when its batch is done.
		var waitErr error
	wait:
		for range cap(s.slots) {
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				waitErr = fmt.Errorf("kafka: close: %d batches still in flight: %w", len(s.slots), ctx.Err())
				break wait
			}
		}
		if s.txn != nil {
			s.txn.close()
		} else {
			s.producer.AsyncClose()
		}
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			if waitErr == nil {
				waitErr = fmt.Errorf("kafka: close: %w", ctx.Err())
			}
		}
		s.release()
		s.closeErr = errors.Join(s.failed(), waitErr)
	})
	return s.closeErr
}
