package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
)

// txnProduce writes to partition 0 of topic with a transactional producer:
// ids [0, 5) committed, [100, 103) aborted, [5, 7) committed. The
// partition then ends with a commit marker: its last offset holds no
// record a consumer receives.
func txnProduce(t *testing.T, addrs []string, topic string) {
	t.Helper()
	cfg := kafkaclient.NewConfig("test-txn")
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Transaction.ID = "txn-" + topic
	cfg.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(from, to int, commit bool) {
		t.Helper()
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0,
				Value: sarama.StringEncoder(fmt.Sprintf(`{"id": %d}`, i))}); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	send(0, 5, true)
	send(100, 103, false)
	send(5, 7, true)
}

// TestOnceEndsAtTransactionMarker: --once on a topic whose last offset is
// a transaction marker ends (it used to wait for that offset forever),
// delivers only committed records, and commits the end offset, so a second
// run ends at once with nothing read.
func TestOnceEndsAtTransactionMarker(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs func(t *testing.T, topic string) ([]string, []string) // dial, node config
	}{
		{"real", func(t *testing.T, topic string) ([]string, []string) {
			brokers := testenv.Kafka(t)
			if err := kafkaclient.CreateTopics(brokers, 1, topic); err != nil {
				t.Fatal(err)
			}
			return brokers, brokers
		}},
		{"kfake", func(t *testing.T, topic string) ([]string, []string) {
			return embedded(t, topic), []string{"embedded"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := kafkatest.Topic(t)
			addrs, brokers := tc.addrs(t, topic)
			txnProduce(t, addrs, topic)
			client, err := sarama.NewClient(addrs, kafkaclient.NewConfig("test"))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			marks, err := kafkaclient.EndMarks(client, []string{topic}, sarama.ReadCommitted)
			if err != nil {
				t.Fatal(err)
			}
			end := marks[kafkaclient.Partition{Topic: topic, Partition: 0}].High
			// 10 records and 3 markers.
			if end != 13 {
				t.Fatalf("end offset %d, want 13", end)
			}
			// Offsets: 0-4 records, 5 commit, 6-8 aborted, 9 abort, 10-11
			// records, 12 commit.
			p0 := kafkaclient.Partition{Topic: topic, Partition: 0}
			for _, c := range []struct {
				from, to int64
				iso      sarama.IsolationLevel
				want     bool
			}{
				{12, end, sarama.ReadCommitted, false},
				{5, end, sarama.ReadCommitted, true},
				{5, 10, sarama.ReadCommitted, false},
				{5, 10, sarama.ReadUncommitted, true},
				{11, 12, sarama.ReadCommitted, true},
			} {
				more, err := kafkaclient.HasData(client, p0, c.from, c.to, c.iso)
				if err != nil || more != c.want {
					t.Fatalf("HasData [%d, %d) isolation %d = %v, %v; want %v", c.from, c.to, c.iso, more, err, c.want)
				}
			}

			group := "g-" + topic
			cfg := jsonConfig(brokers, topic, group)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := runSource(t, ctx, resources(t, memory.DefaultAllocator, 100, true), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			if ctx.Err() != nil {
				t.Fatal("--once did not end before the deadline")
			}
			checkIDs(t, out.Int64s("id"), 0, 7)
			if got := committed(t, addrs, group, topic, 0); got != end {
				t.Fatalf("committed %d, want the end offset %d", got, end)
			}
			out2, err := runSource(t, ctx, resources(t, memory.DefaultAllocator, 100, true), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer out2.Release()
			if n := len(out2.Int64s("id")); n != 0 {
				t.Fatalf("second run read %d records", n)
			}

			// read_uncommitted also sees the aborted records.
			cfg = jsonConfig(brokers, topic, "")
			cfg.Isolation = "read_uncommitted"
			out3, err := runSource(t, ctx, resources(t, memory.DefaultAllocator, 100, true), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer out3.Release()
			if n := len(out3.Int64s("id")); n != 10 {
				t.Fatalf("read_uncommitted read %d records, want 10", n)
			}
		})
	}
}

// TestOnceIgnoresRecordsAfterTheStart: --once reads each partition up to
// its end offset as it was at start; records written after that belong to
// the next run, even when they arrive in the same fetch.
func TestOnceIgnoresRecordsAfterTheStart(t *testing.T) {
	topic := kafkatest.Topic(t)
	addrs := embedded(t, topic)
	rec := func(from, to int) []string {
		var vals []string
		for i := from; i < to; i++ {
			vals = append(vals, fmt.Sprintf(`{"id": %d}`, i))
		}
		return vals
	}
	produceTo(t, addrs, topic, 0, rec(0, 5)...)
	group := "g-" + topic
	cfg := jsonConfig([]string{"embedded"}, topic, group)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := OutputSchema(cfg)
	src := New(resources(t, memory.DefaultAllocator, 100, true), cfg, schema)
	src.onceMarked = func() { produceTo(t, addrs, topic, 0, rec(5, 8)...) }
	out := &kafkatest.Output{S: schema}
	defer out.Release()
	if err := src.Run(ctx, out); err != nil {
		t.Fatal(err)
	}
	checkIDs(t, out.Int64s("id"), 0, 5)
	if got := committed(t, addrs, group, topic, 0); got != 5 {
		t.Fatalf("committed %d, want 5", got)
	}
	out2, err := runSource(t, ctx, resources(t, memory.DefaultAllocator, 100, true), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer out2.Release()
	checkIDs(t, out2.Int64s("id"), 5, 8)
}
