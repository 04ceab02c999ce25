// Package kafkaclient is the one place (with the kafka source and sink) that
// knows the Kafka client library, github.com/IBM/sarama, and the in-process
// broker, github.com/twmb/franz-go/pkg/kfake. It builds sarama
// configurations with flowrun's defaults, resolves a node's `brokers` list
// (where "embedded" stands for an in-process broker shared by every node of
// the process, see Embedded), creates topics and reads partition marks.
//
// Sarama types cross this package's boundary only towards the kafka
// operators; nothing else in flowrun imports sarama.
package kafkaclient

import (
	"errors"
	"fmt"
	"io"
	"log"
	"strings"
	"time"

	"github.com/IBM/sarama"
	metrics "github.com/rcrowley/go-metrics"
)

func init() {
	// Sarama logs to a global logger; flowrun reports through the node's
	// slog logger instead, so keep sarama quiet.
	sarama.Logger = log.New(io.Discard, "", 0)
	sarama.DebugLogger = log.New(io.Discard, "", 0)
	// go-metrics meters start a process-wide ticker goroutine that never
	// ends; flowrun has its own counters.
	metrics.UseNilMetrics = true
	// Bound what one compressed record batch may inflate to (a compression
	// bomb must not take the process's memory). With a bound sarama also
	// decompresses snappy into a pooled buffer instead of growing a new one
	// chunk by chunk, which was a fifth of the kafka source's CPU.
	sarama.MaxDecompressedBatchSize = MaxDecompressedBatch
}

// MaxDecompressedBatch is the most bytes one compressed record batch may
// decompress to (far above a broker's default message.max.bytes of 1 MiB).
const MaxDecompressedBatch = 64 << 20

// Version is the Kafka protocol version flowrun speaks: 2.8, which both
// Kafka 4.x (which dropped protocol versions before 2.1) and kfake accept.
var Version = sarama.V2_8_0_0

// NewConfig returns a sarama configuration with flowrun's defaults: the
// protocol Version, the client id, and metadata retries with backoff.
func NewConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = Version
	if clientID == "" {
		clientID = "flowrun"
	}
	c.ClientID = sanitizeClientID(clientID)
	c.Metadata.Retry.Max = 5
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Net.DialTimeout = 10 * time.Second
	return c
}

// sanitizeClientID keeps the characters Kafka accepts in a client id.
func sanitizeClientID(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Partition names one topic partition.
type Partition struct {
	Topic     string
	Partition int32
}

func (p Partition) String() string { return fmt.Sprintf("%s/%d", p.Topic, p.Partition) }

// Marks are a partition's low (oldest available) and high (next to be
// written) offsets.
type Marks struct{ Low, High int64 }

// PartitionMarks returns the current marks of every partition of topics.
// A topic that does not exist is an error.
func PartitionMarks(client sarama.Client, topics []string) (map[Partition]Marks, error) {
	out := map[Partition]Marks{}
	for _, t := range topics {
		if err := client.RefreshMetadata(t); err != nil {
			return nil, fmt.Errorf("topic %q: %w", t, err)
		}
		parts, err := client.Partitions(t)
		if err != nil {
			return nil, fmt.Errorf("topic %q: %w", t, err)
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("topic %q has no partitions", t)
		}
		for _, p := range parts {
			hi, err := client.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				return nil, fmt.Errorf("high-water mark of %s/%d: %w", t, p, err)
			}
			lo, err := client.GetOffset(t, p, sarama.OffsetOldest)
			if err != nil {
				return nil, fmt.Errorf("low-water mark of %s/%d: %w", t, p, err)
			}
			out[Partition{t, p}] = Marks{Low: lo, High: hi}
		}
	}
	return out, nil
}

// CreateTopics creates the topics that do not exist yet on the cluster at
// addrs, with partitions partitions and replication factor 1 (the flowrun
// development setups have one broker). Existing topics are left alone.
func CreateTopics(addrs []string, partitions int32, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	cfg := NewConfig("flowrun-admin")
	admin, err := sarama.NewClusterAdmin(addrs, cfg)
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, t := range topics {
		err := admin.CreateTopic(t, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
		var te *sarama.TopicError
		if err != nil && !(errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists) && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create topic %q: %w", t, err)
		}
	}
	return nil
}
