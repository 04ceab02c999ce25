package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowrun/flowrun/internal/emulator"
)

func newEmulateCmd() *cobra.Command {
	var (
		cfg      emulator.Config
		asJSON   bool
		quiet    bool
		progress bool
	)
	cmd := &cobra.Command{
		Use:   "emulate",
		Short: "Post generated Pinterest records to an ingest API",
		Long: `Emulate plays a fleet of producers against the http source: it posts records
from the seeded post generator (the same --seed sends the same records) at
--rate posts per second overall, with random gaps, from --posters concurrent
workers. 429, 502-504 and connection errors are retried with exponential
back-off and jitter (Retry-After is honoured); a post still failing after
--retries retries is counted as failed and the run goes on. The report
gives posts sent, accepted, rejected (by status and reason), retried and
failed, the achieved rate and the latency of accepted requests.
It exits 1 when any post failed.`,
		Example: `  flowrun emulate --url http://127.0.0.1:8080/v1/posts --rate 500 --posters 8 --count 100000 --seed 1
  flowrun emulate --url http://127.0.0.1:8080/v1/posts --batch 100 --rate 5000 --duration 30s --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			stderr := cmd.ErrOrStderr()
			if !quiet && (progress || isTerminal(stderr)) {
				cfg.Progress = stderr
			}
			rep, err := emulator.Run(ctx, cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				fmt.Fprint(out, rep.String())
			}
			if rep.Failed > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/v1/posts", "single-post endpoint of the ingest API")
	fl.IntVar(&cfg.Batch, "batch", 0, "send N posts per request (NDJSON) to the batch endpoint")
	fl.StringVar(&cfg.BatchURL, "batch-url", "", "batch endpoint (default: --url + \"/batch\")")
	fl.Float64Var(&cfg.Rate, "rate", 100, "target posts per second overall; 0 = as fast as possible")
	fl.IntVar(&cfg.Posters, "posters", 8, "concurrent posters")
	fl.Int64Var(&cfg.Count, "count", 1000, "posts to send; 0 = until --duration or Ctrl-C")
	fl.DurationVar(&cfg.Duration, "duration", 0, "stop sending after this long (0 = no limit)")
	fl.Int64Var(&cfg.Seed, "seed", 1, "generator seed; equal seeds send equal posts")
	fl.IntVar(&cfg.MaxRetries, "retries", 8, "retries per request before its posts count as failed")
	fl.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "timeout of one request")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress line")
	fl.BoolVar(&progress, "progress", false, "show the progress line even when stderr is not a terminal")
	return cmd
}
