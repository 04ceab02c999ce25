package kafkatest

import (
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// PartialCluster is an in-process Kafka-protocol cluster (kfake) of two
// brokers whose topic has one partition on each. While Failing is set,
// the broker of partition 1 answers produce requests with Code
// (NOT_ENOUGH_REPLICAS unless set: retriable, a broker that lost its
// replicas) and partition 0 stores them: a Kafka that fails part-way through a batch. Tests outside the
// kafka folders use it without importing kfake.
type PartialCluster struct {
	Addrs   []string
	Failing atomic.Bool
	Code    atomic.Int32 // the error code partition 1 answers; set before producing
	Refused atomic.Int64 // produce requests refused so far
}

// NewPartialCluster starts the cluster with topic (closed when t ends),
// failing from the start.
func NewPartialCluster(t testing.TB, topic string) *PartialCluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for p := range int32(2) {
		if err := c.MoveTopicPartition(topic, p, p); err != nil {
			t.Fatal(err)
		}
	}
	pc := &PartialCluster{Addrs: c.ListenAddrs()}
	pc.Failing.Store(true)
	pc.Code.Store(int32(kerr.NotEnoughReplicas.Code))
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !pc.Failing.Load() || c.CurrentNode() != 1 {
			return nil, nil, false
		}
		pc.Refused.Add(1)
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = p.Partition
				sp.ErrorCode = int16(pc.Code.Load())
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return pc
}
