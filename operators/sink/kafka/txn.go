package kafka

// The transactional mode (transactional: true). Each batch the sink
// writes, together with the batches already waiting behind it, is one
// Kafka transaction of a transactional producer: its acks complete only
// after the commit, and on any failure (a message not stored after the
// retries, a failed commit, a fenced producer) the transaction is aborted
// and every batch in it fails whole, none of its messages visible to
// read_committed consumers. So an HTTP request answered 503 left nothing
// behind that its retry would duplicate, even when Kafka failed after
// storing some of its messages.
//
// Transactions of one producer are serial; the queue of waiting batches
// (up to max_in_flight) is joined into the next transaction, so the cost of
// a transaction (AddPartitionsToTxn, EndTxn and the markers) is paid once
// per group of batches. transaction_producers > 1 runs that many producers,
// each with its own transactional id, taking groups from the same queue.
//
// A commit that fails may have been performed (its answer lost through all
// the retries): the replacing producer settles it, and one of its messages
// read with read_committed tells whether it was committed, so the answer
// is still the truth (transact, committed).
//
// After a failed transaction the producer is replaced rather than asked to
// abort: the new one's InitProducerId with the same transactional id makes
// the coordinator abort what the old one left open (and fences it), without
// an EndTxn that would take all its retries when the broker is gone. A
// process killed mid-transaction leaves it open until the next process
// with the same id starts, or transaction_timeout.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/runtime/op"
)

// txnPool owns the transactional producers and the queue of batches they
// take. Write puts a batch on the queue after taking one of the sink's
// slots, so the queue (as long as max_in_flight) never blocks.
type txnPool struct {
	s     *Sink
	addrs []string
	queue chan *tracker
	log   *slog.Logger

	committed, aborted, replaced op.Counter
}

// txnProducer is one transactional producer and the goroutine running its
// transactions. p is recreated after a fatal error; only run touches it.
type txnProducer struct {
	pool *txnPool
	id   string
	p    sarama.AsyncProducer  // nil until (re)opened
	done chan struct{}         // closed when p's results goroutine returns
	pc   func() *sarama.Config // a fresh configuration for each open
}

// TransactionalID expands {pipeline}, {node} and {host} in id.
func TransactionalID(id, pipeline, node string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return strings.NewReplacer("{pipeline}", pipeline, "{node}", node, "{host}", host).Replace(id)
}

// newTxnPool opens s's transactional producers (failing if any cannot
// initialise its transactional id) and starts their goroutines, owned by
// s.wg.
func newTxnPool(s *Sink, addrs []string) (*txnPool, error) {
	log := s.res.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := s.res.MetricsOrNop()
	const txHelp = "Kafka transactions of a transactional kafka sink, by result: committed, aborted (none of its batches stored)."
	pool := &txnPool{s: s, addrs: addrs, queue: make(chan *tracker, s.cfg.MaxInFlight), log: log,
		committed: m.Counter("flowrun_kafka_transactions_total", txHelp, op.Label{Name: "result", Value: "committed"}),
		aborted:   m.Counter("flowrun_kafka_transactions_total", txHelp, op.Label{Name: "result", Value: "aborted"}),
		replaced:  m.Counter("flowrun_kafka_producers_replaced_total", "Transactional producers a kafka sink replaced after a failed transaction (the new one aborts what the old one left open)."),
	}
	base := TransactionalID(s.cfg.TransactionalID, s.cfg.Pipeline, s.res.Node)
	var tps []*txnProducer
	for i := range max(1, s.cfg.TransactionProducers) {
		id := base
		if i > 0 {
			id += "." + strconv.Itoa(i)
		}
		tp := &txnProducer{pool: pool, id: id, pc: func() *sarama.Config {
			pc := producerConfig(s.cfg, s.res.Node)
			pc.Producer.Transaction.ID = id
			pc.Producer.Transaction.Timeout = s.cfg.TransactionTimeout
			pc.Producer.Transaction.Retry.BackoffFunc = txnBackoff
			pc.Producer.Transaction.Retry.Max = txnRetries
			// Each transactional retry looks the coordinator up again; with
			// the default metadata retries, a broker that is gone would
			// cost seconds per retry before a batch could be answered.
			pc.Metadata.Retry.Max = 1
			return pc
		}}
		if err := tp.open(); err != nil {
			for _, tp := range tps {
				tp.drop()
			}
			return nil, fmt.Errorf("kafka: transactional producer %q for %s: %w", id, strings.Join(addrs, ","), err)
		}
		tps = append(tps, tp)
	}
	for _, tp := range tps {
		s.wg.Add(1)
		go tp.run()
	}
	return pool, nil
}

