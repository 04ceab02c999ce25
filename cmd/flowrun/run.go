package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/gcfloor"
	"github.com/flowrun/flowrun/runtime/metrics"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/schedule"
	"github.com/flowrun/flowrun/runtime/status"
)

type runFlags struct {
	sets         []string
	once         bool
	batchRows    int
	drainTimeout time.Duration
	quiet        bool
	logLevel     string
	cpuProfile   string
	embedded     string
	interval     string
	force        bool
	history      string
	// vars take precedence over --set and the environment (INTERVAL_*).
	vars map[string]string
	// rows, when set, receives the rows per node at the end of the run.
	rows func(map[string]int64)
	// stopIsError: a stop (signal, cancelled ctx) before the input's end
	// fails the run (an interval run must not be recorded as done).
	stopIsError bool
	metricsAddr string
	logFormat   string
	memoryMiB   int
	shard       string
}

func newRunCmd(reg *op.Registry) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a pipeline",
		Long: `Run validates the pipeline (with --once: for a run that stops at the end of
unbounded inputs), builds one goroutine per node and runs it until every
source has ended (a file, generate with a count, kafka with --once) or until
SIGINT/SIGTERM. A stop ends the sources, delivers the batches already read,
flushes the sinks and exits 0 within --drain-timeout; a stop is not the end of
the input, so held state (an aggregate) is not emitted as if final. Sources
commit their positions (Kafka offsets, HTTP answers) only once every sink has
durably stored the rows, so a restart continues where the last run stopped.
At the end a summary accounts for every record: rows in = rows out +
filtered + dead letters.`,
		Example: `  flowrun run examples/pinterest_local.yaml
  flowrun run pipelines/pinterest_ingest.yaml --set KAFKA_BROKERS=127.0.0.1:9092
  flowrun run pipelines/pinterest_streaming.yaml --set KAFKA_BROKERS=127.0.0.1:9092 --set POSTGRES_URL=postgres://...
  flowrun run pipelines/pinterest_clean.yaml --set KAFKA_BROKERS=127.0.0.1:9092
  flowrun run pipelines/pinterest_clean.yaml --once --set OUT=/tmp/clean`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.interval != "" {
				return runInterval(cmd.Context(), reg, args[0], f, cmd.ErrOrStderr())
			}
			if f.force {
				return fmt.Errorf("--force goes with --interval")
			}
			return runPipeline(cmd.Context(), reg, args[0], f, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&f.interval, "interval", "", "run one interval of the pipeline's schedule by hand (backfill): its start, e.g. 2026-11-24 for @daily; implies --once and records the run in the history")
	cmd.Flags().StringVar(&f.shard, "shard", "", "read only share I of N of the bounded lake inputs (a stable hash of each file's path mod N), e.g. 2/4: N processes with 1/N..N/N read every file once")
	cmd.Flags().BoolVar(&f.force, "force", false, "with --interval: run an interval that already succeeded again")
	cmd.Flags().StringVar(&f.history, "history", os.Getenv("FLOWRUN_HISTORY"), "with --interval: directory of the run history (.flowrun/runs.jsonl); default $FLOWRUN_HISTORY, else the pipeline's directory")
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, "override a variable: NAME=VALUE (repeatable)")
	cmd.Flags().BoolVar(&f.once, "once", false, "read unbounded sources up to their current end, then stop (batch mode)")
	cmd.Flags().IntVar(&f.batchRows, "batch-rows", 1024, "rows per batch emitted by sources")
	cmd.Flags().DurationVar(&f.drainTimeout, "drain-timeout", 15*time.Second, "how long a stop may take to drain in-flight batches")
	cmd.Flags().IntVar(&f.memoryMiB, "memory-mib", op.DefaultMemoryBytes>>20, "pipeline-wide memory budget in MiB: batches in queues, operator buffers, request bodies in flight")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress line and no summary")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile to this file")
	cmd.Flags().StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics and the live status page at / on this host:port (e.g. 127.0.0.1:9464)")
	cmd.Flags().StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&f.embedded, "embedded-kafka", "", "serve the in-process Kafka broker of 'brokers: embedded' on this host:port, or join the one another flowrun process serves there")
	return cmd
}

