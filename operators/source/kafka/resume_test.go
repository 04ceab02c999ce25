package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	"github.com/flowrun/flowrun/runtime/batch"
)

// store is a sink that stores rows and their positions in one step, as a
// PositionStore sink does in one transaction. It is strict: it writes
// whatever it gets, so a record read twice is stored twice and counted.
type store struct {
	mu      sync.Mutex
	next    map[int32]int64 // partition → next offset not stored
	ids     map[int64]int   // id → times stored
	rows    int
	errs    []string // positions that do not follow what is stored
	resumes int      // Resume calls
}

func newStore() *store { return &store{next: map[int32]int64{}, ids: map[int64]int{}} }

func (st *store) write(b batch.Batch, topic string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ps := b.Ack.Positions()
	if len(ps) != 1 {
		st.errs = append(st.errs, fmt.Sprintf("%d positions on one batch: %v", len(ps), ps))
	}
	for _, p := range ps {
		if p.Source != "src" || p.Topic != topic || p.First > p.Last {
			st.errs = append(st.errs, fmt.Sprintf("position %+v", p))
		}
		if next, ok := st.next[p.Partition]; ok && p.First != next {
			st.errs = append(st.errs, fmt.Sprintf("partition %d: batch starts at %d, next to store is %d", p.Partition, p.First, next))
		}
		st.next[p.Partition] = p.Last + 1
	}
	if b.Rec != nil {
		ids := b.Rec.Column(0).(*array.Int64)
		for i := range ids.Len() {
			st.ids[ids.Value(i)]++
		}
		st.rows += ids.Len()
	}
}

func (st *store) resume(_ context.Context, topic string, parts []int32) (map[int32]int64, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.resumes++
	out := map[int32]int64{}
	for _, p := range parts {
		if n, ok := st.next[p]; ok {
			out[p] = n
		}
	}
	return out, nil
}

// check fails unless ids [0, n) are stored exactly once each and every
// batch's position followed the stored ones.
func (st *store) check(t *testing.T, n int) {
	t.Helper()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.errs) > 0 {
		t.Fatalf("positions: %v", st.errs)
	}
	dup, missing := 0, 0
	for id := range int64(n) {
		switch c := st.ids[id]; {
		case c == 0:
			missing++
		case c > 1:
			dup += c - 1
		}
	}
	if missing > 0 || dup > 0 || len(st.ids) != n {
		t.Fatalf("stored %d rows, %d distinct ids: %d of [0, %d) missing, %d duplicates", st.rows, len(st.ids), missing, n, dup)
	}
}

func (st *store) stored() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.rows
}

// storeOutput hands each emitted batch to a writer goroutine that stores
// it and then acknowledges it; hold makes the writer wait (the batches stay
// in flight) until release.
type storeOutput struct {
	s     *arrow.Schema
	st    *store
	topic string
	ch    chan batch.Batch
	done  chan struct{}

	mu   sync.Mutex
	gate chan struct{} // closed while the writer may write
	mine int           // rows this output stored
}

func newStoreOutput(s *arrow.Schema, st *store, topic string) *storeOutput {
	o := &storeOutput{s: s, st: st, topic: topic, ch: make(chan batch.Batch, 16), done: make(chan struct{}), gate: make(chan struct{})}
	close(o.gate)
	go func() {
		defer close(o.done)
		for b := range o.ch {
			o.mu.Lock()
			g := o.gate
			o.mu.Unlock()
			<-g
			o.st.write(b, o.topic)
			o.mu.Lock()
			o.mine += b.Rows()
			o.mu.Unlock()
			b.Release(nil)
		}
	}()
	return o
}

func (o *storeOutput) hold() {
	o.mu.Lock()
	o.gate = make(chan struct{})
	o.mu.Unlock()
}

func (o *storeOutput) release() {
	o.mu.Lock()
	close(o.gate)
	o.mu.Unlock()
}

func (o *storeOutput) Schema() *arrow.Schema { return o.s }

func (o *storeOutput) Emit(ctx context.Context, b batch.Batch) error {
	select {
	case o.ch <- b:
		return nil
	case <-ctx.Done(): // as the runtime's queues do
		b.Release(batch.ErrDropped)
		return ctx.Err()
	}
}

func (o *storeOutput) Reject(record, reason string) error {
	return fmt.Errorf("reject %q: %s", record, reason)
}

// close stops the writer once the source has returned.
func (o *storeOutput) close() { close(o.ch); <-o.done }

func (o *storeOutput) rows() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mine
}

