package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/op"

	_ "github.com/flowrun/flowrun/operators/sink/file"
	_ "github.com/flowrun/flowrun/operators/sink/kafka"
	_ "github.com/flowrun/flowrun/operators/source/generate"
	_ "github.com/flowrun/flowrun/operators/source/kafka"
	_ "github.com/flowrun/flowrun/operators/transform/aggregate"
)

func load(t *testing.T, text string) *validate.Result {
	t.Helper()
	res, errs := validate.Load("p.yaml", []byte(text), func(string) (string, bool) { return "", false }, op.Default)
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	return res
}

func count(t *testing.T, addrs []string, topic string) int64 {
	t.Helper()
	c, err := sarama.NewClient(addrs, kafkaclient.NewConfig("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	marks, err := kafkaclient.PartitionMarks(c, []string{topic})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, m := range marks {
		n += m.High - m.Low
	}
	return n
}

// TestPipelineEmbedded runs generate → kafka sink, then (--once) kafka
// source → kafka sink, all on the embedded broker, through the executor.
func TestPipelineEmbedded(t *testing.T) {
	in, out := kafkatest.Topic(t)+"-in", kafkatest.Topic(t)+"-out"
	addrs, release, err := kafkaclient.ResolveBrokers([]string{"embedded"})
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	ingest := load(t, `flowrun: 1
name: ingest
sources:
  posts: {generate: {count: 1500, seed: 3}}
sinks:
  k: {from: posts, kafka: {brokers: embedded, topic: `+in+`, key: unique_id}}
`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := exec.New(ingest, exec.Options{BatchRows: 200})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, addrs, in); n != 1500 {
		t.Fatalf("%d messages in %s", n, in)
	}

	relay := load(t, `flowrun: 1
name: relay
schemas:
  post: {unique_id: string, index: string}
sources:
  k: {kafka: {brokers: [embedded], topic: `+in+`, group: relay, schema: post, metadata: true}}
sinks:
  out: {from: k, kafka: {brokers: embedded, topic: `+out+`, compression: zstd}}
`)
	p, err = exec.New(relay, exec.Options{BatchRows: 100, Once: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, addrs, out); n != 1500 {
		t.Fatalf("%d messages in %s", n, out)
	}
}

func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`sources: {k: {kafka: {brokers: embedded, topic: t}}}`, "needs 'schema'"},
		{`sources: {k: {kafka: {brokers: [embedded, "h:1"], topic: t, format: raw}}}`, "must be the only entry"},
		{`sources: {k: {kafka: {brokers: localhost, format: raw}}}`, "not host:port"},
		{`sources: {k: {kafka: {brokers: "h:1", format: raw}}}`, "needs 'topic'"},
		{`sources: {k: {kafka: {brokers: "h:1", topic: t, format: raw, schema: {a: string}}}}`, "format raw has no schema"},
		{`sources: {k: {kafka: {brokers: "h:1", topic: t, format: raw, max_in_flight: 0}}}`, "'max_in_flight' must be at least 1"},
		{`sources: {k: {kafka: {brokers: "h:1", topic: t, format: raw, max_in_flight_bytes: 0}}}`, "'max_in_flight_bytes' must be at least 1"},
		{`sources: {k: {kafka: {brokers: "h:1", topic: t, format: raw, isolation: none}}}`, "read_committed"},
	} {
		text := "flowrun: 1\nname: x\n" + tc.yaml + "\nsinks: {s: {from: k, kafka: {brokers: embedded, topic: o}}}\n"
		_, errs := validate.Load("p.yaml", []byte(text), func(string) (string, bool) { return "", false }, op.Default)
		if !strings.Contains(errs.Render(), tc.want) {
			t.Errorf("%s: errors %q, want %q", tc.yaml, errs.Render(), tc.want)
		}
	}
}

// TestOnceBehindHeldAcksCommitsAtOnce: a --once run whose source feeds an
// aggregate (which holds every input's ack until its input ends) on the
// real Kafka. The source ends its input when every partition has emitted its
// last batch, so the aggregate's acks arrive while the claims drain: the run
// ends without waiting drain_timeout (30s here), and the group's committed
// offsets are the topic's end offsets, so the next --once run reads nothing.
func TestOnceBehindHeldAcksCommitsAtOnce(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 400 {
		lines = append(lines, fmt.Sprintf(`{"unique_id": "u%d", "category": "c%d"}`, i, i%7))
	}
	kafkatest.Produce(t, brokers, topic, lines)
	out := filepath.Join(t.TempDir(), "counts.jsonl")
	group := topic + "-agg"
	noVars := func(string) (string, bool) { return "", false }
	pipeline, errs := validate.Options{Once: true}.Load("p.yaml", []byte(`flowrun: 1
name: held
schemas:
  post: {unique_id: string, category: string}
sources:
  k: {kafka: {brokers: [`+brokers[0]+`], topic: `+topic+`, group: `+group+`, schema: post, drain_timeout: 30s}}
transforms:
  counts: {from: k, aggregate: {key: [category], columns: {posts: count()}}}
sinks:
  out: {from: counts, file: {path: `+out+`}}
`), noVars, op.Default)
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for run := 1; run <= 2; run++ {
		p, err := exec.New(pipeline, exec.Options{BatchRows: 50, Once: true})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := p.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d > 20*time.Second {
			t.Errorf("run %d took %s: the claims waited for acks the aggregate gives only at the end of its input", run, d)
		}
		committed := kafkatest.Committed(t, brokers, group, topic)
		var sum int64
		for _, off := range committed {
			sum += off
		}
		if sum != 400 {
			t.Fatalf("run %d: committed offsets %v (sum %d), want the end offsets of the 400 records", run, committed, sum)
		}
	}
	// The first run counted every post; the second read nothing and
	// appended nothing.
	text, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for _, l := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		var row struct{ Posts int }
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		total += row.Posts
	}
	if total != 400 {
		t.Fatalf("counts add up to %d posts over both runs, want 400:\n%s", total, text)
	}
}
