package exec

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
)

// procKiB reads a "Name:   123 kB" line of /proc/self/status.
func procKiB(t testing.TB, name string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("%s not in /proc/self/status", name)
	return 0
}

const rssChildEnv = "FLOWRUN_EXEC_RSS_CHILD"

// TestPeakRSSWithinBudget runs a fast source into a slow sink through two
// transforms in a child process, once under a 32 MiB budget and once with
// an effectively unlimited one (only the per-queue bounds of 64 batches),
// and compares the processes' peak RSS growth. 1 MiB batches: the queues
// alone would let ~200 MiB pile up.
func TestPeakRSSWithinBudget(t *testing.T) {
	if budget := os.Getenv(rssChildEnv); budget != "" {
		rssChild(t, budget)
		return
	}
	if testing.Short() || raceEnabled {
		t.Skip("runs two child processes; RSS means little under the race detector (scripts/ci-test.sh runs it again without -race)")
	}
	grow := map[string]int64{}
	for _, budget := range []string{"32", "4096"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPeakRSSWithinBudget$", "-test.v")
		cmd.Env = append(os.Environ(), rssChildEnv+"="+budget)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child with %s MiB: %v\n%s", budget, err, out)
		}
		var base, peak int64
		for _, line := range strings.Split(string(out), "\n") {
			if i := strings.Index(line, "rss-kib "); i >= 0 {
				fmt.Sscan(line[i+len("rss-kib "):], &base, &peak)
			}
		}
		if peak == 0 {
			t.Fatalf("child with %s MiB printed no figures:\n%s", budget, out)
		}
		grow[budget] = peak - base
		t.Logf("budget %s MiB: RSS %d KiB before the run, peak %d KiB (+%d MiB)", budget, base, peak, (peak-base)>>10)
	}
	if grow["4096"] < 4*32<<10 {
		t.Skipf("without a budget RSS grew only %d MiB: the source was not faster than the sink on this loaded machine, nothing to compare", grow["4096"]>>10)
	}
	// Under the budget the growth stays within a small multiple of it (the
	// Go heap's GC headroom, the batch being built and one overshoot per
	// edge), and far below the run that only the queue bounds limit.
	if g := grow["32"]; g > 4*32<<10 || g*2 > grow["4096"] {
		t.Fatalf("peak RSS grew %d MiB under a 32 MiB budget, %d MiB without", g>>10, grow["4096"]>>10)
	}
}

func rssChild(t *testing.T, budgetMiB string) {
	mib, err := strconv.ParseInt(budgetMiB, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	const rows = 128 << 10 // 1 MiB of int64 per batch
	base := procKiB(t, "VmRSS")
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: memory.NewGoAllocator(), batches: 300, rows: rows, acks: &ackLog{}}, output: intSchema},
		spec{name: "a", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "b", section: ast.Transforms, inst: &passTransform{}, from: []string{"a"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: &collectSink{delay: 5 * time.Millisecond}, from: []string{"b"}},
	)
	p, err := New(res, Options{QueueBatches: 64, QueueBytes: 1 << 30, MemoryBytes: mib << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("rss-kib %d %d\n", base, procKiB(t, "VmHWM"))
}
