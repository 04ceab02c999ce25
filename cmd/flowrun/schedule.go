package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowrun/flowrun/dsl/parse"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/metrics"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/schedule"
	"github.com/flowrun/flowrun/runtime/status"
)

// placeholderVars stand in for a run's interval when a pipeline file is
// read only for its schedule.
var placeholderVars = schedule.Interval{Start: time.Unix(0, 0).UTC(), End: time.Unix(86400, 0).UTC()}.Vars()

// readSchedule parses path for its schedule: nil (and no error) when it has none.
func readSchedule(path string, sets []string) (name string, sc *validate.Schedule, err error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	base, err := varLookup(sets)
	if err != nil {
		return "", nil, err
	}
	lookup := func(n string) (string, bool) {
		if v, ok := placeholderVars[n]; ok {
			return v, true
		}
		return base(n)
	}
	p, errs := parse.Parse(path, text, lookup)
	if p == nil {
		return "", nil, errors.New(errs.Render())
	}
	var serrs source.Errors
	sc = validate.ParseSchedule(p, &serrs)
	if len(serrs) > 0 {
		return "", nil, errors.New(strings.TrimSpace(serrs.Render()))
	}
	return p.Name, sc, nil
}

// pipelineFiles lists the pipelines of dir (*.yaml, *.yml; not tests).
func pipelineFiles(dir string) ([]string, error) {
	var out []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		for _, f := range m {
			if !strings.HasSuffix(f, ".test.yaml") && !strings.HasSuffix(f, ".test.yml") {
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

type scheduleFlags struct {
	run       runFlags
	once      bool
	maxActive int
	shards    int
}

func newScheduleCmd(reg *op.Registry) *cobra.Command {
	var f scheduleFlags
	cmd := &cobra.Command{
		Use:   "schedule DIR",
		Short: "Run the scheduled pipelines of a directory when their intervals are due",
		Long: `Schedule runs every pipeline in DIR that declares 'schedule:' once per
interval of its schedule, when the interval has ended (Airflow's data
interval): the run receives ${INTERVAL_START} and ${INTERVAL_END} (RFC 3339
in the schedule's time zone), ${INTERVAL_DATE} (2026-11-24) and their Unix
forms. Missed intervals are caught up oldest first, at most 'catchup' of them
(older ones are recorded as skipped; backfill them with flowrun run FILE
--interval); a failed run is retried after retry_backoff, doubling up to
max_backoff, 'retries' times; at most --max-active runs go at once, one per
pipeline. Every run is recorded in DIR/.flowrun/runs.jsonl (see flowrun
runs). A stop (SIGINT/SIGTERM) interrupts the runs going; they are recorded
as interrupted and retried by the next scheduler, as are runs of a scheduler
that crashed.`,
		Example: `  flowrun schedule pipelines/
  flowrun schedule pipelines/ --once        # run what is due now and exit (cron, systemd timer)
  flowrun runs pipelines/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSchedule(cmd.Context(), reg, args[0], f, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringArrayVar(&f.run.sets, "set", nil, "override a variable of every pipeline: NAME=VALUE (repeatable)")
	cmd.Flags().BoolVar(&f.once, "once", false, "run what is due now (and what becomes due as runs end), then exit")
	cmd.Flags().IntVar(&f.maxActive, "max-active", 2, "runs at once over all pipelines")
	cmd.Flags().IntVar(&f.shards, "shards", 0, "run every interval of every pipeline as this many shard runs (default: the pipeline's schedule: {shards: N}, else 1) (flowrun run --shard I/N: each lake source reads its share of the files), within --max-active")
	cmd.Flags().StringVar(&f.run.metricsAddr, "metrics-addr", "", "serve the scheduler's Prometheus /metrics (runs by status, last success) and a status page of the recent runs at / on this host:port")
	cmd.Flags().StringVar(&f.run.history, "history", os.Getenv("FLOWRUN_HISTORY"), "directory of the run history (.flowrun/runs.jsonl); default $FLOWRUN_HISTORY, else DIR")
	cmd.Flags().IntVar(&f.run.batchRows, "batch-rows", 1024, "rows per batch emitted by sources")
	cmd.Flags().DurationVar(&f.run.drainTimeout, "drain-timeout", 15*time.Second, "how long a stop may take to drain in-flight batches")
	cmd.Flags().StringVar(&f.run.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func runSchedule(ctx context.Context, reg *op.Registry, dir string, f scheduleFlags, stderr io.Writer) error {
	// Concurrent runs (and the scheduler) share stderr: serialise writes,
	// since the caller's writer need not be safe for concurrent use.
	stderr = &lockedWriter{w: stderr}
	files, err := pipelineFiles(dir)
	if err != nil {
		return err
	}
	var pipelines []schedule.Pipeline
	seen := map[string]string{}
	for _, file := range files {
		name, sc, err := readSchedule(file, f.run.sets)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if sc == nil {
			continue
		}
		if other, dup := seen[name]; dup {
			return fmt.Errorf("%s and %s are both named %q: scheduled pipelines need distinct names", other, file, name)
		}
		seen[name] = file
		// Check the whole pipeline now rather than at its first run.
		if _, errs, err := loadPipelineFor(validate.Options{Once: true, Shards: f.shards}, file, f.run.sets, placeholderVars, reg); err != nil {
			return err
		} else if len(errs) > 0 {
			fmt.Fprint(stderr, errs.Render())
			return &exitError{code: 1}
		}
		pipelines = append(pipelines, schedule.Pipeline{Name: name, File: file, Sched: sc, Shards: sc.Shards})
		if f.shards > 0 {
			pipelines[len(pipelines)-1].Shards = f.shards
		}
	}
	if len(pipelines) == 0 {
		return fmt.Errorf("no pipeline in %s declares 'schedule:'", dir)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.run.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	hdir := f.run.history
	if hdir == "" {
		hdir = dir
	}
	st, err := schedule.OpenStore(hdir)
	if err != nil {
		return err
	}
	for _, p := range pipelines {
		log.Info("schedule: pipeline", "name", p.Name, "file", p.File, "cron", p.Sched.Cron, "timezone", p.Sched.Location.String())
	}
	opts := schedule.Options{MaxActive: f.maxActive, Log: log}
	if f.run.metricsAddr != "" {
		// The scheduler's own /metrics (runs by status and the last success
		// per pipeline), and a status page of the recent runs of every
		// pipeline it schedules, read from the history.
		mreg := metrics.New(log)
		opts.Metrics = mreg
		srv := status.NewScheduler("schedule "+dir, mreg, log)
		srv.Runs = schedule.NewRecent(hdir, "", recentRuns).Runs
		addr, err := srv.Start(f.run.metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Close(ctx)
		}()
		log.Info("serving scheduler metrics and the status page", "url", "http://"+addr+"/")
	}
	s := schedule.New(st, pipelines, schedule.Options{MaxActive: opts.MaxActive, Log: log, Metrics: opts.Metrics,
		Run: func(ctx context.Context, j schedule.Job) (schedule.Result, error) {
			rf := f.run
			rf.once, rf.quiet, rf.stopIsError = true, true, true
			rf.metricsAddr = "" // the scheduler serves the metrics, not each run
			rf.vars = j.Interval.Vars()
			rf.shard = j.Shard
			var res schedule.Result
			rf.rows = func(m map[string]int64) { res.Rows = m }
			err := runPipeline(ctx, reg, j.Pipeline.File, rf, stderr)
			return res, err
		}})
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.once {
		return s.RunDue(ctx)
	}
	return s.Run(ctx)
}

// runInterval is `flowrun run FILE --interval X`: one interval, by hand,
// recorded in the history beside the file; refused when it already
// succeeded (or is running) unless --force.
func runInterval(ctx context.Context, reg *op.Registry, path string, f runFlags, stderr io.Writer) error {
	name, sc, err := readSchedule(path, f.sets)
	if err != nil {
		return err
	}
	if sc == nil {
		return fmt.Errorf("%s has no 'schedule:', so it has no intervals: run it without --interval", path)
	}
	iv, err := schedule.ParseInterval(sc, f.interval)
	if err != nil {
		return err
	}
	hdir := f.history
	if hdir == "" {
		hdir = filepath.Dir(path)
	}
	st, err := schedule.OpenStore(hdir)
	if err != nil {
		return err
	}
	shard := ""
	if f.shard != "" {
		sh, err := op.ParseShard(f.shard)
		if err != nil {
			return fmt.Errorf("--shard: %w", err)
		}
		shard = sh.String()
	}
	what := "interval " + iv.String()
	if shard != "" {
		what = "shard " + shard + " of interval " + iv.String()
	}
	host, _ := os.Hostname()
	run := schedule.Run{Pipeline: name, File: path, Start: iv.Start, End: iv.End, Trigger: "manual",
		Status: schedule.Running, Started: time.Now(), Host: host, PID: os.Getpid(), Shard: shard}
	err = st.Update(func(h *schedule.History) ([]schedule.Run, error) {
		if r, ok := h.Succeeded(name, iv.Start); ok && !f.force {
			return nil, fmt.Errorf("interval %s of %s already succeeded (run %s, ended %s): add --force to run it again",
				iv, name, r.ID, r.Ended.Format(time.RFC3339))
		}
		if r, ok := h.ShardSucceeded(name, iv.Start, shard); ok && shard != "" && !f.force {
			return nil, fmt.Errorf("%s of %s already succeeded (run %s, ended %s): add --force to run it again",
				what, name, r.ID, r.Ended.Format(time.RFC3339))
		}
		last, ok := h.LatestShard(name, iv.Start, shard)
		if ok && last.Status == schedule.Running && last.Host == host && processAlive(last.PID) {
			return nil, fmt.Errorf("%s of %s is running now (run %s, pid %d)", what, name, last.ID, last.PID)
		}
		run.Attempt = 1
		var records []schedule.Run
		if ok {
			run.Attempt = last.Attempt + 1
			if last.Status == schedule.Running && last.Host == host {
				// Its process died mid-run (a crash, a SIGKILL): record it
				// as the scheduler's Recover does, so the history does not
				// show it running for ever.
				last.Status, last.Ended = schedule.Interrupted, time.Now()
				last.Error = fmt.Sprintf("process %d on %s ended during the run", last.PID, last.Host)
				records = append(records, last)
			}
		}
		run.ID = schedule.ShardRunID(name, iv.Start, shard, run.Attempt)
		return append(records, run), nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "run %s: %s\n", run.ID, what)
	f.once, f.stopIsError = true, true
	f.vars = iv.Vars()
	f.rows = func(m map[string]int64) { run.Rows = m }
	runErr := runPipeline(ctx, reg, path, f, stderr)
	run.Ended, run.Status = time.Now(), schedule.Succeeded
	if runErr != nil {
		run.Status, run.Error = schedule.Failed, runErr.Error()
		var ee *exitError
		if errors.As(runErr, &ee) {
			run.Error = "the pipeline is not valid"
		}
	}
	if err := st.Append(run); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func newRunsCmd() *cobra.Command {
	var (
		pipeline string
		asJSON   bool
		last     int
	)
	cmd := &cobra.Command{
		Use:   "runs [DIR]",
		Short: "List the run history of the scheduled pipelines in a directory",
		Long: `Runs prints the history flowrun schedule and flowrun run --interval record in
DIR/.flowrun/runs.jsonl (default DIR: $FLOWRUN_HISTORY, else the current
directory): per run its
pipeline, interval, attempt, trigger, status, start, duration, rows per node
and error.`,
		Example: `  flowrun runs pipelines/
  flowrun runs pipelines/ --pipeline pinterest-batch --last 10
  flowrun runs pipelines/ --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			} else if h := os.Getenv("FLOWRUN_HISTORY"); h != "" {
				dir = h
			}
			st, err := schedule.OpenStore(dir)
			if err != nil {
				return err
			}
			h, err := st.Load()
			if err != nil {
				return err
			}
			var runs []schedule.Run
			for _, r := range h.Runs {
				if pipeline == "" || r.Pipeline == pipeline {
					runs = append(runs, r)
				}
			}
			if last > 0 && len(runs) > last {
				runs = runs[len(runs)-last:]
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				for _, r := range runs {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			if len(runs) == 0 {
				fmt.Fprintf(w, "no runs recorded in %s\n", st.Path())
				return nil
			}
			printRuns(w, runs)
			if h.Torn > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d unreadable line(s) skipped (torn by a crash)\n", h.Torn)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "only this pipeline's runs")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per run")
	cmd.Flags().IntVar(&last, "last", 0, "only the last N runs")
	return cmd
}

func printRuns(w io.Writer, runs []schedule.Run) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tINTERVAL\tATTEMPT\tTRIGGER\tSTATUS\tSTARTED\tDURATION\tROWS\tERROR")
	for _, r := range runs {
		dur := "-"
		if !r.Ended.IsZero() && r.Status != schedule.Skipped {
			dur = r.Ended.Sub(r.Started).Round(time.Millisecond).String()
		}
		var rows []string
		for n, v := range r.Rows {
			rows = append(rows, fmt.Sprintf("%s=%d", n, v))
		}
		sort.Strings(rows)
		errText := r.Error
		if len(errText) > 80 {
			errText = errText[:77] + "..."
		}
		iv := r.Start.Format(time.RFC3339) + " .. " + r.End.Format(time.RFC3339)
		if r.Shard != "" {
			iv += " [" + r.Shard + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Pipeline,
			iv, r.Attempt, r.Trigger, r.Status,
			r.Started.Local().Format("2006-01-02 15:04:05"), dur, strings.Join(rows, " "), strings.ReplaceAll(errText, "\n", " "))
	}
	tw.Flush()
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
