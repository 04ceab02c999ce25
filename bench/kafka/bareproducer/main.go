// Command bareproducer is the transport limit for flowrun's kafka sink: it
// produces N generated Pinterest posts (operators/source/generate/posts,
// AppendJSON, the emulator's bytes) to a topic with a bare sarama
// AsyncProducer configured as the sink is (idempotent, acks=all, one open
// request per broker, snappy, no linger: Flush.Frequency and Flush.Bytes 0,
// hash partitioner on unique_id) and prints one JSON line: records, bytes,
// seconds, records/s, MB/s.
//
// By default each post is generated and JSON-encoded inside the timed
// region, just before it is handed to the producer, as flowrun's generate →
// kafka pipeline does, and like flowrun's sink it encodes 1024 posts back
// to back into one buffer and builds their messages in one slice (no
// allocation per message for the value). -pregen generates and encodes all posts before the
// clock starts (the tool is then "bareproducer-pregen": the pure transport
// limit). -linger 5ms sets the flush frequency (and 512 KiB flush bytes) the
// sink used before it dropped its linger.
//
// -create recreates the topic with -partitions partitions first (deleting it
// if it exists); -n 0 with -create only (re)creates it.
//
//	go run ./bench/kafka/bareproducer -brokers 127.0.0.1:9092 -topic t -n 1000000 -create
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"

	"github.com/flowrun/flowrun/operators/source/generate/posts"
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
	topic := flag.String("topic", "bench.bare", "topic")
	n := flag.Int("n", 1000000, "posts to produce")
	seed := flag.Int64("seed", 1, "generator seed")
	create := flag.Bool("create", false, "delete and recreate the topic first")
	parts := flag.Int("partitions", 4, "partitions when creating")
	pregen := flag.Bool("pregen", false, "generate and encode every post before the clock starts")
	linger := flag.Duration("linger", 0, "producer Flush.Frequency (0: none, as the kafka sink)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed part here")
	flag.Parse()
	addrs := strings.Split(*brokers, ",")
	if *create {
		if err := recreate(addrs, *topic, int32(*parts)); err != nil {
			log.Fatal(err)
		}
	}
	if *n == 0 {
		return
	}

	gen := posts.New(*seed)
	var p posts.Post
	var buf []byte
	var ends []int
	var keys []string
	if *pregen {
		buf = make([]byte, 0, *n*800)
		ends = make([]int, *n)
		keys = make([]string, *n)
		for i := range *n {
			gen.Next(&p)
			buf = posts.AppendJSON(buf, &p)
			ends[i] = len(buf)
			keys[i] = p.UniqueID
		}
	}

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = "bareproducer"
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Flush.Frequency = *linger
	if *linger > 0 {
		cfg.Producer.Flush.Bytes = 512 << 10
	}
	cfg.Producer.Compression = sarama.CompressionSnappy
	cfg.Producer.Partitioner = sarama.NewHashPartitioner

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
	prod, err := sarama.NewAsyncProducer(addrs, cfg)
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var ok int
		var first error
		succ, errs := prod.Successes(), prod.Errors()
		for ok < *n {
			select {
			case <-succ:
				ok++
			case e := <-errs:
				ok++
				if first == nil {
					first = e.Err
				}
			}
		}
		done <- first
	}()
	var nbytes int64
	if *pregen {
		from := 0
		for i := range *n {
			var key sarama.Encoder
			if keys[i] != "" {
				key = sarama.StringEncoder(keys[i])
			}
			prod.Input() <- &sarama.ProducerMessage{Topic: *topic, Key: key, Value: sarama.ByteEncoder(buf[from:ends[i]:ends[i]])}
			from = ends[i]
		}
		nbytes = int64(len(buf))
	} else {
		// Generate and encode inside the clock, 1024 posts at a time, into
		// one buffer per chunk (the producer holds it until sent).
		const chunk = 1024
		size := chunk * 1024
		ends := make([]int, chunk)
		keys := make([]string, chunk)
		for done := 0; done < *n; done += chunk {
			c := min(chunk, *n-done)
			buf := make([]byte, 0, size)
			for i := range c {
				gen.Next(&p)
				buf = posts.AppendJSON(buf, &p)
				ends[i] = len(buf)
				keys[i] = ""
				if !p.MissingUniqueID && p.UniqueID != "" {
					keys[i] = p.UniqueID
				}
			}
			size = cap(buf)
			nbytes += int64(len(buf))
			msgs := make([]sarama.ProducerMessage, c)
			from := 0
			for i := range c {
				msgs[i] = sarama.ProducerMessage{Topic: *topic, Value: sarama.ByteEncoder(buf[from:ends[i]:ends[i]])}
				if keys[i] != "" {
					msgs[i].Key = sarama.StringEncoder(keys[i])
				}
				from = ends[i]
				prod.Input() <- &msgs[i]
			}
		}
	}
	if err := <-done; err != nil {
		log.Fatalf("delivery failed: %v", err)
	}
	secs := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0
	_ = prod.Close()
	tool := "bareproducer"
	if *pregen {
		tool = "bareproducer-pregen"
	}
	r := Result{Tool: tool, Records: int64(*n), Bytes: nbytes, Seconds: secs, CPU: cpu,
		RPS: float64(*n) / secs, MBps: float64(nbytes) / secs / 1e6}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func recreate(addrs []string, topic string, parts int32) error {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	admin, err := sarama.NewClusterAdmin(addrs, cfg)
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := admin.DeleteTopic(topic); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return fmt.Errorf("delete %s: %w", topic, err)
	}
	// Deletion is asynchronous: retry creation until the old topic is gone.
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: parts, ReplicationFactor: 1}, false)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("create %s: %w", topic, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
