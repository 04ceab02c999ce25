// Command batch benchmarks the batch half: N posts in the Parquet lake →
// pipelines/pinterest_batch.yaml (lake → cleaning → dedupe → HBase, plus the
// daily aggregate) for one interval, timed, with the flowrun process's peak
// RSS and CPU; beside it, in the same run, the Thrift2 gateway's raw put rate
// for the same rows with the same request size and requests in flight,
// written into a fresh table by bare hbaseclient.PutMultiple calls.
//
// The two alternate, round after round (raw, flowrun, raw, flowrun, ...),
// each into fresh tables, after one untimed warm-up run of flowrun that
// also provides the rows for the raw side (read back from HBase): a JVM
// that has just started, or an HBase busy flushing what the previous phase
// wrote, would otherwise favour whichever side runs second. The raw side
// sends the rows shuffled, as flowrun sends them (in the lake's order,
// which the salted keys make random), unless -sorted (a scan's order).
//
//	go run ./bench/hbase/batch -n 1000000 -rounds 2
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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
	rounds := flag.Int("rounds", 2, "timed rounds, each raw then flowrun")
	sorted := flag.Bool("sorted", false, "raw side: send the rows sorted by key (as a scan returns them) instead of in flowrun's order")
	keep := flag.Bool("keep", false, "keep the tables")
	flag.Parse()
	ctx := context.Background()
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
	defer func() {
		if !*keep {
			c := dial()
			for _, t := range tables {
				_ = c.DropTable(ctx, t)
			}
			c.Close()
		}
	}()
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
	flowrunRun := func(tag string) (time.Duration, time.Duration, int64, string) {
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
	_, _, _, source := flowrunRun("warm")
	// The rows flowrun wrote, read back.
	admin := dial()
	rows, err := admin.Scan(ctx, source, nil, nil, 0)
	check(err)
	admin.Close()
	puts := make([]hbaseclient.Put, len(rows))
	for i, r := range rows {
		cells := make([]hbaseclient.Cell, len(r.Cells))
		for j, c := range r.Cells {
			cells[j] = hbaseclient.Cell{Family: c.Family, Qualifier: c.Qualifier, Value: c.Value}
		}
		puts[i] = hbaseclient.Put{Row: r.Key, Cells: cells}
	}
	rows = nil
	if !*sorted {
		shuffleLikeLake(puts)
	}
	stored := len(puts)
	fmt.Printf("rows in the posts table: %d (of %d posts)\n", stored, *n)

	var flowrunRates, rawRates []float64
	for r := 1; r <= *rounds; r++ {
		raw := create(fmt.Sprintf("bench_raw_%d", r), "t", "n")
		t0 := time.Now()
		check(putAll(ctx, *thrift, raw, puts, *batch, *inFlight))
		rawTime := time.Since(t0)
		rawRate := float64(stored) / rawTime.Seconds()
		fmt.Printf("round %d  gateway raw putMultiple (%d rows/request, %d in flight): %s, %.0f rows/s\n", r, *batch, *inFlight, rawTime.Round(time.Millisecond), rawRate)

		took, cpu, rss, _ := flowrunRun(strconv.Itoa(r))
		rate := float64(stored) / took.Seconds()
		fmt.Printf("round %d  flowrun lake → clean → HBase: %s, %.0f rows/s, peak RSS %.0f MiB, CPU %s  (%.0f %% of raw)\n",
			r, took.Round(time.Millisecond), rate, float64(rss)/1024, cpu.Round(time.Millisecond), 100*rate/rawRate)
		flowrunRates, rawRates = append(flowrunRates, rate), append(rawRates, rawRate)
	}
	var fs, rs float64
	for i := range flowrunRates {
		fs, rs = fs+flowrunRates[i], rs+rawRates[i]
	}
	fmt.Printf("\nmean over %d rounds: flowrun %.0f rows/s, raw %.0f rows/s, flowrun / raw: %.0f %%\n", *rounds, fs/float64(*rounds), rs/float64(*rounds), 100*fs/rs)
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
