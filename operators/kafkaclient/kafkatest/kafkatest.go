// Package kafkatest holds helpers for the kafka operators' tests: an
// op.Output that collects batches and controls their acks, and wrappers
// around the kcat command-line client for integration tests.
package kafkatest

import (
	"bytes"
	"context"
	"fmt"
	"go.uber.org/goleak"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/runtime/batch"
)

// Output is an op.Output that keeps every emitted batch. With Hold set it
// keeps the acks for the test to complete (Ack); otherwise it acks at once.
// OnEmit, when set, runs after each Emit with the number of batches so far.
type Output struct {
	S      *arrow.Schema
	Hold   bool
	OnEmit func(n int)

	mu      sync.Mutex
	Recs    []arrow.RecordBatch
	Acks    []*batch.Ack
	Rejects [][2]string
	emitted chan struct{}
}

// Schema implements op.Output.
func (o *Output) Schema() *arrow.Schema { return o.S }

// Emit implements op.Output.
func (o *Output) Emit(ctx context.Context, b batch.Batch) error {
	o.mu.Lock()
	if b.Rec != nil {
		o.Recs = append(o.Recs, b.Rec)
	}
	n := len(o.Recs)
	if o.Hold {
		o.Acks = append(o.Acks, b.Ack)
	}
	if o.emitted == nil {
		o.emitted = make(chan struct{}, 1)
	}
	ch := o.emitted
	o.mu.Unlock()
	if !o.Hold {
		b.Ack.Done(nil)
	}
	select {
	case ch <- struct{}{}:
	default:
	}
	if o.OnEmit != nil {
		o.OnEmit(n)
	}
	return nil
}

// Reject implements op.Output, keeping the record and reason.
func (o *Output) Reject(record, reason string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.Rejects = append(o.Rejects, [2]string{record, reason})
	return nil
}

// Batches returns the number of batches emitted so far.
func (o *Output) Batches() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.Recs)
}

// WaitBatches waits until at least n batches were emitted.
func (o *Output) WaitBatches(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for o.Batches() < n {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %d batches, got %d", timeout, n, o.Batches())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ack completes the i-th held ack with err.
func (o *Output) Ack(i int, err error) {
	o.mu.Lock()
	a := o.Acks[i]
	o.mu.Unlock()
	a.Done(err)
}

// Int64s returns every value of the named int64 column.
func (o *Output) Int64s(col string) []int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []int64
	for _, r := range o.Recs {
		idx := r.Schema().FieldIndices(col)
		if len(idx) == 0 {
			continue
		}
		c := r.Column(idx[0])
		for i := 0; i < c.Len(); i++ {
			if c.IsNull(i) {
				continue
			}
			out = append(out, c.(interface{ Value(int) int64 }).Value(i))
		}
	}
	return out
}

// Release drops the kept records.
func (o *Output) Release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.Recs {
		r.Release()
	}
	o.Recs = nil
}

// Kcat returns the path of kcat, skipping the test when it is missing
// (failing it when services are required, as under CI).
func Kcat(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		if testenv.Required(os.LookupEnv) {
			t.Fatalf("kcat is required for Kafka integration tests: %v", err)
		}
		t.Skipf("kcat not installed: %v", err)
	}
	return p
}

// Produce writes lines to topic with kcat, one message per line.
func Produce(t testing.TB, brokers []string, topic string, lines []string) {
	t.Helper()
	kcat := Kcat(t)
	cmd := exec.Command(kcat, "-P", "-b", strings.Join(brokers, ","), "-t", topic)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, stderr.String())
	}
}

// Consume reads topic from the beginning to its current end with kcat and
// returns the message values.
func Consume(t testing.TB, brokers []string, topic string) []string {
	t.Helper()
	kcat := Kcat(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Join(brokers, ","), "-t", topic, "-e", "-o", "beginning", "-q")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat -C: %v: %s", err, stderr.String())
	}
	var out []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Read reads every record of topic a consumer with isolation level iso
// receives, up to the end it can reach now (the last stable offset when
// reading committed); transaction markers and aborted records take offsets
// but are never delivered, so it asks kafkaclient.HasData whether any
// record is left before waiting for one.
func Read(t *testing.T, addrs []string, topic string, iso sarama.IsolationLevel) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := kafkaclient.NewConfig("test")
	cfg.Consumer.IsolationLevel = iso
	c, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	marks, err := kafkaclient.EndMarks(c, []string{topic}, iso)
	if err != nil {
		t.Fatal(err)
	}
	// The consumer has a client of its own: HasData's fetches would queue
	// behind the consumer's long polls on a shared connection.
	cons, err := sarama.NewConsumer(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var out []*sarama.ConsumerMessage
	for p, m := range marks {
		next := m.Low
		var pc sarama.PartitionConsumer
		for {
			more, err := kafkaclient.HasData(c, p, next, m.High, iso)
			if err != nil {
				t.Fatal(err)
			}
			if !more {
				break
			}
			if pc == nil {
				if pc, err = cons.ConsumePartition(topic, p.Partition, next); err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
			}
			select {
			case msg := <-pc.Messages():
				out = append(out, msg)
				next = msg.Offset + 1
			case <-time.After(10 * time.Second):
				t.Fatalf("partition %d: no record after offset %d within 10s", p.Partition, next)
			}
		}
	}
	return out
}

// Committed returns the offsets group has committed for the partitions of
// topic (partition → next offset; partitions without a commit are absent).
func Committed(t testing.TB, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, kafkaclient.NewConfig("test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	resp, err := admin.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for p, b := range resp.Blocks[topic] {
		if b != nil && b.Offset >= 0 {
			out[p] = b.Offset
		}
	}
	return out
}

// Topic returns a topic name unique to this test run.
func Topic(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("flowrun-%s-%d", strings.ToLower(name), time.Now().UnixNano())
}

// VerifyTestMain runs a Kafka test package's tests and fails it on leaked
// goroutines, ignoring sarama's per-broker circuit breaker: opened by tests
// that take a broker away, it sleeps out its 10s timeout after Close.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/eapache/go-resiliency/breaker.(*Breaker).timer"))
}
