// Command bareconsumer is the transport limit for flowrun's kafka source:
// it reads every partition of a topic from the oldest offset to the
// high-water mark it had at start with bare sarama partition consumers (no
// group, no decoding), counts records and value bytes, and prints one JSON
// line: records, bytes, seconds (from connecting to the last record),
// records/s, MB/s. -decode also decodes each value into Arrow record
// batches of 1024 rows with flowrun's own decoder (operators/codec/jsondec,
// the schema of bench/kafka/kafka_to_discard.yaml), releasing each batch:
// the like-for-like client, doing what the kafka source does minus the
// consumer group, the commits and the pipeline.
//
//	go run ./bench/kafka/bareconsumer -brokers 127.0.0.1:9092 -topic t
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/operators/codec/jsondec"
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

// postSchema is the post schema of bench/kafka/kafka_to_discard.yaml.
var postSchema = func() *arrow.Schema {
	str := arrow.BinaryTypes.String
	i64 := arrow.PrimitiveTypes.Int64
	var fields []arrow.Field
	for _, f := range []struct {
		name string
		t    arrow.DataType
	}{{"index", i64}, {"unique_id", str}, {"title", str}, {"description", str}, {"poster_name", str},
		{"follower_count", str}, {"tag_list", str}, {"is_image_or_video", str}, {"image_src", str},
		{"downloaded", i64}, {"save_location", str}, {"category", str}} {
		fields = append(fields, arrow.Field{Name: f.name, Type: f.t, Nullable: true})
	}
	return arrow.NewSchema(fields, nil)
}()

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap brokers, comma-separated")
	topic := flag.String("topic", "bench.bare", "topic")
	decode := flag.Bool("decode", false, "also decode every value into Arrow with flowrun's jsondec")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed part here")
	flag.Parse()

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
	// The same decompression bound as flowrun's kafkaclient sets.
	sarama.MaxDecompressedBatchSize = 64 << 20
	cpu0 := cpuSeconds()
	start := time.Now()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "bareconsumer"
	client, err := sarama.NewClient(strings.Split(*brokers, ","), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		log.Fatal(err)
	}
	defer cons.Close()
	parts, err := client.Partitions(*topic)
	if err != nil {
		log.Fatal(err)
	}
	var records, bytes atomic.Int64
	var wg sync.WaitGroup
	for _, p := range parts {
		hi, err := client.GetOffset(*topic, p, sarama.OffsetNewest)
		if err != nil {
			log.Fatal(err)
		}
		lo, err := client.GetOffset(*topic, p, sarama.OffsetOldest)
		if err != nil {
			log.Fatal(err)
		}
		if hi <= lo {
			continue
		}
		pc, err := cons.ConsumePartition(*topic, p, lo)
		if err != nil {
			log.Fatal(err)
		}
		wg.Go(func() {
			defer pc.Close()
			var n, b int64
			var dec *jsondec.Decoder
			if *decode {
				dec = jsondec.NewDecoder(postSchema, memory.DefaultAllocator, jsondec.Options{})
				defer dec.Release()
			}
			for m := range pc.Messages() {
				n++
				b += int64(len(m.Value))
				if dec != nil {
					if err := dec.Append(m.Value); err != nil {
						log.Fatalf("offset %d: %v", m.Offset, err)
					}
					if dec.Rows() >= 1024 {
						dec.Flush().Release()
					}
				}
				if m.Offset+1 >= hi {
					break
				}
			}
			if dec != nil && dec.Rows() > 0 {
				dec.Flush().Release()
			}
			records.Add(n)
			bytes.Add(b)
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0
	tool := "bareconsumer"
	if *decode {
		tool = "bareconsumer-decode"
	}
	r := Result{Tool: tool, Records: records.Load(), Bytes: bytes.Load(), Seconds: secs, CPU: cpu,
		RPS: float64(records.Load()) / secs, MBps: float64(bytes.Load()) / secs / 1e6}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}
