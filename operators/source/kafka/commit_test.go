package kafka

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	"github.com/flowrun/flowrun/runtime/metrics"
	"github.com/flowrun/flowrun/runtime/op"
)

// scrape reads /metrics and returns the value of every sample whose line
// starts with prefix (name and labels up to the value), summed.
func scrape(t *testing.T, url, name string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum, found = sum+v, true
	}
	return sum, found
}

// TestCommitLatencyOnRealKafka reads a topic of the real Kafka with a
// group, holding the sinks' acknowledgements for a while: no commit latency
// is observed while nothing is acknowledged (the periodic commits find
// nothing marked), then, once the acks complete, the group's committed
// offsets reach the end (read back from the broker) and /metrics reports
// flowrun_kafka_commit_latency_seconds with a plausible mean (the commit
// loop runs every second, so ack to confirmed commit is at most about a
// second plus the round trip).
func TestCommitLatencyOnRealKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 2, topic); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 400 {
		lines = append(lines, fmt.Sprintf(`{"id": %d, "name": "n%d"}`, i, i))
	}
	kafkatest.Produce(t, brokers, topic, lines)

	reg := metrics.New(testLogger(t))
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	group := "flowrun-test-" + topic
	cfg := jsonConfig(brokers, topic, group)
	schema := OutputSchema(cfg)
	out := &kafkatest.Output{S: schema, Hold: true}
	defer out.Release()
	r := resources(t, memory.DefaultAllocator, 100, false)
	r.Metrics = reg
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- New(r, cfg, schema).Run(ctx, out) }()
	out.WaitBatches(t, 4, 30*time.Second)

	// Two commit ticks with every ack held: nothing marked, nothing timed.
	time.Sleep(2*commitEvery + 200*time.Millisecond)
	if n, _ := scrape(t, srv.URL, "flowrun_kafka_commit_latency_seconds_count"); n != 0 {
		t.Fatalf("%v commits timed before any batch was acknowledged", n)
	}
	acked := 0
	waitUntil(t, 30*time.Second, "400 rows emitted and acknowledged", func() bool {
		for ; acked < out.Batches(); acked++ {
			out.Ack(acked, nil)
		}
		return len(out.Int64s("id")) == 400
	})
	waitUntil(t, 15*time.Second, "the group's offsets committed to the end", func() bool {
		total := int64(0)
		for _, off := range kafkatest.Committed(t, brokers, group, topic) {
			total += off
		}
		return total == 400
	})
	var count, sum float64
	waitUntil(t, 10*time.Second, "a commit latency in /metrics", func() bool {
		count, _ = scrape(t, srv.URL, "flowrun_kafka_commit_latency_seconds_count")
		sum, _ = scrape(t, srv.URL, "flowrun_kafka_commit_latency_seconds_sum")
		return count > 0
	})
	mean := sum / count
	t.Logf("commit latency: %v commits timed, mean %.3fs", count, mean)
	if mean <= 0 || mean > (commitEvery+2*time.Second).Seconds() {
		t.Errorf("mean commit latency %.3fs: want within (0, %s]", mean, commitEvery+2*time.Second)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestCommitsTiming: a commit observes the time since the first mark it
// carries; a commit with nothing marked observes nothing; a commit during
// which sarama reported an error observes nothing and hands its first mark
// to the next commit.
func TestCommitsTiming(t *testing.T) {
	clock := op.NewManualClock(time.Unix(1000, 0))
	h := &histogram{}
	c := &commits{clock: clock, hist: h}
	sess := &fakeSession{}

	c.commit(sess) // nothing marked
	if len(h.v) != 0 || sess.commits != 1 {
		t.Fatalf("observed %v after %d commits with nothing marked", h.v, sess.commits)
	}
	c.marked()
	clock.Advance(300 * time.Millisecond)
	c.marked() // later marks do not move the start
	clock.Advance(200 * time.Millisecond)
	c.commit(sess)
	if len(h.v) != 1 || h.v[0] != 0.5 {
		t.Fatalf("observed %v, want [0.5]", h.v)
	}

	c.marked()
	clock.Advance(time.Second)
	sess.onCommit = func() { c.errs.Add(1) } // the broker refused it
	c.commit(sess)
	if len(h.v) != 1 {
		t.Fatalf("a failed commit was observed: %v", h.v)
	}
	sess.onCommit = nil
	clock.Advance(time.Second)
	c.commit(sess)
	if len(h.v) != 2 || h.v[1] != 2 {
		t.Fatalf("observed %v, want the retried commit timed from the first mark (2s)", h.v)
	}
}

type histogram struct{ v []float64 }

func (h *histogram) Observe(v float64) { h.v = append(h.v, v) }

// fakeSession is a session whose Commit only counts (nothing else is called).
type fakeSession struct {
	sarama.ConsumerGroupSession
	commits  int
	onCommit func()
}

func (s *fakeSession) Commit() {
	s.commits++
	if s.onCommit != nil {
		s.onCommit()
	}
}
