package generate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

type collect struct {
	mu     sync.Mutex
	rows   int
	recs   []arrow.RecordBatch
	stop   int // cancel after this many batches
	cancel context.CancelFunc
}

func (c *collect) Schema() *arrow.Schema { return Schema }
func (c *collect) Emit(ctx context.Context, b batch.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows += b.Rows()
	c.recs = append(c.recs, b.Rec)
	b.Ack.Done(nil)
	if c.stop > 0 && len(c.recs) >= c.stop {
		c.cancel()
	}
	return nil
}
func (c *collect) Reject(record, reason string) error { return nil }
func (c *collect) release() {
	for _, r := range c.recs {
		r.Release()
	}
}

// fakeClock advances instantly when waited on.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	f.now = f.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- f.now
	f.mu.Unlock()
	return ch
}

func prep(t *testing.T, text string) (op.Constructor, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	f := source.NewFile("p.yaml", []byte(text))
	var errs source.Errors
	v := spec.Decode(f, doc.Content[0], Plugin.Spec.Config, &errs)
	_, ctor := Plugin.Prepare(&validate.Check{Config: v, Errs: &errs})
	return ctor, errs
}

func TestCountAndRate(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctor, errs := prep(t, "{count: 2500, rate: 1000, seed: 3}")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	clk := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	src, err := ctor(op.Resources{Alloc: mem, Clock: clk, BatchRows: 1024})
	if err != nil {
		t.Fatal(err)
	}
	out := &collect{}
	defer out.release()
	if err := src.(op.Source).Run(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	if out.rows != 2500 {
		t.Fatalf("rows %d", out.rows)
	}
	// rate 1000/s → batches of 100, paced over ~2.4s of clock time.
	if len(out.recs) != 25 {
		t.Errorf("batches %d", len(out.recs))
	}
	if el := clk.Now().Sub(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)); el < 2*time.Second || el > 3*time.Second {
		t.Errorf("elapsed %v", el)
	}
	last := out.recs[len(out.recs)-1]
	ts := last.Column(int(last.NumCols()) - 1).(*array.Timestamp).Value(0).ToTime(arrow.Microsecond)
	if ts.Before(time.Date(2024, 1, 1, 0, 0, 2, 0, time.UTC)) {
		t.Errorf("ingested_at %v", ts)
	}
	if !last.Schema().Equal(Schema) {
		t.Error("schema mismatch")
	}
}

func TestUnboundedStopsOnCancel(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &collect{stop: 3, cancel: cancel}
	defer out.release()
	s := New(op.Resources{Alloc: mem, BatchRows: 100}, 0, 0, 1)
	if err := s.Run(ctx, out); err != nil {
		t.Fatal(err)
	}
	if len(out.recs) != 3 || out.rows != 300 {
		t.Errorf("got %d batches %d rows", len(out.recs), out.rows)
	}
}

func TestOnce(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	out := &collect{}
	defer out.release()
	s := New(op.Resources{Alloc: mem, BatchRows: 50, Once: true}, 0, 0, 1)
	if err := s.Run(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	if out.rows != 50 {
		t.Errorf("rows %d", out.rows)
	}
}

func TestBadConfig(t *testing.T) {
	_, errs := prep(t, "{count: -1, sed: 2}")
	if len(errs) != 2 {
		t.Fatalf("errors: %v", errs)
	}
	errs.Sort()
	if got := errs.Error(); got != "p.yaml:1:9: 'count' must not be negative\np.yaml:1:13: unknown key 'sed' in this block (did you mean 'seed'?)" {
		t.Errorf("errors:\n%s", got)
	}
}
