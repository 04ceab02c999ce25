package recycle

import (
	"sync"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestClass(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 0}, {-1, 0}, {1, minClass}, {512, 512}, {513, 768}, {768, 768}, {769, 1024},
		{1024, 1024}, {1025, 1536}, {100_000, 131072}, {90_000, 98304}, {maxClass, maxClass}, {maxClass + 1, 0},
	} {
		if got := class(c.n); got != c.want {
			t.Errorf("class(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func TestReuseIsZeroedAndBalanced(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	a := New(mem, 1<<20)
	b := a.Allocate(1000)
	if len(b) != 1000 || cap(b) != 1024 {
		t.Fatalf("len %d cap %d, want 1000 1024", len(b), cap(b))
	}
	for i := range b {
		b[i] = 0xff
	}
	a.Free(b)
	c := a.Allocate(900) // same class: the same buffer, cleared
	if addr(c) != addr(b) {
		t.Fatal("a freed buffer of the class was not reused")
	}
	for i, x := range c[:cap(c)] {
		if i < len(c) && x != 0 {
			t.Fatalf("byte %d of a recycled buffer is %#x", i, x)
		}
	}
	c = a.Reallocate(1024, c) // grows within its class: new bytes zero
	for i, x := range c {
		if x != 0 {
			t.Fatalf("byte %d after growing in place is %#x", i, x)
		}
	}
	c[0] = 7
	d := a.Reallocate(5000, c) // to another class: copied, the old one kept
	if d[0] != 7 || len(d) != 5000 || d[4999] != 0 {
		t.Fatalf("reallocated buffer: first %d len %d last %d", d[0], len(d), d[4999])
	}
	big := a.Allocate(maxClass + 1) // passes through
	a.Free(big)
	a.Free(d)
	if mem.CurrentAlloc() == 0 {
		t.Fatal("freed buffers were not kept")
	}
	a.Close()
	mem.AssertSize(t, 0)
	e := a.Allocate(100) // after Close: frees go straight to the parent
	a.Free(e)
	mem.AssertSize(t, 0)
}

func TestLimit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	a := New(mem, 4096)
	var bufs [][]byte
	for range 8 {
		bufs = append(bufs, a.Allocate(1024))
	}
	for _, b := range bufs {
		a.Free(b)
	}
	if got := mem.CurrentAlloc(); got != 4096 {
		t.Fatalf("parent holds %d bytes after freeing 8 KiB into a 4 KiB pool, want 4096", got)
	}
	a.Close()
	mem.AssertSize(t, 0)
}

// TestBuildersConcurrently builds and releases string arrays on several
// goroutines (run with -race): every value reads back, nothing leaks.
func TestBuildersConcurrently(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	a := New(mem, 1<<20)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for round := range 50 {
				b := array.NewStringBuilder(a)
				for i := range 300 + round {
					if i%7 == 0 {
						b.AppendNull()
					} else {
						b.Append("value")
					}
				}
				arr := b.NewStringArray()
				b.Release()
				for i := range arr.Len() {
					if arr.IsNull(i) != (i%7 == 0) || (!arr.IsNull(i) && arr.Value(i) != "value") {
						t.Errorf("goroutine %d round %d row %d: null %v value %q", g, round, i, arr.IsNull(i), arr.Value(i))
						break
					}
				}
				arr.Release()
			}
		})
	}
	wg.Wait()
	a.Close()
	mem.AssertSize(t, 0)
}
