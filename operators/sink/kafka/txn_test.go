package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/op/optest"
)

// readIso returns the sorted ids of the rows readMsgs reads.
func readIso(t *testing.T, addrs []string, topic string, iso sarama.IsolationLevel) []int64 {
	t.Helper()
	var ids []int64
	for _, msg := range kafkatest.Read(t, addrs, topic, iso) {
		var r row
		if err := json.Unmarshal(msg.Value, &r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// TestTransactionAbortsPartialBatch: the broker of one partition refuses
// the produce (kafkatest.PartialCluster: NOT_ENOUGH_REPLICAS, retriable,
// until sarama's retries run out) while the other stores its messages. In
// transactional mode the batch's ack fails whole (not op.FailedRows:
// nothing of it counts as stored), a read_committed consumer sees none of
// it although some of its messages are in the log, and writing the batch
// again once the broker is back stores each row exactly once. (A
// non-retriable error fails the messages of both brokers at about the same
// time, and sarama 1.61's transaction manager then reads its last error
// outside its lock while another goroutine sets it: a race inside sarama
// that -race reports.)
func TestTransactionAbortsPartialBatch(t *testing.T) {
	c := kafkatest.NewPartialCluster(t, "t")
	alloc := optest.Allocator(t)
	s, err := New(op.Resources{Node: "out", Alloc: alloc},
		Config{Brokers: c.Addrs, Topic: "t", Compression: "none", Partitioner: "roundrobin", MaxInFlight: 2, Retries: 1, RetryBackoff: 10 * time.Millisecond,
			Transactional: true, TransactionalID: "test-{node}", TransactionTimeout: 10 * time.Second, TransactionProducers: 1}, schema)
	if err != nil {
		t.Fatal(err)
	}
	var a optest.Acks
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := func(n int) {
		t.Helper()
		for {
			if got, _ := a.Get(); got == n {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("ack %d never came", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, 0, 20), Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	wait(1)
	_, errs := a.Get()
	var fr *op.FailedRows
	var rj *op.RejectedRows
	if len(errs) != 1 || errors.As(errs[0], &fr) || errors.As(errs[0], &rj) || !errors.Is(errs[0], sarama.ErrNotEnoughReplicas) {
		t.Fatalf("ack errors %v; want the whole batch failed by the refused produce", errs)
	}
	if !strings.Contains(errs[0].Error(), "aborted") {
		t.Fatalf("ack error %q does not say the transaction was aborted", errs[0])
	}
	if c.Refused.Load() == 0 {
		t.Fatal("the broker of partition 1 was never asked")
	}
	// Partition 0 stored its messages (they are in the log) ...
	if got := readIso(t, c.Addrs, "t", sarama.ReadUncommitted); len(got) == 0 || len(got) == 20 {
		t.Fatalf("read_uncommitted sees %v; want the messages of partition 0 only", got)
	}
	// ... but in an aborted transaction.
	if got := readIso(t, c.Addrs, "t", sarama.ReadCommitted); len(got) != 0 {
		t.Fatalf("read_committed sees %v of an aborted transaction", got)
	}

	c.Failing.Store(false) // the broker is back; the client retries
	if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, 0, 20), Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	wait(2)
	if _, errs := a.Get(); len(errs) != 1 {
		t.Fatalf("ack errors %v; want only the first batch's", errs)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal("second Close:", err)
	}
	if got, want := fmt.Sprint(readIso(t, c.Addrs, "t", sarama.ReadCommitted)), fmt.Sprint(seq(0, 20)); got != want {
		t.Fatalf("read_committed sees %s, want each row once: %s", got, want)
	}
	if s.StoredRows() != 20 {
		t.Fatalf("StoredRows %d, want the 20 committed", s.StoredRows())
	}
}

func seq(from, to int) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, int64(i))
	}
	return out
}

// TestTransactionDeadline: a transaction whose messages are not stored
// within transaction_deadline (the broker holds the produce) fails its
// batch at once, is never committed, and the sink goes on: the next batch
// is committed and is all a read_committed consumer sees.
func TestTransactionDeadline(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var held atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if held.CompareAndSwap(false, true) {
			time.Sleep(time.Second) // the first produce is answered late
		}
		return nil, nil, false
	})
	alloc := optest.Allocator(t)
	s, err := New(op.Resources{Node: "out", Alloc: alloc},
		Config{Brokers: c.ListenAddrs(), Topic: "t", Compression: "none", Partitioner: "hash", MaxInFlight: 2, Retries: 1, RetryBackoff: 10 * time.Millisecond,
			Transactional: true, TransactionalID: "test-deadline", TransactionTimeout: 10 * time.Second, TransactionDeadline: 200 * time.Millisecond, TransactionProducers: 1}, schema)
	if err != nil {
		t.Fatal(err)
	}
	var a optest.Acks
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, 0, 10), Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	for n, _ := a.Get(); n < 1; n, _ = a.Get() {
		if ctx.Err() != nil {
			t.Fatal("no ack")
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(t0)
	_, errs := a.Get()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "transaction_deadline") {
		t.Fatalf("ack errors %v, want the deadline", errs)
	}
	if took > 900*time.Millisecond {
		t.Fatalf("the late batch was answered after %s, not at its deadline", took)
	}
	if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, 10, 20), Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, errs := a.Get(); n != 2 || len(errs) != 1 {
		t.Fatalf("acks %d, errors %v; want the second batch stored", n, errs)
	}
	if got, want := fmt.Sprint(readIso(t, c.ListenAddrs(), "t", sarama.ReadCommitted)), fmt.Sprint(seq(10, 20)); got != want {
		t.Fatalf("read_committed sees %s, want only the second batch %s", got, want)
	}
}

