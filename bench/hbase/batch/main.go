// Command batch benchmarks the batch half: N posts in the Parquet lake →
// pipelines/pinterest_batch.yaml (lake → cleaning → dedupe → HBase, plus the
// daily aggregate) for one interval, timed, with the flowrun process's peak
// RSS; then, in the same run, the Thrift2 gateway's raw put rate for the
// same rows (read back from the table flowrun wrote) with the same request
// size and requests in flight, written into a fresh table by bare
// hbaseclient.PutMultiple calls.
//
//	go run ./bench/hbase/batch -n 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	tables := []string{"bench_pins_" + suffix, "bench_daily_" + suffix, "bench_dead_" + suffix, "bench_raw_" + suffix}
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

	// Every table is made first, so the timed run holds no table creation
	// (seconds each on a busy standalone HBase) and both sides write into a
	// fresh table of one region.
	admin := dial()
	for i, fams := range [][]string{{"t", "n"}, {"s"}, {"d"}, {"t", "n"}} {
		check(admin.CreateTable(ctx, tables[i], fams))
	}
	admin.Close()

	// 1. flowrun: the whole batch pipeline for the interval.
	cmd := exec.Command(bin, "run", "pipelines/pinterest_batch.yaml", "--interval", "2026-11-24", "--history", history,
		"--set", "LAKE="+lake, "--set", "HBASE_THRIFT_ADDR="+*thrift,
		"--set", "HBASE_TABLE="+tables[0], "--set", "HBASE_DAILY_TABLE="+tables[1], "--set", "HBASE_DEAD_LETTER_TABLE="+tables[2])
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	t0 := time.Now()
	check(cmd.Run())
	flowrunTime := time.Since(t0)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	rss := ru.Maxrss // KiB on Linux
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	stored := 0

	// 2. the gateway alone: the same rows, read back, put again into a
	// fresh table with the same request size and concurrency. Scanned one
	// salt prefix at a time to bound this process's memory; only the puts
	// are timed.
	admin = dial()
	defer admin.Close()
	var putTime time.Duration
	for salt := 10; salt <= 99; salt++ {
		prefix := []byte(fmt.Sprintf("%d|", salt))
		stop := []byte(fmt.Sprintf("%d}", salt))
		rows, err := admin.Scan(ctx, tables[0], prefix, stop, 0)
		check(err)
		stored += len(rows)
		puts := make([]hbaseclient.Put, len(rows))
		for i, r := range rows {
			cells := make([]hbaseclient.Cell, len(r.Cells))
			for j, c := range r.Cells {
				cells[j] = hbaseclient.Cell{Family: c.Family, Qualifier: c.Qualifier, Value: c.Value}
			}
			puts[i] = hbaseclient.Put{Row: r.Key, Cells: cells}
		}
		t1 := time.Now()
		check(putAll(ctx, *thrift, tables[3], puts, *batch, *inFlight))
		putTime += time.Since(t1)
	}
	flowrunRate := float64(stored) / flowrunTime.Seconds()
	rawRate := float64(stored) / putTime.Seconds()
	fmt.Printf("\nrows stored in %s: %d (of %d posts)\n", tables[0], stored, *n)
	fmt.Printf("flowrun lake → clean → HBase: %s, %.0f rows/s, peak RSS %.0f MiB, CPU %s\n", flowrunTime.Round(time.Millisecond), flowrunRate, float64(rss)/1024, cpu.Round(time.Millisecond))
	fmt.Printf("gateway raw putMultiple (%d rows/request, %d in flight): %s, %.0f rows/s\n", *batch, *inFlight, putTime.Round(time.Millisecond), rawRate)
	fmt.Printf("flowrun / raw: %.0f %%\n", 100*flowrunRate/rawRate)
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
