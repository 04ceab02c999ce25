// Command batch benchmarks the batch half: N posts in the Parquet lake →
// pipelines/pinterest_batch.yaml (lake → cleaning → dedupe → HBase, plus the
// daily aggregate) for one interval, timed, with the flowrun process's peak
// RSS and CPU; beside it, in the same run, the Thrift2 gateway's raw put rate
// for the same rows with the same request size and requests in flight,
// written into a fresh table by bare hbaseclient.PutMultiple calls.
//
// The two alternate, round after round, each into fresh tables (dropped
// after the round), after one untimed warm-up run of flowrun that also
// provides the rows for the raw side (read back from HBase). Which phase
// goes first turns round by round: a JVM that has just started, or an
// HBase still flushing and compacting what the previous phase wrote, would
// otherwise favour one side. The raw side sends the rows shuffled, as
// flowrun sends them (in the lake's order, which the salted keys make
// random), sorted by key (a scan's order: each request one narrow key
// range, the easiest load for HBase), or both in turn (-raw both). Each
// round prints flowrun's rate as a share of each raw rate of that round,
// and the machine's load; the summary gives the medians of those
// per-round shares.
//
// Tables of an earlier run that did not finish (bench_*_<unix time>) are
// dropped first: on the small standalone HBase they would otherwise hold
// memory and compete for flushes and compactions.
//
//	go run ./bench/hbase/batch -n 1000000 -rounds 3 -raw both
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowrun/flowrun/operators/hbaseclient"
)