// TestResumeFromStoredPositions: every batch carries its partition's
// offset range; a source whose downstream store knows positions resumes
// there, not from the group's offsets (a new group has none).
func TestResumeFromStoredPositions(t *testing.T) {
	topic := kafkatest.Topic(t)
	embedded(t, topic)
	produceRows(t, []string{"embedded"}, topic, 0, 300)
	st := newStore()
	run := func(group string) {
		t.Helper()
		cfg := jsonConfig([]string{"embedded"}, topic, group)
		r := resources(t, memory.DefaultAllocator, 40, true)
		r.Resume = st.resume
		out := newStoreOutput(OutputSchema(cfg), st, topic)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := New(r, cfg, OutputSchema(cfg)).Run(ctx, out)
		out.close()
		if err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("--once did not end in time")
		}
	}
	run("g1")
	st.check(t, 300)
	// Another group, with nothing committed in Kafka, finds everything
	// stored: it reads nothing again.
	resumes := st.resumes
	run("g2")
	st.check(t, 300)
	if st.resumes == resumes {
		t.Fatal("the source did not ask where to resume")
	}
	// New rows: only they are read.
	produceRows(t, []string{"embedded"}, topic, 300, 350)
	run("g2")
	st.check(t, 350)
}

// TestRebalanceTwoConsumers: two sources in one group, the second joining
// while the first has batches in flight that its sink holds. The first
// drains and commits its partitions before giving them up; both resume
// from the stored positions on the new assignment. Every record is stored
// exactly once, both members store some, and Kafka's committed offsets end
// at the end of the topic.
func TestRebalanceTwoConsumers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, topic string) (dial, brokers []string)
	}{
		{"real", func(t *testing.T, topic string) ([]string, []string) {
			brokers := testenv.Kafka(t)
			if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
				t.Fatal(err)
			}
			return brokers, brokers
		}},
		{"kfake", func(t *testing.T, topic string) ([]string, []string) {
			return embedded(t, topic), []string{"embedded"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := kafkatest.Topic(t)
			addrs, brokers := tc.setup(t, topic)
			produceRows(t, brokers, topic, 0, 2000)
			group := "g-" + topic
			cfg := jsonConfig(brokers, topic, group)
			cfg.Drain = 30 * time.Second
			st := newStore()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			start := func(name string) (*Source, *storeOutput, context.CancelFunc, chan error) {
				r := resources(t, memory.DefaultAllocator, 50, false)
				r.Node = "src" // both members are the same pipeline node
				r.Resume = st.resume
				src := New(r, cfg, OutputSchema(cfg))
				out := newStoreOutput(OutputSchema(cfg), st, topic)
				cctx, stop := context.WithCancel(ctx)
				errc := make(chan error, 1)
				go func() { errc <- src.Run(cctx, out) }()
				return src, out, stop, errc
			}

			a, outA, stopA, errA := start("A")
			draining := make(chan struct{})
			var once sync.Once
			a.errMu.Lock()
			a.onFinish = func(kafkaclient.Partition) { once.Do(func() { close(draining) }) }
			a.errMu.Unlock()
			waitUntil(t, 30*time.Second, "A stored 500 rows", func() bool { return st.stored() >= 500 })
			// A's sink holds its batches (they stay in flight); more
			// records arrive; B joins the group.
			outA.hold()
			produceRows(t, brokers, topic, 2000, 3000)
			_, outB, stopB, errB := start("B")
			select {
			case <-draining: // the rebalance revoked A's partitions
			case <-ctx.Done():
				t.Fatal("A's partitions were not revoked after B joined")
			}
			// A's sink stores the held batches a little later: A must
			// wait for them before it gives its partitions up, or B reads
			// them again from the stored positions (duplicates).
			time.AfterFunc(300*time.Millisecond, outA.release)
			produceRows(t, brokers, topic, 3000, 4000)
			waitUntil(t, 60*time.Second, "4000 rows stored", func() bool { return st.stored() >= 4000 })
			stopA()
			stopB()
			for _, c := range []chan error{errA, errB} {
				if err := <-c; err != nil {
					t.Fatal(err)
				}
			}
			outA.close()
			outB.close()
			st.check(t, 4000)
			if outA.rows() == 0 || outB.rows() == 0 {
				t.Fatalf("rows stored by A %d, by B %d: both members should have read", outA.rows(), outB.rows())
			}
			if st.resumes < 3 {
				t.Fatalf("%d Resume calls, want one per member and assignment (at least 3)", st.resumes)
			}
			committed := kafkatest.Committed(t, addrs, group, topic)
			st.mu.Lock()
			defer st.mu.Unlock()
			for p, next := range st.next {
				if committed[p] != next {
					t.Errorf("partition %d: Kafka has %d committed, the store %d", p, committed[p], next)
				}
			}
		})
	}
}