func runPipeline(ctx context.Context, reg *op.Registry, path string, f runFlags, stderr io.Writer) error {
	if f.embedded != "" {
		// Read by operators/kafkaclient when the first embedded broker starts.
		if err := os.Setenv(kafkaclient.EnvEmbeddedAddr, f.embedded); err != nil {
			return err
		}
	}
	var shard op.Shard
	if f.shard != "" {
		var err error
		if shard, err = op.ParseShard(f.shard); err != nil {
			return fmt.Errorf("--shard: %w", err)
		}
	}
	// The run's shard is checked (nodes that need whole groups behind a
	// file-sharded source are refused) and given as ${SHARD_INDEX} and
	// ${SHARD_COUNT}, over the environment and --set like the interval.
	vars := shard.Vars()
	for k, v := range f.vars {
		vars[k] = v
	}
	res, errs, err := loadPipelineFor(validate.Options{Once: f.once, Shards: max(1, shard.Count)}, path, f.sets, vars, reg)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		fmt.Fprint(stderr, errs.Render())
		return &exitError{code: 1}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	var handler slog.Handler
	switch f.logFormat {
	case "text", "":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		return fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	log := slog.New(handler).With("pipeline", res.Pipeline.Name)
	opts := exec.Options{
		Log: log, BatchRows: f.batchRows, Once: f.once, DrainTimeout: f.drainTimeout, Vars: res.Pipeline.Vars,
		MemoryBytes: int64(f.memoryMiB) << 20,
	}
	if shard.Sharded() {
		opts.Shard = shard
		log = log.With("shard", opts.Shard.String())
		opts.Log = log
	}
	var mreg *metrics.Registry
	if f.metricsAddr != "" {
		mreg = metrics.New(log)
		opts.Metrics = mreg
	}
	p, err := exec.New(res, opts)
	if err != nil {
		return err
	}
	if mreg != nil {
		srv := status.New(res, p, mreg, log)
		srv.Recent = recentDeadLetters(p)
		if res.Pipeline.Schedule != "" {
			// A scheduled pipeline: its recent runs, from the history the
			// scheduler and flowrun run --interval keep beside it.
			hdir := f.history
			if hdir == "" {
				hdir = filepath.Dir(path)
			}
			srv.Runs = schedule.NewRecent(hdir, res.Pipeline.Name, recentRuns).Runs
		}
		addr, err := srv.Start(f.metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		log.Info("serving metrics and the status page", "url", "http://"+addr+"/")
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Close(ctx)
		}()
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	progressDone := make(chan struct{})
	progressStopped := make(chan struct{})
	switch {
	case !f.quiet && isTerminal(stderr):
		go func() {
			defer close(progressStopped)
			showProgress(stderr, p, start, progressDone)
		}()
	case !f.quiet:
		// Not a terminal (a service, CI): a plain log line now and then.
		go func() {
			defer close(progressStopped)
			logProgress(log, p, start, progressEvery, progressDone)
		}()
	default:
		close(progressStopped)
	}
	// Streaming batches allocates fast and keeps little alive: collect
	// against a heap goal with headroom (see gcfloor; GOGC overrides).
	stopGC := gcfloor.Start(gcfloor.DefaultHeadroom)
	runErr := p.Run(ctx)
	stopGC()
	close(progressDone)
	<-progressStopped
	if f.rows != nil {
		f.rows(nodeRows(p))
	}
	if runErr == nil && f.stopIsError && ctx.Err() != nil {
		runErr = fmt.Errorf("stopped before the end of the input: %w", context.Cause(ctx))
	}
	if !f.quiet {
		printSummary(stderr, p, time.Since(start))
	}
	return runErr
}

// nodeRows is the rows each node produced (sinks: the rows they received).
func nodeRows(p *exec.Pipeline) map[string]int64 {
	rows := map[string]int64{}
	for _, n := range p.Nodes {
		if n.Section == ast.Sinks {
			rows[n.Name] = n.Stats.RowsIn.Load()
		} else {
			rows[n.Name] = n.Stats.RowsOut.Load()
		}
	}
	return rows
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func showProgress(w io.Writer, p *exec.Pipeline, start time.Time, done <-chan struct{}) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var bar *progressbar.ProgressBar
	for {
		select {
		case <-done:
			if bar != nil {
				bar.Exit() //nolint:errcheck // the terminal line only
			}
			fmt.Fprint(w, "\r\033[K")
			return
		case <-tick.C:
			var parts []string
			var prog op.Progress
			bounded := false
			secs := time.Since(start).Seconds()
			for _, n := range p.Nodes {
				if n.Section != ast.Sources {
					continue
				}
				if pr, ok := n.Progress(); ok && pr.TotalBytes > 0 {
					bounded = true
					prog.Files += pr.Files
					prog.TotalFiles += pr.TotalFiles
					prog.Rows += pr.Rows
					prog.Bytes += pr.Bytes
					prog.TotalBytes += pr.TotalBytes
					continue
				}
				rows := n.Stats.RowsOut.Load()
				parts = append(parts, fmt.Sprintf("%s %s rows (%s/s)", n.Name, human(rows), human(int64(float64(rows)/secs))))
			}
			if !bounded {
				fmt.Fprintf(w, "\r\033[K%s  %s", time.Since(start).Truncate(time.Second), strings.Join(parts, "  "))
				continue
			}
			// A bounded batch run (lake sources): a bar over the bytes of
			// the files to read, with files and rows in its description.
			if bar == nil || bar.GetMax64() != prog.TotalBytes {
				bar = newProgressBar(w, prog.TotalBytes)
			}
			bar.Describe(progressDescription(prog, parts))
			bar.Set64(prog.Bytes) //nolint:errcheck // the terminal line only
		}
	}
}

func newProgressBar(w io.Writer, total int64) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(0),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
	)
}

