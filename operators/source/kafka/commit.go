package kafka

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/flowrun/flowrun/runtime/op"
)

// commitEvery is how often marked offsets are sent to the group
// coordinator.
const commitEvery = time.Second

// commits sends the session's marked offsets to the broker every
// commitEvery (instead of sarama's auto-commit loop, whose commits cannot be
// timed) and measures flowrun_kafka_commit_latency_seconds: the time from
// the acknowledgement that made an offset committable (its mark) to the
// return of the OffsetCommit request that carried it, answered by the
// group coordinator. sarama's Commit is synchronous: it returns once the
// broker's answer has been handled. A commit during which sarama reported an
// error is not observed, and its offsets count toward the next commit (from
// their first mark). An offset marked while a commit is in flight counts
// toward the next commit.
type commits struct {
	clock op.Clock
	hist  op.Histogram
	// errs counts the errors sarama reported on the consumer group's
	// error channel (commit errors arrive there, per partition).
	errs atomic.Int64

	mu      sync.Mutex
	pending time.Time // first mark since the last commit; zero: none
}

func newCommits(clock op.Clock, m op.Metrics) *commits {
	return &commits{clock: clock, hist: m.Histogram("flowrun_kafka_commit_latency_seconds",
		"Time from a batch's acknowledgement making its offset committable to the broker answering the offset commit that carries it.", op.LatencyBuckets)}
}

// marked records that an offset was marked now.
func (c *commits) marked() {
	c.mu.Lock()
	if c.pending.IsZero() {
		c.pending = c.clock.Now()
	}
	c.mu.Unlock()
}

// commit sends what sess has marked and observes how long the oldest of it
// waited.
func (c *commits) commit(sess sarama.ConsumerGroupSession) {
	c.mu.Lock()
	since := c.pending
	c.pending = time.Time{}
	c.mu.Unlock()
	errs := c.errs.Load()
	sess.Commit()
	if since.IsZero() {
		return
	}
	if c.errs.Load() != errs {
		// Not confirmed: these offsets go with the next commit.
		c.mu.Lock()
		if c.pending.IsZero() || since.Before(c.pending) {
			c.pending = since
		}
		c.mu.Unlock()
		return
	}
	c.hist.Observe(c.clock.Now().Sub(since).Seconds())
}

// loop commits every commitEvery until stop is closed; the handler owns it
// (started in Setup, stopped and joined in Cleanup, before sarama closes the
// session's offset manager).
func (c *commits) loop(sess sarama.ConsumerGroupSession, stop <-chan struct{}) {
	t := time.NewTicker(commitEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.commit(sess)
		case <-stop:
			return
		}
	}
}