func main() {
	n := flag.Int("n", 1000000, "posts in the lake")
	data := flag.String("data", "bench/data", "work directory (bench/data is git-ignored)")
	thrift := flag.String("thrift", envOr("HBASE_THRIFT_ADDR", "127.0.0.1:9090"), "Thrift2 gateway")
	batch := flag.Int("batch", 1000, "rows per putMultiple (the sink's batch_rows default)")
	inFlight := flag.Int("in-flight", 4, "requests in flight (the sink's max_in_flight default)")
	rounds := flag.Int("rounds", 2, "timed rounds, each of raw and flowrun (who goes first turns)")
	rawOrder := flag.String("raw", "shuffled", "raw side's row order: shuffled (flowrun's), sorted (by key, a scan's), or both (each round runs both)")
	keep := flag.Bool("keep", false, "keep the tables")
	compare := flag.String("compare", "", "another flowrun binary (an older build) to run as one more phase of each round, for an A/B in the same run")
	flag.Parse()
	ctx := context.Background()
	var orders []string
	switch *rawOrder {
	case "shuffled", "sorted":
		orders = []string{*rawOrder}
	case "both":
		orders = []string{"shuffled", "sorted"}
	default:
		check(fmt.Errorf("-raw %q: want shuffled, sorted or both", *rawOrder))
	}
	bin := filepath.Join(*data, "bin", "flowrun")
	run("go", "build", "-o", bin, "./cmd/flowrun")
	lake := filepath.Join(*data, fmt.Sprintf("lake-%d", *n))
	if _, err := os.Stat(filepath.Join(lake, "dt=2026-11-24")); err != nil {
		t0 := time.Now()
		run(bin, "run", "bench/hbase/lake_posts.yaml", "-q", "--set", "N="+strconv.Itoa(*n), "--set", "LAKE="+lake)
		fmt.Printf("lake of %d posts written in %s\n", *n, time.Since(t0).Round(time.Millisecond))
	}
	suffix := strconv.FormatInt(time.Now().Unix(), 10)
	var tables []string
	// The gateway closes a connection idle for 60 s (its default
	// hbase.thrift.server.socket.read.timeout): dial when needed.
	dial := func() *hbaseclient.Conn {
		c, err := hbaseclient.Dial(ctx, *thrift, hbaseclient.Options{})
		check(err)
		return c
	}
	// dropTables drops the tables made so far (outside the timed parts):
	// a phase's tables would otherwise hold the HBase's memory and disk
	// and make the next phase compete with their flushes and compactions.
	dropTables := func() {
		if *keep || len(tables) == 0 {
			return
		}
		c := dial()
		for _, t := range tables {
			check(c.DropTable(ctx, t))
		}
		c.Close()
		tables = nil
	}
	defer dropTables()
	dropLeftovers(ctx, dial())
	history, err := os.MkdirTemp("", "bench-history-")
	check(err)
	defer os.RemoveAll(history)
	// create makes a fresh table, outside the timed part (table creation
	// takes seconds on a busy standalone HBase).
	create := func(name string, fams ...string) string {
		name += "_" + suffix
		c := dial()
		check(c.CreateTable(ctx, name, fams))
		c.Close()
		tables = append(tables, name)
		return name
	}

	// flowrunRun runs the whole batch pipeline for the interval into fresh
	// tables: its time, CPU, peak RSS and the posts table.
	flowrunRun := func(bin, tag string) (time.Duration, time.Duration, int64, string) {
		pins, daily, dead := create("bench_pins_"+tag, "t", "n"), create("bench_daily_"+tag, "s"), create("bench_dead_"+tag, "d")
		cmd := exec.Command(bin, "run", "pipelines/pinterest_batch.yaml", "--interval", "2026-11-24", "--history", history, "--force", "-q",
			"--set", "LAKE="+lake, "--set", "HBASE_THRIFT_ADDR="+*thrift,
			"--set", "HBASE_TABLE="+pins, "--set", "HBASE_DAILY_TABLE="+daily, "--set", "HBASE_DEAD_LETTER_TABLE="+dead)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		t0 := time.Now()
		check(cmd.Start())
		// Peak RSS from /proc (VmHWM, KiB): rusage's ru_maxrss of a child
		// counts this process's own memory at the fork (the rows held
		// for the raw side).
		var hwm atomic.Int64
		done := make(chan struct{})
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				if kib := vmHWM(cmd.Process.Pid); kib > hwm.Load() {
					hwm.Store(kib)
				}
				select {
				case <-done:
					return
				case <-tick.C:
				}
			}
		}()
		err := cmd.Wait()
		close(done)
		check(err)
		took := time.Since(t0)
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		return took, time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), hwm.Load(), pins
	}

	// Warm-up (untimed): it also writes the rows the raw side sends.
	fmt.Println("warm-up: flowrun run pinterest_batch (untimed)")
	_, _, _, source := flowrunRun(bin, "warm")
	// The rows flowrun wrote, read back.
	admin := dial()
	rows, err := admin.Scan(ctx, source, nil, nil, 0)
	check(err)
	admin.Close()
	sortedPuts := make([]hbaseclient.Put, len(rows)) // a scan returns rows sorted by key
	for i, r := range rows {
		cells := make([]hbaseclient.Cell, len(r.Cells))
		for j, c := range r.Cells {
			cells[j] = hbaseclient.Cell{Family: c.Family, Qualifier: c.Qualifier, Value: c.Value}
		}
		sortedPuts[i] = hbaseclient.Put{Row: r.Key, Cells: cells}
	}
	rows = nil
	dropTables()
	shuffled := slices.Clone(sortedPuts)
	shuffleLikeLake(shuffled)
	putsOf := map[string][]hbaseclient.Put{"shuffled": shuffled, "sorted": sortedPuts}
	stored := len(sortedPuts)
	fmt.Printf("rows in the posts table: %d (of %d posts)\n", stored, *n)

	ratios := map[string][]float64{}
	var flowrunRates []float64
	rawRates := map[string][]float64{}
	for r := 1; r <= *rounds; r++ {
		fmt.Printf("round %d  load %s\n", r, loadavg())
		// The phases take turns going first: the one after a phase
		// meets HBase still flushing and compacting what it wrote.
		phases := append(append([]string(nil), orders...), "flowrun")
		if *compare != "" {
			phases = append(phases, "compare")
		}
		k := (r - 1) % len(phases)
		phases = append(phases[k:], phases[:k]...)
		rawRate := map[string]float64{}
		var rate, cmpRate float64
		for _, o := range phases {
			if o == "flowrun" || o == "compare" {
				b, name := bin, "flowrun"
				if o == "compare" {
					b, name = *compare, "flowrun "+*compare
				}
				took, cpu, rss, _ := flowrunRun(b, o+strconv.Itoa(r))
				x := float64(stored) / took.Seconds()
				if o == "flowrun" {
					rate = x
					flowrunRates = append(flowrunRates, rate)
				} else {
					cmpRate = x
				}
				fmt.Printf("round %d  %s lake → clean → HBase: %s, %.0f rows/s, peak RSS %.0f MiB, CPU %s\n",
					r, name, took.Round(time.Millisecond), x, float64(rss)/1024, cpu.Round(time.Millisecond))
				continue
			}
			raw := create(fmt.Sprintf("bench_raw_%s_%d", o, r), "t", "n")
			t0 := time.Now()
			check(putAll(ctx, *thrift, raw, putsOf[o], *batch, *inFlight))
			rawTime := time.Since(t0)
			rawRate[o] = float64(stored) / rawTime.Seconds()
			rawRates[o] = append(rawRates[o], rawRate[o])
			fmt.Printf("round %d  gateway raw putMultiple, %s (%d rows/request, %d in flight): %s, %.0f rows/s\n", r, o, *batch, *inFlight, rawTime.Round(time.Millisecond), rawRate[o])
		}
		for _, o := range orders {
			ratios[o] = append(ratios[o], rate/rawRate[o])
			fmt.Printf("round %d  flowrun / raw %s: %.0f %%\n", r, o, 100*rate/rawRate[o])
			if *compare != "" {
				ratios["compare "+o] = append(ratios["compare "+o], cmpRate/rawRate[o])
				fmt.Printf("round %d  %s / raw %s: %.0f %%\n", r, *compare, o, 100*cmpRate/rawRate[o])
			}
		}
		if *compare != "" {
			ratios["ab"] = append(ratios["ab"], rate/cmpRate)
			fmt.Printf("round %d  flowrun / %s: %.0f %%\n", r, *compare, 100*rate/cmpRate)
		}
		fmt.Printf("round %d  load %s\n", r, loadavg())
		dropTables()
	}
	fmt.Printf("\nmedians over %d rounds: flowrun %.0f rows/s", *rounds, median(flowrunRates))
	for _, o := range orders {
		fmt.Printf(", raw %s %.0f rows/s", o, median(rawRates[o]))
	}
	fmt.Println()
	report := func(label, key string) {
		fmt.Printf("%s, median of per-round ratios: %.0f %% (rounds:", label, 100*median(ratios[key]))
		for _, x := range ratios[key] {
			fmt.Printf(" %.0f %%", 100*x)
		}
		fmt.Println(")")
	}
	for _, o := range orders {
		report("flowrun / raw "+o, o)
		if *compare != "" {
			report(*compare+" / raw "+o, "compare "+o)
		}
	}
	if *compare != "" {
		report("flowrun / "+*compare, "ab")
	}
}

