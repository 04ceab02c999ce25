package optest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// recorder is a testing.TB that keeps its cleanups and errors.
type recorder struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}

func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// TestAllocatorCatchesALeak: a buffer never released fails the test at its
// end; one released does not.
func TestAllocatorCatchesALeak(t *testing.T) {
	for _, release := range []bool{true, false} {
		r := &recorder{TB: t}
		mem := Allocator(r)
		buf := memory.NewResizableBuffer(mem)
		buf.Resize(64)
		if release {
			buf.Release()
		}
		r.end()
		if leaked := len(r.errs) > 0; leaked == release {
			t.Errorf("released %v: errors %q", release, r.errs)
		}
	}
}

func TestAcksAndDeadLetters(t *testing.T) {
	var a Acks
	boom := errors.New("boom")
	a.New().Done(nil)
	a.New().Done(boom)
	if n, errs := a.Get(); n != 2 || len(errs) != 1 || errs[0] != boom {
		t.Errorf("acks %d, errors %v", n, errs)
	}
	var d DeadLetters
	ack := a.New()
	if err := d.Reject(ack, "r", "why"); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.Get(); n != 3 || d.Records()[0] != "r" || d.Reasons()[0] != "why" {
		t.Errorf("after a reject: %d acks, %q %q", n, d.Records(), d.Reasons())
	}
}
