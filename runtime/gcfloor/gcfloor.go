// Package gcfloor owns the process's garbage-collection target: it keeps
// the heap goal at least a fixed headroom above the live heap.
//
// With Go's default (GOGC=100) the next collection starts when the heap has
// grown by as much as is live. A pipeline streaming batches keeps little
// alive (tens of MiB) but allocates fast (a million Kafka records are ~2.3
// GB of fetch buffers and Arrow columns), so it collected ~140 times per
// million records, each cycle preempting every running goroutine to scan
// its stack: a sixth of the Kafka source's CPU. Start raises the goal to
// live + headroom while that is more than 2 × live; with a large live heap
// nothing changes. The cost is at most headroom bytes of extra garbage.
//
// GOGC set in the environment is the operator's choice and disables the
// floor; GOMEMLIMIT still bounds the heap as usual.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// DefaultHeadroom is the headroom flowrun runs with.
const DefaultHeadroom = 32 << 20

const liveMetric = "/gc/heap/live:bytes"

var (
	mu      sync.Mutex
	running *floor
)

type floor struct {
	headroom uint64
	users    int // callers of Start that have not stopped (under mu)
	stopped  atomic.Bool
	percent  int // last set
	sample   []metrics.Sample
	base     int // the GC percent before Start
}

// sentinel is a heap object whose finalizer runs after each collection
// that found it unreachable: the hook for adjusting the target.
type sentinel struct{ _ [16]byte }

// Start keeps the heap goal at least headroom bytes above the live heap
// until stop is called. Pipelines running side by side (flowrun schedule)
// share one floor, the first caller's; it ends, restoring the previous GC
// percent, when every caller has stopped. With GOGC set, or collection
// switched off, Start does nothing.
func Start(headroom int64) (stop func()) {
	if headroom <= 0 || os.Getenv("GOGC") != "" {
		return func() {}
	}
	mu.Lock()
	if running == nil {
		f := &floor{headroom: uint64(headroom), sample: []metrics.Sample{{Name: liveMetric}}}
		f.base = debug.SetGCPercent(100)
		debug.SetGCPercent(f.base)
		if f.base <= 0 { // collection off, or as often as possible: not ours to change
			mu.Unlock()
			return func() {}
		}
		f.percent = f.base
		running = f
		defer func() { f.adjust(); f.arm() }() // after the unlock: adjust takes mu
	}
	f := running
	f.users++
	mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			if f.users--; f.users > 0 {
				return
			}
			running = nil
			f.stopped.Store(true)
			debug.SetGCPercent(f.base)
		})
	}
}

func (f *floor) arm() {
	s := &sentinel{}
	runtime.SetFinalizer(s, func(*sentinel) {
		if f.stopped.Load() {
			return
		}
		f.adjust()
		f.arm()
	})
}

// adjust sets the GC percent for the live heap of the last collection.
func (f *floor) adjust() {
	metrics.Read(f.sample)
	if f.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	live := max(f.sample[0].Value.Uint64(), 1<<20)
	p := max(int(f.headroom*100/live), f.base)
	// Small changes are not worth the runtime's lock.
	if p == f.percent || (p > f.percent*9/10 && p < f.percent*11/10) {
		return
	}
	mu.Lock()
	if !f.stopped.Load() {
		debug.SetGCPercent(p)
		f.percent = p
	}
	mu.Unlock()
}
