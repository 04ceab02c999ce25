// Command bareconsumer is the transport limit for flowrun's kafka source:
// it reads every partition of a topic from the oldest offset to the
// high-water mark it had at start with bare sarama partition consumers (no
// group, no decoding), counts records and value bytes, and prints one JSON
// line: records, bytes, seconds (from connecting to the last record),
// records/s, MB/s. -decode also unmarshals each value into a post struct
// with encoding/json, to show what decoding alone costs.
//
//	go run ./bench/kafka/bareconsumer -brokers 127.0.0.1:9092 -topic t
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// Result is the printed line.
type Result struct {
	Tool    string  `json:"tool"`
	Records int64   `json:"records"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	RPS     float64 `json:"records_per_s"`
	MBps    float64 `json:"mb_per_s"`
}

type post struct {
	Index          *int64  `json:"index"`
	UniqueID       *string `json:"unique_id"`
	Title          *string `json:"title"`
	Description    *string `json:"description"`
	PosterName     *string `json:"poster_name"`
	FollowerCount  *string `json:"follower_count"`
	TagList        *string `json:"tag_list"`
	IsImageOrVideo *string `json:"is_image_or_video"`
	ImageSrc       *string `json:"image_src"`
	Downloaded     *int64  `json:"downloaded"`
	SaveLocation   *string `json:"save_location"`
	Category       *string `json:"category"`
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap brokers, comma-separated")
	topic := flag.String("topic", "bench.bare", "topic")
	decode := flag.Bool("decode", false, "also json.Unmarshal every value")
	flag.Parse()

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
			var v post
			for m := range pc.Messages() {
				n++
				b += int64(len(m.Value))
				if *decode {
					v = post{}
					if err := json.Unmarshal(m.Value, &v); err != nil {
						log.Fatalf("offset %d: %v", m.Offset, err)
					}
				}
				if m.Offset+1 >= hi {
					break
				}
			}
			records.Add(n)
			bytes.Add(b)
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	r := Result{Tool: "bareconsumer", Records: records.Load(), Bytes: bytes.Load(), Seconds: secs,
		RPS: float64(records.Load()) / secs, MBps: float64(bytes.Load()) / secs / 1e6}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}
