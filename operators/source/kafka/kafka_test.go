package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	kafkasink "github.com/flowrun/flowrun/operators/sink/kafka"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

func TestMain(m *testing.M) { kafkatest.VerifyTestMain(m) }

var rowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func resources(t testing.TB, alloc memory.Allocator, rows int, once bool) op.Resources {
	return op.Resources{Node: "src", Alloc: alloc, Clock: op.SystemClock{}, Log: testLogger(t), BatchRows: rows, Once: once}
}

// produceRows writes ids [from, to) through the kafka sink.
func produceRows(t *testing.T, brokers []string, topic string, from, to int) {
	t.Helper()
	key, errs := exprc.Compile(spec.ExprSrc{Src: "id"}, rowSchema)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	s, err := kafkasink.New(op.Resources{Node: "sink", Alloc: memory.DefaultAllocator},
		kafkasink.Config{Brokers: brokers, Topic: topic, Key: key, Compression: "snappy", Partitioner: "hash", MaxInFlight: 4, Retries: 3}, rowSchema)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ackErrs []error
	acked := 0
	b := array.NewRecordBuilder(memory.DefaultAllocator, rowSchema)
	defer b.Release()
	ctx := context.Background()
	for start := from; start < to; start += 100 {
		for i := start; i < min(start+100, to); i++ {
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("name-%d", i))
		}
		ack := batch.NewAck(func(err error) {
			mu.Lock()
			defer mu.Unlock()
			acked++
			if err != nil {
				ackErrs = append(ackErrs, err)
			}
		})
		if err := s.Write(ctx, batch.Batch{Rec: b.NewRecordBatch(), Ack: ack}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := (to - from + 99) / 100; acked != want || len(ackErrs) > 0 {
		t.Fatalf("sink acks: %d of %d, errors %v", acked, want, ackErrs)
	}
}

func jsonConfig(brokers []string, topic, group string) Config {
	return Config{Brokers: brokers, Topics: []string{topic}, Group: group, Start: "earliest", Format: "json", Schema: rowSchema}
}

func runSource(t *testing.T, ctx context.Context, r op.Resources, cfg Config) (*kafkatest.Output, error) {
	t.Helper()
	schema := OutputSchema(cfg)
	out := &kafkatest.Output{S: schema}
	err := New(r, cfg, schema).Run(ctx, out)
	return out, err
}

func checkIDs(t *testing.T, got []int64, from, to int) {
	t.Helper()
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	if len(got) != to-from {
		t.Fatalf("got %d ids, want %d", len(got), to-from)
	}
	for i, id := range got {
		if id != int64(from+i) {
			t.Fatalf("ids[%d] = %d, want %d (duplicates or gaps)", i, id, from+i)
		}
	}
}

// embedded holds the embedded broker for the test so that its topics live
// across the sink's and the source's own acquisitions.
func embedded(t *testing.T, topics ...string) []string {
	t.Helper()
	addrs, release, err := kafkaclient.ResolveBrokers([]string{"embedded"}, topics...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return addrs
}

func TestRoundTripOnceEmbedded(t *testing.T) {
	topic := kafkatest.Topic(t)
	embedded(t, topic)
	produceRows(t, []string{"embedded"}, topic, 0, 2500)

	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	cfg := jsonConfig([]string{"embedded"}, topic, "g-roundtrip")
	cfg.Metadata = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := runSource(t, ctx, resources(t, alloc, 300, true), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	checkIDs(t, out.Int64s("id"), 0, 2500)
	for _, r := range out.Recs {
		if r.NumRows() > 300 {
			t.Fatalf("batch of %d rows, want at most 300", r.NumRows())
		}
		if !r.Schema().Equal(OutputSchema(cfg)) {
			t.Fatalf("schema %v", r.Schema())
		}
	}
	offs := out.Int64s(ColOffset)
	if len(offs) != 2500 {
		t.Fatalf("%d offsets", len(offs))
	}
	keys := out.Recs[0].Column(out.Recs[0].Schema().FieldIndices(ColKey)[0]).(*array.String)
	ids := out.Recs[0].Column(0).(*array.Int64)
	if keys.Value(0) != fmt.Sprint(ids.Value(0)) {
		t.Fatalf("_key %q for id %d", keys.Value(0), ids.Value(0))
	}

	// A second --once run of the same group finds everything committed.
	out2, err := runSource(t, ctx, resources(t, alloc, 300, true), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out2.Release()
	if n := len(out2.Int64s("id")); n != 0 {
		t.Fatalf("second run read %d rows again", n)
	}

	// More data: the third run reads only the new rows.
	produceRows(t, []string{"embedded"}, topic, 2500, 2600)
	out3, err := runSource(t, ctx, resources(t, alloc, 300, true), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out3.Release()
	checkIDs(t, out3.Int64s("id"), 2500, 2600)
}

func TestOnceEmptyTopicEnds(t *testing.T) {
	topic := kafkatest.Topic(t)
	embedded(t, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := runSource(t, ctx, resources(t, memory.DefaultAllocator, 100, true), jsonConfig([]string{"embedded"}, topic, "g"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Batches() != 0 {
		t.Fatalf("%d batches from an empty topic", out.Batches())
	}
}

// produceTo writes values to one partition with a plain sarama producer.
func produceTo(t *testing.T, addrs []string, topic string, partition int32, values ...string) {
	t.Helper()
	cfg := kafkaclient.NewConfig("test")
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var msgs []*sarama.ProducerMessage
	for _, v := range values {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: partition, Value: sarama.StringEncoder(v),
			Headers: []sarama.RecordHeader{{Key: []byte("src"), Value: []byte("test")}}})
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

func committed(t *testing.T, addrs []string, group, topic string, partition int32) int64 {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(addrs, kafkaclient.NewConfig("test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {partition}})
	if err != nil {
		t.Fatal(err)
	}
	b := resp.GetBlock(topic, partition)
	if b == nil {
		return -1
	}
	return b.Offset
}

func waitCommitted(t *testing.T, addrs []string, group, topic string, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := committed(t, addrs, group, topic, 0)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offset %d, want %d", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCommitOnlyAcknowledgedPrefix(t *testing.T) {
	topic := kafkatest.Topic(t)
	addrs := embedded(t, topic)
	var vals []string
	for i := range 6 {
		vals = append(vals, fmt.Sprintf(`{"id": %d, "name": "n%d"}`, i, i))
	}
	produceTo(t, addrs, topic, 0, vals...)

	cfg := jsonConfig([]string{"embedded"}, topic, "g-order")
	cfg.Linger = time.Hour // batches close on size only
	schema := OutputSchema(cfg)
	out := &kafkatest.Output{S: schema, Hold: true}
	defer out.Release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := New(resources(t, memory.DefaultAllocator, 2, false), cfg, schema)
	marks := make(chan [2]int64, 64)
	src.onMark = func(tp kafkaclient.Partition, marked int64, acked int) {
		if tp.Partition == 0 {
			select {
			case marks <- [2]int64{marked, int64(acked)}:
			default: // the test stopped listening
			}
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	out.WaitBatches(t, 3, 15*time.Second)

	// Batches cover offsets 0-1, 2-3, 4-5. Acking the later ones first
	// marks nothing: once the claim has seen both acks, it still has
	// nothing marked, so nothing can have been committed.
	out.Ack(2, nil)
	out.Ack(1, nil)
	deadline := time.After(15 * time.Second)
	for seen := false; !seen; {
		select {
		case m := <-marks:
			if m[0] != -1 {
				t.Fatalf("marked offset %d before the first batch was acknowledged", m[0])
			}
			seen = m[1] == 2
		case <-deadline:
			t.Fatal("the claim did not see the two acks within 15s")
		}
	}
	if got := committed(t, addrs, "g-order", topic, 0); got != -1 {
		t.Fatalf("committed %d before the first batch was acknowledged", got)
	}
	out.Ack(0, nil)
	waitCommitted(t, addrs, "g-order", topic, 6)

	// A failed ack stops the source with an error and commits nothing more.
	produceTo(t, addrs, topic, 0, `{"id": 6}`, `{"id": 7}`)
	out.WaitBatches(t, 4, 15*time.Second)
	boom := errors.New("sink failed")
	out.Ack(3, boom)
	select {
	case err := <-errc:
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want the ack's error", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("source did not stop after a failed ack")
	}
	if got := committed(t, addrs, "g-order", topic, 0); got != 6 {
		t.Fatalf("committed %d after a failed batch, want 6", got)
	}
}

func TestRejectsGoUnderTheNextBatch(t *testing.T) {
	topic := kafkatest.Topic(t)
	addrs := embedded(t, topic)
	produceTo(t, addrs, topic, 0, `{"id": 1}`, `not json`, `{"id": "x"}`, `{"id": 4}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := jsonConfig([]string{"embedded"}, topic, "g-rej")
	cfg.Metadata = true
	out, err := runSource(t, ctx, resources(t, memory.DefaultAllocator, 100, true), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if got := out.Int64s("id"); len(got) != 2 {
		t.Fatalf("ids %v", got)
	}
	if len(out.Rejects) != 2 {
		t.Fatalf("rejects %v", out.Rejects)
	}
	if r := out.Rejects[0]; r[0] != "not json" || !strings.HasPrefix(r[1], topic+"/0@1: ") {
		t.Fatalf("reject %q", r)
	}
	if r := out.Rejects[1]; !strings.HasPrefix(r[1], topic+"/0@2: ") {
		t.Fatalf("reject %q", r)
	}
	rec := out.Recs[0]
	h := rec.Column(rec.Schema().FieldIndices(ColHeaders)[0]).(*array.String)
	if h.Value(0) != `{"src":"test"}` {
		t.Fatalf("_headers %q", h.Value(0))
	}
	waitCommitted(t, addrs, "g-rej", topic, 4)
}

func TestStopCommitsWhatWasEmitted(t *testing.T) {
	topic := kafkatest.Topic(t)
	embedded(t, topic)
	produceRows(t, []string{"embedded"}, topic, 0, 1000)
	cfg := jsonConfig([]string{"embedded"}, topic, "g-resume")

	// First run: stop after a few batches.
	ctx, cancel := context.WithCancel(context.Background())
	schema := OutputSchema(cfg)
	out := &kafkatest.Output{S: schema, OnEmit: func(n int) {
		if n == 3 {
			cancel()
		}
	}}
	defer out.Release()
	if err := New(resources(t, memory.DefaultAllocator, 50, false), cfg, schema).Run(ctx, out); err != nil {
		t.Fatal(err)
	}
	first := out.Int64s("id")
	if len(first) == 0 || len(first) >= 1000 {
		t.Fatalf("first run read %d rows", len(first))
	}

	// Second run (--once) reads the rest, nothing twice.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	out2, err := runSource(t, ctx2, resources(t, memory.DefaultAllocator, 50, true), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out2.Release()
	checkIDs(t, append(first, out2.Int64s("id")...), 0, 1000)
}

func TestRawFormat(t *testing.T) {
	topic := kafkatest.Topic(t)
	addrs := embedded(t, topic)
	produceTo(t, addrs, topic, 1, "a", "b", "c")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := Config{Brokers: []string{"embedded"}, Topics: []string{topic}, Format: "raw"}
	out, err := runSource(t, ctx, resources(t, memory.DefaultAllocator, 100, true), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	var got []string
	for _, r := range out.Recs {
		c := r.Column(0).(*array.String)
		for i := 0; i < c.Len(); i++ {
			got = append(got, c.Value(i))
		}
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("raw values %v", got)
	}
}

// Integration tests against a real Kafka (scripts/services/kafka.sh).

func TestRealSourceOnceFromKcat(t *testing.T) {
	brokers := testenv.Kafka(t)
	kafkatest.Kcat(t)
	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 3, topic); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 700 {
		lines = append(lines, fmt.Sprintf(`{"id": %d, "name": "n%d"}`, i, i))
	}
	kafkatest.Produce(t, brokers, topic, lines)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := runSource(t, ctx, resources(t, memory.DefaultAllocator, 128, true), jsonConfig(brokers, topic, "flowrun-test-"+topic))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	checkIDs(t, out.Int64s("id"), 0, 700)
}

func TestRealSourceResumeNoDuplicates(t *testing.T) {
	brokers := testenv.Kafka(t)
	kafkatest.Kcat(t)
	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 3, topic); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 1000 {
		lines = append(lines, fmt.Sprintf(`{"id": %d, "name": "n%d"}`, i, i))
	}
	kafkatest.Produce(t, brokers, topic, lines)
	cfg := jsonConfig(brokers, topic, "flowrun-test-"+topic)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	schema := OutputSchema(cfg)
	var once sync.Once
	out := &kafkatest.Output{S: schema}
	out.OnEmit = func(int) {
		if len(out.Int64s("id")) >= 500 {
			once.Do(cancel)
		}
	}
	defer out.Release()
	if err := New(resources(t, memory.DefaultAllocator, 50, false), cfg, schema).Run(ctx, out); err != nil {
		t.Fatal(err)
	}
	first := out.Int64s("id")
	if len(first) < 500 || len(first) >= 1000 {
		t.Logf("first run read %d rows", len(first))
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel2()
	out2, err := runSource(t, ctx2, resources(t, memory.DefaultAllocator, 50, true), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out2.Release()
	checkIDs(t, append(first, out2.Int64s("id")...), 0, 1000)
}

// waitUntil polls cond until it holds, failing the test with what at the
// deadline.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestInFlightBound: with acknowledgements held, the source emits up to
// its bound of uncommitted batches (or bytes), then waits; each ack lets
// one more batch through, and everything is committed in the end.
func TestInFlightBound(t *testing.T) {
	for _, tc := range []struct {
		name     string
		batches  int
		bytes    int64
		expected int // batches emitted while none is acknowledged
	}{
		{"batches", 3, 1 << 30, 3},
		{"bytes", 1000, 1, 1}, // every batch is over the bound: one at a time
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := kafkatest.Topic(t)
			addrs := embedded(t, topic)
			var vals []string
			for i := range 20 {
				vals = append(vals, fmt.Sprintf(`{"id": %d, "name": "n%d"}`, i, i))
			}
			produceTo(t, addrs, topic, 0, vals...)
			group := "g-" + topic
			cfg := jsonConfig([]string{"embedded"}, topic, group)
			cfg.Linger = time.Hour
			cfg.MaxInFlight, cfg.MaxInFlightBytes = tc.batches, tc.bytes
			schema := OutputSchema(cfg)
			out := &kafkatest.Output{S: schema, Hold: true}
			defer out.Release()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := resources(t, memory.DefaultAllocator, 2, false)
			gauges := &gaugeMetrics{}
			r.Metrics = gauges
			src := New(r, cfg, schema)
			errc := make(chan error, 1)
			go func() { errc <- src.Run(ctx, out) }()

			blocked := func() bool {
				src.budget.mu.Lock()
				defer src.budget.mu.Unlock()
				return src.budget.waiting
			}
			for acked := 0; acked < 10; acked++ {
				want := min(acked+tc.expected, 10)
				waitUntil(t, 15*time.Second, fmt.Sprintf("%d batches emitted", want), func() bool { return out.Batches() >= want })
				if want < 10 {
					// Emitting happens only after taking room: while the
					// source waits for room, the count cannot grow.
					waitUntil(t, 15*time.Second, "the source waiting for room", blocked)
					if n := out.Batches(); n != want {
						t.Fatalf("%d batches emitted with %d acknowledged, want %d", n, acked, want)
					}
					if n, _ := src.budget.inFlight(); n != tc.expected {
						t.Fatalf("%d batches in flight, want %d", n, tc.expected)
					}
					if g := gauges.get("flowrun_kafka_source_in_flight_batches"); g != float64(tc.expected) {
						t.Fatalf("in-flight gauge %v, want %d", g, tc.expected)
					}
					// The batch waiting for room was read: want+1 batches.
					if g := gauges.get("flowrun_kafka_consumer_lag", "0"); g != float64(20-2*(want+1)) {
						t.Fatalf("lag gauge %v after %d batches of 2 of 20 records read, want %d", g, want+1, 20-2*(want+1))
					}
				}
				out.Ack(acked, nil)
			}
			waitCommitted(t, addrs, group, topic, 20)
			waitUntil(t, 15*time.Second, "the budget empty", func() bool { n, b := src.budget.inFlight(); return n == 0 && b == 0 })
			if g := gauges.get("flowrun_kafka_source_in_flight_bytes"); g != 0 {
				t.Fatalf("in-flight bytes gauge %v at the end", g)
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			checkIDs(t, out.Int64s("id"), 0, 20)
		})
	}
}

// TestDroppedAckIsNotAFailure: a batch abandoned with batch.ErrDropped (a
// window dropping its open state on a graceful stop) stays uncommitted,
// with everything after it, but does not make the stop an error.
func TestDroppedAckIsNotAFailure(t *testing.T) {
	topic := kafkatest.Topic(t)
	addrs := embedded(t, topic)
	produceTo(t, addrs, topic, 0, `{"id": 0}`, `{"id": 1}`, `{"id": 2}`, `{"id": 3}`)
	cfg := jsonConfig([]string{"embedded"}, topic, "g-dropped")
	cfg.Linger = time.Hour
	schema := OutputSchema(cfg)
	out := &kafkatest.Output{S: schema, Hold: true}
	defer out.Release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := New(resources(t, memory.DefaultAllocator, 2, false), cfg, schema)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, out) }()
	out.WaitBatches(t, 2, 15*time.Second)
	out.Ack(0, nil)
	waitCommitted(t, addrs, "g-dropped", topic, 2)
	out.Ack(1, batch.ErrDropped)
	cancel()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v after a dropped batch, want a clean stop", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("source did not stop")
	}
	if got := committed(t, addrs, "g-dropped", topic, 0); got != 2 {
		t.Fatalf("committed %d, want 2: the dropped batch is read again on restart", got)
	}
}

// gaugeMetrics records gauges by name and label values, for tests.
type gaugeMetrics struct {
	mu     sync.Mutex
	gauges map[string]*gauge
}

type gauge struct {
	mu sync.Mutex
	v  float64
}

func (g *gauge) Set(v float64) { g.mu.Lock(); g.v = v; g.mu.Unlock() }
func (g *gauge) Add(v float64) { g.mu.Lock(); g.v += v; g.mu.Unlock() }

func gaugeKey(name string, values ...string) string { return name + "|" + strings.Join(values, "|") }

func (m *gaugeMetrics) Gauge(name, _ string, ls ...op.Label) op.Gauge {
	var values []string
	for _, l := range ls {
		if l.Name != "topic" {
			values = append(values, l.Value)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gauges == nil {
		m.gauges = map[string]*gauge{}
	}
	k := gaugeKey(name, values...)
	if m.gauges[k] == nil {
		m.gauges[k] = &gauge{}
	}
	return m.gauges[k]
}

func (m *gaugeMetrics) get(name string, values ...string) float64 {
	g := m.Gauge(name, "", func() []op.Label {
		var ls []op.Label
		for _, v := range values {
			ls = append(ls, op.Label{Name: "v", Value: v})
		}
		return ls
	}()...).(*gauge)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.v
}

func (m *gaugeMetrics) Counter(string, string, ...op.Label) op.Counter {
	return op.NopMetrics{}.Counter("", "")
}
func (m *gaugeMetrics) Histogram(string, string, []float64, ...op.Label) op.Histogram {
	return op.NopMetrics{}.Histogram("", "", nil)
}
