package kafka

import (
	"errors"
	"testing"

	"github.com/flowrun/flowrun/runtime/batch"
)

// TestTracker: the committable offset follows the acknowledged prefix;
// skipped offsets (markers) join it; a failed batch holds everything after
// it; a dropped batch is no failure but is never committed; the budget is
// given back as the prefix advances, and all of it when the claim closes.
func TestTracker(t *testing.T) {
	b := newBudget(10, 1000)
	tr := newTracker(b)
	take := func(first, end, bytes int64) *inflight {
		b.take(bytes)
		return tr.add(first, end, bytes)
	}
	check := func(wantNext int64, wantPending, wantBatches int, wantBytes int64) {
		t.Helper()
		next, pending, err, _ := tr.state()
		n, by := b.inFlight()
		if next != wantNext || pending != wantPending || n != wantBatches || by != wantBytes || err != nil {
			t.Fatalf("next %d pending %d budget %d/%d err %v; want %d %d %d/%d", next, pending, n, by, err, wantNext, wantPending, wantBatches, wantBytes)
		}
	}
	f1, f2 := take(0, 9, 100), take(10, 19, 200)
	check(-1, 2, 2, 300)
	tr.ack(f2, nil)
	check(-1, 1, 2, 300)
	tr.ack(f1, nil)
	check(20, 0, 0, 0)

	// Markers at 20..22 after a batch 23..24 would be wrong; markers are
	// skipped only past the last batch: 25..27 after 23..24.
	f3 := take(23, 24, 50)
	tr.skip(27)
	check(20, 1, 1, 50)
	tr.ack(f3, nil)
	check(28, 0, 0, 0)

	// A dropped batch (its ack fails with ErrDropped during the emit) is
	// no failure and no drain wait, but nothing after it commits.
	f4 := take(28, 29, 10)
	tr.ack(f4, batch.ErrDropped)
	tr.drop(f4)
	check(28, 0, 1, 10)
	f5 := take(30, 31, 10)
	tr.ack(f5, nil)
	check(28, 0, 2, 20)

	// A real failure is reported.
	f6 := take(32, 33, 10)
	boom := errors.New("boom")
	tr.ack(f6, boom)
	if _, _, err, end := tr.state(); !errors.Is(err, boom) || end != 33 {
		t.Fatalf("state err %v end %d", err, end)
	}
	tr.close()
	if n, by := b.inFlight(); n != 0 || by != 0 {
		t.Fatalf("budget after close %d/%d", n, by)
	}
	tr.ack(f6, nil) // late acks after close give nothing back twice
	if n, by := b.inFlight(); n != 0 || by != 0 {
		t.Fatalf("budget after a late ack %d/%d", n, by)
	}
}