// deadline is the transaction deadline, or its default when unset (Config
// built by hand).
func (c Config) deadline() time.Duration {
	if c.TransactionDeadline <= 0 {
		return DefaultTransactionDeadline
	}
	return c.TransactionDeadline
}

// txnRetries bounds the retries of a transactional request (about 2.5s
// with txnBackoff): past that the transaction fails (and the producer is
// created again) rather than hold every batch queued behind it.
const txnRetries = 12

// txnBackoff is the wait before retry number retries of a transactional
// request: from 2ms, doubling, at most 500ms. The common retry is AddPartitionsToTxn answered
// CONCURRENT_TRANSACTIONS while the broker still writes the markers of the
// previous commit, which takes a few milliseconds: sarama's fixed 20ms
// (100ms for the others) would add that to every transaction.
func txnBackoff(retries, _ int) time.Duration {
	return min(2*time.Millisecond<<min(retries, 8), 500*time.Millisecond)
}

// close ends the producers' goroutines once the queue is drained; the
// sink's wg tells when they are gone.
func (pool *txnPool) close() { close(pool.queue) }

// open creates the producer; sarama initialises the transactional id (and
// fences any other producer with it) before it returns.
func (tp *txnProducer) open() error {
	p, err := sarama.NewAsyncProducer(tp.pool.addrs, tp.pc())
	if err != nil {
		return err
	}
	tp.p, tp.done = p, make(chan struct{})
	go func() {
		defer close(tp.done)
		tp.pool.s.results(p)
	}()
	return nil
}

// drop closes the producer and waits for its results goroutine.
func (tp *txnProducer) drop() {
	if tp.p == nil {
		return
	}
	tp.p.AsyncClose()
	<-tp.done
	tp.p = nil
}

// run commits the queued batches, a group at a time, until the queue is
// closed and empty.
func (tp *txnProducer) run() {
	defer tp.pool.s.wg.Done()
	defer tp.drop()
	var group []*tracker
	for t := range tp.pool.queue {
		group = append(group[:0], t)
	join:
		for len(group) < cap(tp.pool.queue) {
			select {
			case t, ok := <-tp.pool.queue:
				if !ok {
					break join
				}
				group = append(group, t)
			default:
				break join
			}
		}
		tp.transact(group)
		clear(group)
	}
}

