// Package optest owns the test doubles that operator tests share: an
// allocator that fails the test when a batch leaks (Allocator), a counter
// of acknowledgements (Acks), and a dead-letter output that keeps what it
// is given (DeadLetters). It is imported by _test.go files only.
package optest

import (
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/runtime/batch"
)

// Allocator returns a checked allocator; when the test ends (after its
// deferred calls, with its cleanups), every byte allocated must have been
// released, or the test fails.
func Allocator(t testing.TB) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// Acks counts acknowledgements and keeps their errors. The zero value is
// ready; it is safe for concurrent use.
type Acks struct {
	mu   sync.Mutex
	n    int
	errs []error
}

// New returns an ack that, when done, counts itself here.
func (a *Acks) New() *batch.Ack {
	return batch.NewAck(func(err error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.n++
		if err != nil {
			a.errs = append(a.errs, err)
		}
	})
}

// Get returns how many acks completed and the errors among them.
func (a *Acks) Get() (int, []error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n, append([]error(nil), a.errs...)
}

// DeadLetters is an op.DeadLetters that keeps every record and reason and
// completes each ack at once, as a dead-letter sink that stored the record
// would. The zero value is ready; it is safe for concurrent use.
type DeadLetters struct {
	mu      sync.Mutex
	records []string
	reasons []string
}

// Reject implements op.DeadLetters.
func (d *DeadLetters) Reject(ack *batch.Ack, record, reason string) error {
	d.mu.Lock()
	d.records = append(d.records, record)
	d.reasons = append(d.reasons, reason)
	d.mu.Unlock()
	ack.Done(nil)
	return nil
}

// Records returns the rejected records, in order.
func (d *DeadLetters) Records() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.records...)
}

// Reasons returns the reasons, in the order of Records.
func (d *DeadLetters) Reasons() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.reasons...)
}
