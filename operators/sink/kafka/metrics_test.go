package kafka

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/metrics"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/op/optest"
)

// TestProduceLatencyMetric: each batch the broker acknowledged is timed
// once in flowrun_kafka_produce_latency_seconds.
func TestProduceLatencyMetric(t *testing.T) {
	topic := kafkatest.Topic(t)
	reg := metrics.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	alloc := memory.NewGoAllocator()
	s, err := New(op.Resources{Node: "out", Alloc: alloc, Metrics: reg}, Config{Brokers: []string{"embedded"}, Topic: topic, MaxInFlight: 2, Retries: 3}, schema)
	if err != nil {
		t.Fatal(err)
	}
	var a optest.Acks
	ctx := context.Background()
	for from := 0; from < 300; from += 100 {
		if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, from, from+100), Ack: a.New()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, errs := a.Get(); got != 3 || len(errs) > 0 {
		t.Fatalf("acks %d, errors %v", got, errs)
	}
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "flowrun_kafka_produce_latency_seconds_count 3\n") {
		t.Errorf("want 3 timed batches:\n%s", b)
	}
}