// TestTransactionCommitFails: the broker stores every message but refuses
// the commit (EndTxn answered INVALID_TXN_STATE, not performed). The
// batch's ack fails, the replaced producer's initialisation aborts the
// transaction, a read_committed consumer sees none of the batch, and the
// next batch is committed.
func TestTransactionCommitFails(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var refuse atomic.Bool
	refuse.Store(true)
	var refused atomic.Int64
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		er := req.(*kmsg.EndTxnRequest)
		if !refuse.Load() || !er.Commit {
			return nil, nil, false
		}
		refused.Add(1)
		resp := er.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.InvalidTxnState.Code
		return resp, nil, true
	})
	alloc := optest.Allocator(t)
	s, err := New(op.Resources{Node: "out", Alloc: alloc},
		Config{Brokers: c.ListenAddrs(), Topic: "t", Compression: "none", Partitioner: "roundrobin", MaxInFlight: 2, Retries: 1, RetryBackoff: 10 * time.Millisecond,
			Transactional: true, TransactionalID: "test-commit", TransactionTimeout: 10 * time.Second, TransactionProducers: 1}, schema)
	if err != nil {
		t.Fatal(err)
	}
	var a optest.Acks
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, 0, 10), Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	for n, _ := a.Get(); n < 1; n, _ = a.Get() {
		if ctx.Err() != nil {
			t.Fatal("no ack")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, errs := a.Get(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "commit") || refused.Load() == 0 {
		t.Fatalf("ack errors %v (commits refused %d), want the failed commit", errs, refused.Load())
	}
	if got := readIso(t, c.ListenAddrs(), "t", sarama.ReadUncommitted); len(got) != 10 {
		t.Fatalf("read_uncommitted sees %v, want the 10 messages in the log", got)
	}
	if got := readIso(t, c.ListenAddrs(), "t", sarama.ReadCommitted); len(got) != 0 {
		t.Fatalf("read_committed sees %v of a transaction whose commit failed", got)
	}
	refuse.Store(false)
	if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, 10, 20), Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, errs := a.Get(); n != 2 || len(errs) != 1 {
		t.Fatalf("acks %d, errors %v; want the second batch stored", n, errs)
	}
	if got, want := fmt.Sprint(readIso(t, c.ListenAddrs(), "t", sarama.ReadCommitted)), fmt.Sprint(seq(10, 20)); got != want {
		t.Fatalf("read_committed sees %s, want only the second batch %s", got, want)
	}
}

// TestTransactionCommitAnswerLost: the broker performs the commit but its
// answer is lost (here: the commit is performed through another
// connection while the producer's own EndTxn is answered with an error).
// The sink replaces the producer, finds the transaction committed and
// acknowledges the batch: a 503 here would make the client send posts
// that are already stored.
func TestTransactionCommitAnswerLost(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	side, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	var lost, inner atomic.Bool
	var commits atomic.Int64 // EndTxn commits from the producer
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		er := req.(*kmsg.EndTxnRequest)
		if !inner.Load() && er.Commit {
			commits.Add(1)
		}
		if inner.Load() || !er.Commit || lost.Load() {
			return nil, nil, false
		}
		lost.Store(true)
		// Perform the commit through another connection, then answer the
		// producer as if it had failed.
		done := make(chan error, 1)
		go func() {
			inner.Store(true)
			defer inner.Store(false)
			cp := *er
			resp, err := cp.RequestWith(context.Background(), side)
			if err == nil {
				err = kerr.ErrorForCode(resp.ErrorCode)
			}
			done <- err
		}()
		var sideErr error
		c.SleepControl(func() { sideErr = <-done })
		if sideErr != nil {
			t.Errorf("commit through the side connection: %v", sideErr)
		}
		resp := er.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.InvalidTxnState.Code
		return resp, nil, true
	})
	alloc := optest.Allocator(t)
	s, err := New(op.Resources{Node: "out", Alloc: alloc},
		Config{Brokers: c.ListenAddrs(), Topic: "t", Compression: "none", Partitioner: "roundrobin", MaxInFlight: 2, Retries: 1, RetryBackoff: 10 * time.Millisecond,
			Transactional: true, TransactionalID: "test-lost", TransactionTimeout: 10 * time.Second, TransactionProducers: 1}, schema)
	if err != nil {
		t.Fatal(err)
	}
	var a optest.Acks
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, 0, 10), Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !lost.Load() || commits.Load() != 1 {
		t.Fatalf("commit answers lost %v, commits sent %d; want one commit, its answer lost (no retry)", lost.Load(), commits.Load())
	}
	if n, errs := a.Get(); n != 1 || len(errs) != 0 {
		t.Fatalf("acks %d, errors %v; want the batch acknowledged: its commit happened", n, errs)
	}
	if got, want := fmt.Sprint(readIso(t, c.ListenAddrs(), "t", sarama.ReadCommitted)), fmt.Sprint(seq(0, 10)); got != want {
		t.Fatalf("read_committed sees %s, want %s", got, want)
	}
	if s.StoredRows() != 10 {
		t.Fatalf("StoredRows %d, want 10", s.StoredRows())
	}
}