// dropLeftovers drops the tables of earlier runs that did not get to drop
// their own, and closes c.
func dropLeftovers(ctx context.Context, c *hbaseclient.Conn) {
	defer c.Close()
	names, err := c.Tables(ctx, "bench_(pins|daily|dead|raw)_.*_[0-9]+")
	check(err)
	for _, t := range names {
		fmt.Println("dropping a table left by an earlier run:", t)
		check(c.DropTable(ctx, t))
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// loadavg is the machine's load averages (1, 5, 15 min), as uptime shows.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// shuffleLikeLake puts the rows in the order flowrun sends them: the
// lake's, where consecutive posts have unrelated unique_ids and so
// unrelated salts. A fixed-seed shuffle stands for it (the bench does not
// read the lake itself).
func shuffleLikeLake(puts []hbaseclient.Put) {
	r := rand.New(rand.NewPCG(42, 42))
	r.Shuffle(len(puts), func(i, j int) { puts[i], puts[j] = puts[j], puts[i] })
}

func putAll(ctx context.Context, addr, table string, puts []hbaseclient.Put, batch, par int) error {
	ch := make(chan []hbaseclient.Put)
	go func() {
		defer close(ch)
		for i := 0; i < len(puts); i += batch {
			ch <- puts[i:min(i+batch, len(puts))]
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := hbaseclient.Dial(ctx, addr, hbaseclient.Options{})
			if err == nil {
				defer c.Close()
			}
			for b := range ch {
				if err == nil {
					err = c.PutMultiple(ctx, table, b)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// vmHWM is a live process's peak resident set in KiB (0 once it is gone).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kib
		}
	}
	return 0
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		check(fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err))
	}
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "batch bench:", err)
		os.Exit(1)
	}
}
