package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/op"

	_ "github.com/flowrun/flowrun/operators/sink/kafka"
	_ "github.com/flowrun/flowrun/operators/source/generate"
	_ "github.com/flowrun/flowrun/operators/source/kafka"
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
