// Command sinkbench measures flowrun's kafka sink (operators/sink/kafka)
// against the transport limit on equal terms with bareproducer -pregen: it
// generates N posts into Arrow record batches of 1024 rows before its clock
// starts (the same posts, seed and columns as bareproducer's), then starts
// the clock, creates the sink (idempotent producer, acks=all, snappy, hash
// partitioner keyed by unique_id: the sink's defaults), writes every batch
// and waits until each batch is acknowledged and the sink is closed. What
// the sink adds to the bare producer is its own work: Arrow → JSON, keys,
// size checks and per-batch acknowledgement. It prints one JSON line like
// the bare tools, tool "flowrun-sink".
//
//	go run ./bench/kafka/sinkbench -brokers 127.0.0.1:9092 -topic t -n 1000000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/operators/sink/kafka"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Result is the printed line.
type Result struct {
	Tool    string  `json:"tool"`
	Records int64   `json:"records"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_seconds"`
	RPS     float64 `json:"records_per_s"`
	MBps    float64 `json:"mb_per_s"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap brokers, comma-separated")
	topic := flag.String("topic", "bench.sink", "topic (created by the caller)")
	n := flag.Int("n", 1000000, "posts to produce")
	seed := flag.Int64("seed", 1, "generator seed")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed part here")
	flag.Parse()

	schema := posts.Schema()
	gen := posts.New(*seed)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	var recs []arrow.RecordBatch
	for done := 0; done < *n; done += 1024 {
		for range min(1024, *n-done) {
			gen.AppendTo(b)
		}
		recs = append(recs, b.NewRecordBatch())
	}
	b.Release()
	key, errs := exprc.Compile(spec.ExprSrc{Src: "unique_id"}, schema)
	if len(errs) > 0 {
		log.Fatal(errs)
	}
	cfg := kafka.Config{Brokers: strings.Split(*brokers, ","), Topic: *topic, Key: key, MaxMessage: 1_000_000,
		Compression: "snappy", Partitioner: "hash", MaxInFlight: 8, Retries: 10, RetryBackoff: 250 * time.Millisecond}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	res := op.Resources{Node: "sink", Alloc: memory.DefaultAllocator, Clock: op.SystemClock{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BatchRows: 1024}
	s, err := kafka.New(res, cfg, schema)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	var acked int
	var firstErr error
	ctx := context.Background()
	for _, rec := range recs {
		ack := batch.NewAck(func(err error) {
			mu.Lock()
			defer mu.Unlock()
			acked++
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
		if err := s.Write(ctx, batch.Batch{Rec: rec, Ack: ack, Final: true}); err != nil {
			log.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		log.Fatal(err)
	}
	secs := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0
	mu.Lock()
	defer mu.Unlock()
	if acked != len(recs) || firstErr != nil {
		log.Fatalf("%d of %d batches acknowledged, first error %v", acked, len(recs), firstErr)
	}
	r := Result{Tool: "flowrun-sink", Records: int64(*n), Seconds: secs, CPU: cpu, RPS: float64(*n) / secs}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}