// transact writes group's messages in one transaction and commits it, or
// aborts it on the first failure, and settles every batch of group: with
// nil only once the commit is confirmed. A failed group is answered before
// the abort, which may take its retries when the broker is gone: the
// transaction is never committed, whether the abort gets through or the
// broker aborts it later (fenced by the next producer, or timed out).
func (tp *txnProducer) transact(group []*tracker) {
	pool := tp.pool
	n := 0
	for _, t := range group {
		n += len(t.send)
	}
	settle := func(err error) {
		if err != nil && !group[0].answered {
			pool.aborted.Add(1)
		}
		for _, t := range group {
			if err == nil {
				pool.s.produceLatency.Observe(time.Since(t.sent).Seconds())
			}
			t.settle(err)
		}
	}
	if tp.p == nil {
		if err := tp.open(); err != nil {
			settle(fmt.Errorf("kafka: transactional producer %q: %w", tp.id, err))
			return
		}
	}
	if err := tp.p.BeginTxn(); err != nil {
		settle(fmt.Errorf("kafka: begin transaction: %w", err))
		tp.restart("begin transaction", err)
		return
	}
	now := time.Now()
	for _, t := range group {
		t.sent = now
		for _, m := range t.send {
			tp.p.Input() <- m
		}
	}
	// Wait for every message's report (the results goroutine counts them):
	// until then the producer holds the batches' buffers.
	// Past the deadline the transaction will not be committed: its batches
	// are answered then, and it ends as a failed one once the messages are
	// back.
	var err error
	deadline := time.NewTimer(pool.s.cfg.deadline())
	defer deadline.Stop()
	late := deadline.C
	for _, t := range group {
		for waiting := true; waiting; {
			select {
			case <-t.back:
				waiting = false
			case <-late:
				late = nil
				err = fmt.Errorf("kafka: transaction of %d messages to %s not committed: not stored within transaction_deadline (%s)", n, pool.s.cfg.Topic, pool.s.cfg.deadline())
				pool.aborted.Add(1)
				for _, t := range group {
					t.answer(err)
				}
			}
		}
		t.mu.Lock()
		if err == nil {
			err = t.err
		}
		t.mu.Unlock()
	}
	if err == nil {
		if err = tp.p.CommitTxn(); err == nil {
			pool.committed.Add(1)
			pool.s.stored.Add(int64(n))
			settle(nil)
			return
		}
		// The commit may have been performed with its answer lost through
		// all the retries: a new producer with the same id settles the
		// transaction (the coordinator finishes a commit it began, aborts
		// anything else), then one of its messages tells which it was.
		tp.restart("failed commit", err)
		committed, cerr := tp.committed(group)
		switch {
		case cerr != nil:
			settle(fmt.Errorf("kafka: commit of a transaction of %d messages to %s not confirmed (%v), and whether it happened is unknown: %w", n, pool.s.cfg.Topic, cerr, err))
		case committed:
			pool.log.Warn("kafka: a commit reported as failed was performed", "transactional_id", tp.id, "messages", n, "err", err)
			pool.committed.Add(1)
			pool.s.stored.Add(int64(n))
			settle(nil)
		default:
			settle(fmt.Errorf("kafka: transaction of %d messages to %s aborted after a failed commit, none of them committed: %w", n, pool.s.cfg.Topic, err))
		}
		return
	}
	settle(fmt.Errorf("kafka: transaction of %d messages to %s aborted, none of them committed: %w", n, pool.s.cfg.Topic, err))
	tp.restart("failed transaction", err)
}

// committed tells whether group's transaction, which a replacing producer
// has settled, was committed: whether a read_committed reader receives one
// of its messages. An error means it cannot tell.
func (tp *txnProducer) committed(group []*tracker) (bool, error) {
	if tp.p == nil {
		return false, errors.New("no producer could settle the transaction")
	}
	var p kafkaclient.Partition
	at := int64(-1)
	for _, t := range group {
		if t.at >= 0 {
			p, at = kafkaclient.Partition{Topic: tp.pool.s.cfg.Topic, Partition: t.part}, t.at
			break
		}
	}
	if at < 0 {
		return false, errors.New("no message of the transaction was stored")
	}
	cfg := kafkaclient.NewConfig("flowrun-" + tp.pool.s.res.Node)
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	client, err := sarama.NewClient(tp.pool.addrs, cfg)
	if err != nil {
		return false, err
	}
	defer client.Close()
	marks, err := kafkaclient.EndMarks(client, []string{p.Topic}, sarama.ReadCommitted)
	if err != nil {
		return false, err
	}
	if marks[p].High <= at {
		// Still open: the new producer's initialisation did not end it.
		return false, fmt.Errorf("partition %d: last stable offset %d not past the transaction's offset %d", p.Partition, marks[p].High, at)
	}
	return kafkaclient.HasData(client, p, at, at+1, sarama.ReadCommitted)
}

// restart replaces the producer after a failed transaction instead of
// aborting it with EndTxn: the new producer's InitProducerId with the same
// transactional id makes the coordinator abort what the old one left open,
// which is the same outcome, and an EndTxn to a broker that is gone would
// hold this producer (and the batches queued for it) for all its retries.
// When the new one cannot be created (Kafka unreachable) the next
// transaction tries again; meanwhile the broker aborts the open transaction
// after transaction_timeout.
func (tp *txnProducer) restart(after string, err error) {
	tp.pool.log.Warn("kafka: transactional producer replaced", "transactional_id", tp.id, "after", after, "err", err)
	tp.pool.replaced.Add(1)
	tp.drop()
	if err := tp.open(); err != nil {
		tp.pool.log.Warn("kafka: transactional producer not created", "transactional_id", tp.id, "err", err)
	}
}
