package op

import (
	"context"
	"testing"
	"time"
)

func TestBudgetBlocksUntilReleased(t *testing.T) {
	b := NewBudget(100)
	if !b.TryAcquire(60) {
		t.Fatal("60 of 100 should fit")
	}
	if b.TryAcquire(50) {
		t.Fatal("110 of 100 should not fit")
	}
	got := make(chan error, 1)
	go func() { got <- b.Acquire(context.Background(), 50) }()
	select {
	case err := <-got:
		t.Fatalf("Acquire returned %v before room was released", err)
	case <-time.After(20 * time.Millisecond):
	}
	b.Release(60)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Acquire still blocked after Release")
	}
	if b.InUse() != 50 || b.Peak() != 60 {
		t.Fatalf("in use %d peak %d", b.InUse(), b.Peak())
	}
}

func TestBudgetAcquireHonoursContext(t *testing.T) {
	b := NewBudget(10)
	b.Charge(10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := b.Acquire(ctx, 1); err != context.DeadlineExceeded {
		t.Fatalf("got %v", err)
	}
	if b.InUse() != 10 {
		t.Fatalf("a failed Acquire charged: in use %d", b.InUse())
	}
}

func TestBudgetOversizedPassesAlone(t *testing.T) {
	b := NewBudget(10)
	if !b.TryAcquire(50) {
		t.Fatal("an oversized charge should pass when nothing else is charged")
	}
	if b.TryAcquire(1) {
		t.Fatal("nothing fits beside an oversized charge")
	}
	b.Release(50)
	if b.InUse() != 0 {
		t.Fatal("not released")
	}
}

func TestNilBudgetIsUnlimited(t *testing.T) {
	var b *Budget
	if !b.TryAcquire(1<<40) || b.Acquire(context.Background(), 1<<40) != nil {
		t.Fatal("nil budget refused")
	}
	b.Release(1 << 40)
	b.Charge(1)
	if b.InUse() != 0 || b.Limit() != 0 {
		t.Fatal("nil budget counts")
	}
}

type recMetrics struct{ names []string }

func (r *recMetrics) Counter(name, _ string, ls ...Label) Counter {
	r.names = append(r.names, name+labelString(ls))
	return NopMetrics{}.Counter("", "")
}
func (r *recMetrics) Gauge(name, _ string, ls ...Label) Gauge {
	r.names = append(r.names, name+labelString(ls))
	return NopMetrics{}.Gauge("", "")
}
func (r *recMetrics) Histogram(name, _ string, _ []float64, ls ...Label) Histogram {
	r.names = append(r.names, name+labelString(ls))
	return NopMetrics{}.Histogram("", "", nil)
}

func labelString(ls []Label) string {
	s := ""
	for _, l := range ls {
		s += "," + l.Name + "=" + l.Value
	}
	return s
}

func TestWithLabelsPrefixesEveryInstrument(t *testing.T) {
	r := &recMetrics{}
	m := WithLabels(r, Label{"pipeline", "p"}, Label{"node", "n"})
	m.Counter("c_total", "", Label{"topic", "t"})
	m.Gauge("g", "")
	m.Histogram("h_seconds", "", LatencyBuckets)
	want := []string{"c_total,pipeline=p,node=n,topic=t", "g,pipeline=p,node=n", "h_seconds,pipeline=p,node=n"}
	if len(r.names) != 3 || r.names[0] != want[0] || r.names[1] != want[1] || r.names[2] != want[2] {
		t.Fatalf("got %q", r.names)
	}
	if _, ok := WithLabels(nil, Label{"a", "b"}).(NopMetrics); !ok {
		t.Fatal("nil metrics should give NopMetrics")
	}
}