// progressDescription is the bar's text: files and rows of the bounded
// sources, then the other sources' rows.
func progressDescription(p op.Progress, others []string) string {
	d := fmt.Sprintf("files %d/%d  rows %s", p.Files, p.TotalFiles, human(p.Rows))
	if len(others) > 0 {
		d += "  " + strings.Join(others, "  ")
	}
	return d
}

// progressEvery is how often a run that is not on a terminal logs progress.
var progressEvery = 30 * time.Second

// logProgress logs one line per source every period until done: rows read
// so far and the rate over the last period.
func logProgress(log *slog.Logger, p *exec.Pipeline, start time.Time, every time.Duration, done <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := map[string]int64{}
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			for _, n := range p.Nodes {
				if n.Section != ast.Sources {
					continue
				}
				rows := n.Stats.RowsOut.Load()
				attrs := []any{"node", n.Name, "rows", rows,
					"rows_per_s", int64(float64(rows-last[n.Name]) / every.Seconds()),
					"elapsed", time.Since(start).Truncate(time.Second).String()}
				if pr, ok := n.Progress(); ok && pr.TotalBytes > 0 {
					attrs = append(attrs, "files", fmt.Sprintf("%d/%d", pr.Files, pr.TotalFiles),
						"bytes", fmt.Sprintf("%d/%d", pr.Bytes, pr.TotalBytes))
				}
				log.Info("progress", attrs...)
				last[n.Name] = rows
			}
		}
	}
}

// printSummary accounts for every record per node.
func printSummary(w io.Writer, p *exec.Pipeline, elapsed time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "node\ttype\trows in\trows out\tfiltered\tdead letters\t\n")
	var read int64
	for _, n := range p.Nodes {
		in, out, dead := n.Stats.RowsIn.Load(), n.Stats.RowsOut.Load(), n.Stats.Rejected.Load()
		filtered := "-"
		switch n.Section {
		case ast.Sources:
			read += out + dead
			in = out + dead
		case ast.Transforms:
			if d := in - out - dead; d >= 0 {
				filtered = fmt.Sprint(d)
			}
		case ast.Windows:
			// Rows out are aggregates; late records are counted with the
			// dead letters (they went to late: or dead_letter:).
			dead += n.Stats.Late.Load()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t\n", n.Name, n.Type, in, out, filtered, dead)
	}
	tw.Flush()
	secs := elapsed.Seconds()
	if secs > 0 {
		fmt.Fprintf(w, "%s records read in %s (%s records/s)\n", human(read), elapsed.Truncate(time.Millisecond), human(int64(float64(read)/secs)))
	}
}

func human(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[0] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// recentDeadLetters adapts the runtime's recent dead letters to the page's.
// recentRuns is how many runs of the history the status page shows.
const recentRuns = 20

func recentDeadLetters(p *exec.Pipeline) func() []status.DeadLetter {
	return func() []status.DeadLetter {
		var out []status.DeadLetter
		for _, d := range p.RecentDeadLetters() {
			out = append(out, status.DeadLetter{Node: d.Node, Reason: d.Reason, Record: d.Record, Time: d.Time})
		}
		return out
	}
}
