package emulator_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/internal/emulator"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
	httpsrc "github.com/flowrun/flowrun/operators/source/http"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// sink is an op.Output whose "downstream" fails a fifth of the batches, as a
// flapping Kafka would, and keeps the unique_ids of the batches it stored.
type sink struct {
	schema *arrow.Schema
	mu     sync.Mutex
	rng    *rand.Rand
	stored map[string]int
}

func (s *sink) Schema() *arrow.Schema    { return s.schema }
func (s *sink) Reject(_, _ string) error { return errors.New("no dead letters") }
func (s *sink) Emit(_ context.Context, b batch.Batch) error {
	s.mu.Lock()
	fail := s.rng.Float64() < 0.2
	if !fail {
		ids := b.Rec.Column(posts.ColUniqueID).(*array.String)
		for i := range ids.Len() {
			s.stored[ids.Value(i)]++
		}
	}
	s.mu.Unlock()
	if fail {
		b.Release(errors.New("kafka: leader not available"))
	} else {
		b.Release(nil)
	}
	return nil
}

// TestAgainstHTTPSource runs the emulator against the real http source with
// a flapping downstream and a tight max_inflight: every post ends up stored.
func TestAgainstHTTPSource(t *testing.T) {
	for _, batchN := range []int{1, 7} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		src, err := httpsrc.New(httpsrc.Config{Schema: posts.Schema(), Stamp: "ingested_at", Listen: "127.0.0.1:0", MaxInflight: 4},
			op.Resources{Alloc: mem, BatchRows: 64, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		out := &sink{schema: src.Schema(), rng: rand.New(rand.NewPCG(1, 1)), stored: map[string]int{}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, out) }()
		<-src.Ready()

		rep, err := emulator.Run(context.Background(), emulator.Config{
			URL: "http://" + src.Addr() + httpsrc.DefaultPath, Count: 400, Batch: batchN, Posters: 8, Seed: 5,
			MaxRetries: 30, Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mem.AssertSize(t, 0)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Accepted != 400 || rep.Failed != 0 || rep.Rejected != 0 || rep.Retried == 0 {
			t.Errorf("batch %d: %s", batchN, rep)
		}
		g := posts.New(5)
		var p posts.Post
		for range 400 {
			g.Next(&p)
			if out.stored[p.UniqueID] == 0 {
				t.Errorf("batch %d: post %q accepted but not stored", batchN, p.UniqueID)
				break
			}
		}
		t.Logf("batch %d: retried %v", batchN, rep.RetriedBy)
	}
}
