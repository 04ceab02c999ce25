package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// gcPercent reads the current GC percent.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// settle runs collections until the finalizer hook has adjusted.
func settle() {
	for range 5 {
		runtime.GC()
		runtime.Gosched()
	}
}

func TestStartRaisesGoalForSmallHeapAndStopRestores(t *testing.T) {
	t.Setenv("GOGC", "") // the floor stands aside only for a GOGC that is set
	before := gcPercent()
	stop := Start(256 << 20)
	settle()
	if got := gcPercent(); got <= before {
		t.Fatalf("GC percent with a 256 MiB floor over a small live heap = %d, want above %d", got, before)
	}
	again := Start(1 << 30) // a second caller shares the running floor
	again()
	again()
	if got := gcPercent(); got <= before {
		t.Fatalf("the floor ended while its first caller still runs: GC percent %d", got)
	}
	stop()
	if got := gcPercent(); got != before {
		t.Fatalf("GC percent after stop = %d, want %d", got, before)
	}
	settle() // the hook, once stopped, no longer adjusts
	if got := gcPercent(); got != before {
		t.Fatalf("GC percent after stop and collections = %d, want %d", got, before)
	}
}

func TestLargeLiveHeapKeepsDefault(t *testing.T) {
	t.Setenv("GOGC", "")
	live := make([]byte, 64<<20) // live heap above the headroom
	before := gcPercent()
	stop := Start(8 << 20)
	defer stop()
	settle()
	if got := gcPercent(); got != before {
		t.Fatalf("GC percent with 64 MiB live and an 8 MiB floor = %d, want %d", got, before)
	}
	runtime.KeepAlive(live)
}

func TestGOGCDisablesFloor(t *testing.T) {
	t.Setenv("GOGC", "100")
	before := gcPercent()
	stop := Start(256 << 20)
	defer stop()
	settle()
	if got := gcPercent(); got != before {
		t.Fatalf("GC percent with GOGC set = %d, want %d", got, before)
	}
}
