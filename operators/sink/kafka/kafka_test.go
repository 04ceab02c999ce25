package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/op/optest"
)

func TestMain(m *testing.M) { kafkatest.VerifyTestMain(m) }

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func rows(alloc memory.Allocator, from, to int) arrow.RecordBatch {
	b := array.NewRecordBuilder(alloc, schema)
	defer b.Release()
	for i := from; i < to; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if i%7 == 0 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("name %d \"q\"", i))
		}
	}
	return b.NewRecordBatch()
}

func keyProg(t *testing.T, src string) *exprc.Program {
	t.Helper()
	p, errs := exprc.Compile(spec.ExprSrc{Src: src}, schema)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return p
}

// write sends ids [0,n) in batches of 100 and closes the sink.
func write(t *testing.T, brokers []string, topic string, n int, cfg Config) {
	t.Helper()
	alloc := optest.Allocator(t)
	cfg.Brokers, cfg.Topic = brokers, topic
	s, err := New(op.Resources{Node: "out", Alloc: alloc}, cfg, schema)
	if err != nil {
		t.Fatal(err)
	}
	var a optest.Acks
	ctx := context.Background()
	for from := 0; from < n; from += 100 {
		if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, from, min(from+100, n)), Ack: a.New()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal("second Close:", err)
	}
	if got, errs := a.Get(); got != (n+99)/100 || len(errs) > 0 {
		t.Fatalf("acks %d of %d, errors %v", got, (n+99)/100, errs)
	}
}

// readAll reads what a read_committed consumer receives of the topic, to
// its end.
func readAll(t *testing.T, addrs []string, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	return kafkatest.Read(t, addrs, topic, sarama.ReadCommitted)
}

type row struct {
	ID   int64   `json:"id"`
	Name *string `json:"name"`
}

func checkValues(t *testing.T, values [][]byte, n int) {
	t.Helper()
	seen := map[int64]bool{}
	for _, v := range values {
		var r row
		if err := json.Unmarshal(v, &r); err != nil {
			t.Fatalf("message %q: %v", v, err)
		}
		if seen[r.ID] {
			t.Fatalf("id %d twice", r.ID)
		}
		seen[r.ID] = true
		if (r.ID%7 == 0) != (r.Name == nil) {
			t.Fatalf("message %q", v)
		}
	}
	for i := range n {
		if !seen[int64(i)] {
			t.Fatalf("id %d missing (%d messages)", i, len(values))
		}
	}
	if len(seen) != n {
		t.Fatalf("%d ids, want %d", len(seen), n)
	}
}

func TestWriteEmbedded(t *testing.T) {
	for _, tc := range []struct {
		compression, partitioner string
		txn                      bool
	}{
		{"snappy", "hash", false}, {"none", "roundrobin", false}, {"gzip", "random", false}, {"lz4", "hash", false}, {"zstd", "hash", false},
		{"snappy", "hash", true},
	} {
		name := tc.compression + "-" + tc.partitioner
		if tc.txn {
			name += "-transactional"
		}
		t.Run(name, func(t *testing.T) {
			topic := kafkatest.Topic(t)
			addrs, release, err := kafkaclient.ResolveBrokers([]string{"embedded"}, topic)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			write(t, []string{"embedded"}, topic, 1050, Config{Key: keyProg(t, "id % 10"), Compression: tc.compression, Partitioner: tc.partitioner, MaxInFlight: 2, Retries: 3,
				Transactional: tc.txn, TransactionalID: "test-" + topic, TransactionTimeout: 10 * time.Second, TransactionProducers: 2})
			msgs := readAll(t, addrs, topic)
			var values [][]byte
			part := map[string]int32{}
			for _, m := range msgs {
				values = append(values, m.Value)
				if tc.partitioner == "hash" {
					if p, ok := part[string(m.Key)]; ok && p != m.Partition {
						t.Fatalf("key %q in partitions %d and %d", m.Key, p, m.Partition)
					}
					part[string(m.Key)] = m.Partition
				}
			}
			checkValues(t, values, 1050)
		})
	}
}

// TestDeliveryFailure: a batch with an ack reports the failure through it
// and the sink keeps serving (its source decides: replay or 503); a batch
// without one (a source that cannot replay) fails the sink for good.
func TestDeliveryFailure(t *testing.T) {
	for _, withAck := range []bool{true, false} {
		t.Run(fmt.Sprint("ack=", withAck), func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(op.Resources{Node: "out", Alloc: memory.DefaultAllocator},
				Config{Brokers: c.ListenAddrs(), Topic: "t", Compression: "none", Partitioner: "hash", MaxInFlight: 8, Retries: 1, RetryBackoff: 10 * time.Millisecond}, schema)
			if err != nil {
				t.Fatal(err)
			}
			c.Close() // the broker goes away
			var a optest.Acks
			ack := func() *batch.Ack {
				if withAck {
					return a.New()
				}
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := s.Write(ctx, batch.Batch{Rec: rows(memory.DefaultAllocator, 0, 10), Ack: ack()}); err != nil {
				t.Fatal(err)
			}
			if !withAck {
				for s.Flush(ctx) == nil {
					if ctx.Err() != nil {
						t.Fatal("the failure never reached the sink")
					}
					time.Sleep(20 * time.Millisecond)
				}
				if err := s.Write(ctx, batch.Batch{Rec: rows(memory.DefaultAllocator, 0, 1)}); err == nil {
					t.Fatal("Write after a failed delivery without ack returned nil")
				}
				if err := s.Close(ctx); err == nil {
					t.Fatal("Close after a failed delivery without ack returned nil")
				}
				return
			}
			for {
				if n, _ := a.Get(); n == 1 {
					break
				}
				if ctx.Err() != nil {
					t.Fatal("batch never acknowledged")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, errs := a.Get(); len(errs) != 1 {
				t.Fatalf("ack errors %v, want the delivery failure", errs)
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatalf("Flush after a failure reported through the ack: %v", err)
			}
			if err := s.Write(ctx, batch.Batch{Rec: rows(memory.DefaultAllocator, 0, 1), Ack: a.New()}); err != nil {
				t.Fatalf("Write after a failure reported through the ack: %v", err)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if n, errs := a.Get(); n != 2 || len(errs) != 2 {
				t.Fatalf("acks %d, errors %v", n, errs)
			}
		})
	}
}

func TestRealSinkReadBackWithKcat(t *testing.T) {
	brokers := testenv.Kafka(t)
	kafkatest.Kcat(t)
	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 3, topic); err != nil {
		t.Fatal(err)
	}
	write(t, brokers, topic, 1234, Config{Key: keyProg(t, "id"), Compression: "snappy", Partitioner: "hash", MaxInFlight: 8, Retries: 5})
	lines := kafkatest.Consume(t, brokers, topic)
	var values [][]byte
	for _, l := range lines {
		values = append(values, []byte(l))
	}
	checkValues(t, values, 1234)
}

// TestHeadersAndUndeliverableToDeadLetters: headers come from expressions
// (a null one is left out); a message the producer refuses goes to the dead
// letters with its reason while the rest of its batch is delivered, and the
// batch is acknowledged without error.
func TestHeadersAndUndeliverableToDeadLetters(t *testing.T) {
	for _, txn := range []bool{false, true} {
		t.Run(fmt.Sprint("transactional=", txn), func(t *testing.T) { testHeadersAndDeadLetters(t, txn) })
	}
}

// testHeadersAndDeadLetters: in transactional mode the oversized message
// goes to the dead letters before the transaction (a refusal by the
// producer would abort it), with the same outcome.
func testHeadersAndDeadLetters(t *testing.T, txn bool) {
	alloc := optest.Allocator(t)
	topic := kafkatest.Topic(t)
	addrs, release, err := kafkaclient.ResolveBrokers([]string{"embedded"}, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	dl := &optest.DeadLetters{}
	cfg := Config{Brokers: []string{"embedded"}, Topic: topic, MaxInFlight: 2, Retries: 1, MaxMessage: 200,
		Headers:       []Header{{Name: "origin", Value: keyProg(t, `"flowrun"`)}, {Name: "name", Value: keyProg(t, "name")}},
		Transactional: txn, TransactionalID: "test-" + topic, TransactionTimeout: 10 * time.Second, TransactionProducers: 1}
	s, err := New(op.Resources{Node: "out", Alloc: alloc, DeadLetters: dl}, cfg, schema)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(alloc, schema)
	for i := range 10 {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		switch i {
		case 3:
			b.Field(1).(*array.StringBuilder).Append(strings.Repeat("x", 500)) // over max_message_bytes
		case 4:
			b.Field(1).AppendNull()
		default:
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprint("n", i))
		}
	}
	rec := b.NewRecordBatch()
	b.Release()
	var a optest.Acks
	ctx := context.Background()
	if err := s.Write(ctx, batch.Batch{Rec: rec, Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, errs := a.Get(); n != 1 || len(errs) > 0 {
		t.Fatalf("acks %d, errors %v", n, errs)
	}
	if len(dl.Records()) != 1 || !strings.Contains(dl.Records()[0], `"id":3`) || !strings.Contains(dl.Reasons()[0], "deliver to "+topic) {
		t.Fatalf("dead letters %v %v", dl.Records(), dl.Reasons())
	}
	msgs := readAll(t, addrs, topic)
	if len(msgs) != 9 {
		t.Fatalf("%d messages delivered, want 9", len(msgs))
	}
	for _, m := range msgs {
		h := map[string]string{}
		for _, rh := range m.Headers {
			h[string(rh.Key)] = string(rh.Value)
		}
		var r row
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatal(err)
		}
		if h["origin"] != "flowrun" {
			t.Fatalf("message %d headers %v", r.ID, h)
		}
		if _, has := h["name"]; has == (r.Name == nil) || (r.Name != nil && h["name"] != *r.Name) {
			t.Fatalf("message %d: name header %v for name %v", r.ID, h, r.Name)
		}
	}
}

// TestOversizeRejectsBatchUnwritten: a batch holding a message larger than
// max_message_bytes fails its ack with op.RejectedRows naming that row and
// none of the batch reaches the topic; the sink keeps serving.
func TestOversizeRejectsBatchUnwritten(t *testing.T) {
	topic := kafkatest.Topic(t)
	addrs, release, err := kafkaclient.ResolveBrokers([]string{"embedded"}, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	alloc := optest.Allocator(t)
	s, err := New(op.Resources{Node: "out", Alloc: alloc}, Config{Brokers: []string{"embedded"}, Topic: topic, MaxMessage: 1000, MaxInFlight: 2, Retries: 1}, schema)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(alloc, schema)
	for i, name := range []string{"a", strings.Repeat("\u2028", 200), "c"} { // U+2028 is escaped to 6 bytes
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(name)
	}
	rec := b.NewRecordBatch()
	b.Release()
	var a optest.Acks
	ctx := context.Background()
	if err := s.Write(ctx, batch.Batch{Rec: rec, Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, 10, 12), Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	n, errs := a.Get()
	var rj *op.RejectedRows
	if n != 2 || len(errs) != 1 || !errors.As(errs[0], &rj) {
		t.Fatalf("acks %d, errors %v; want one op.RejectedRows", n, errs)
	}
	if rj.Rows != 3 || fmt.Sprint(rj.Index) != "[1]" || !strings.Contains(rj.Reasons[0], "larger than max_message_bytes (1000)") {
		t.Fatalf("rejected %+v", rj)
	}
	var ids []string
	for _, m := range readAll(t, addrs, topic) {
		var r row
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, fmt.Sprint(r.ID))
	}
	sort.Strings(ids)
	if strings.Join(ids, ",") != "10,11" {
		t.Fatalf("topic holds ids %v, want only the second batch's 10,11", ids)
	}
}

// TestPartialFailureNamesFailedRows: when the broker refuses the messages
// of one partition and stores those of the other, the batch's ack fails
// with op.FailedRows naming exactly the rows that were not stored.
func TestPartialFailureNamesFailedRows(t *testing.T) {
	c := kafkatest.NewPartialCluster(t, "t")
	c.Code.Store(int32(kerr.PolicyViolation.Code)) // not retriable
	s, err := New(op.Resources{Node: "out", Alloc: memory.DefaultAllocator},
		Config{Brokers: c.Addrs, Topic: "t", Compression: "none", Partitioner: "roundrobin", MaxInFlight: 2, Retries: 1, RetryBackoff: 10 * time.Millisecond}, schema)
	if err != nil {
		t.Fatal(err)
	}
	var a optest.Acks
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Write(ctx, batch.Batch{Rec: rows(memory.DefaultAllocator, 0, 20), Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	n, errs := a.Get()
	var fr *op.FailedRows
	if n != 1 || len(errs) != 1 || !errors.As(errs[0], &fr) {
		t.Fatalf("acks %d, errors %v; want one op.FailedRows", n, errs)
	}
	if fr.Rows != 20 || len(fr.Index) == 0 || len(fr.Index) == 20 || !errors.Is(fr, sarama.ErrPolicyViolation) {
		t.Fatalf("failed rows %+v", fr)
	}
	failed := map[int64]bool{}
	for _, i := range fr.Index {
		failed[int64(i)] = true
	}
	var stored []int64
	for _, m := range readAll(t, c.Addrs, "t") {
		var r row
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, r.ID)
		if failed[r.ID] {
			t.Errorf("row %d is named failed but was stored", r.ID)
		}
	}
	if len(stored)+len(fr.Index) != 20 {
		t.Errorf("%d rows stored and %d named failed, want 20 in all", len(stored), len(fr.Index))
	}
}
