package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/pipetest"
)

type testFlags struct {
	run     string
	format  string
	update  bool
	verbose bool
	changed bool
	sets    []string
	timeout time.Duration
}

func newTestCmd(reg *op.Registry) *cobra.Command {
	var f testFlags
	cmd := &cobra.Command{
		Use:   "test [FILE|DIR]...",
		Short: "Run pipeline tests: given input rows per source, expect rows per sink",
		Long: `Test runs the tests in NAME.test.yaml files (found recursively in DIRs, the
current folder by default) and in pipelines' own tests: blocks. Each test
runs the real pipeline in-process with every source replaced by the test's
input rows and every sink by a collector, on a simulated clock: no server
is needed and no test waits for window time.

A failing test prints, per sink, the expected rows that were not produced
(with their file:line) and the produced rows that were not expected. The
exit code is 1 when any test fails or any file is invalid.

--update rewrites the expectations of failing tests with what the pipeline
produced; review the change before committing it.

--changed takes the files as a list of changed files (as a pre-commit hook
passes them): a changed pipeline runs its NAME.test.yaml (and its own
tests: block), a changed include fragment the tests of every pipeline
under the current folder that includes it, and other YAML is skipped.`,
		Example: `  flowrun test pipelines/
  flowrun test pipelines/pinterest_clean.test.yaml --run 'counts'
  flowrun test --format github pipelines/ examples/`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.format != "text" && f.format != "github" {
				return fmt.Errorf("--format %q: want text or github", f.format)
			}
			if f.changed {
				files, err := changedTests(args, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				if len(files) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "flowrun test: no tests for the changed files")
					return nil
				}
				args = files
			}
			if len(args) == 0 {
				args = []string{"."}
			}
			return runTests(cmd, reg, args, f)
		},
	}
	cmd.Flags().StringVar(&f.run, "run", "", "run only tests whose name matches this regular expression")
	cmd.Flags().StringVar(&f.format, "format", "text", "output format: text or github (workflow annotations)")
	cmd.Flags().BoolVar(&f.update, "update", false, "rewrite failing expectations with what the pipeline produced")
	cmd.Flags().BoolVar(&f.changed, "changed", false, "the files are changed files (a pre-commit hook): run the tests of changed pipelines and of pipelines that include a changed fragment")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "print passing tests too")
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, "set a variable: NAME=VALUE (repeatable)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "fail a test that runs longer than this")
	return cmd
}

func runTests(cmd *cobra.Command, reg *op.Registry, args []string, f testFlags) error {
	lookup, err := varLookup(f.sets)
	if err != nil {
		return err
	}
	opts := pipetest.Options{Catalog: reg, Lookup: lookup, Update: f.update, Timeout: f.timeout}
	if f.run != "" {
		if opts.Run, err = regexp.Compile(f.run); err != nil {
			return fmt.Errorf("--run: %w", err)
		}
	}
	files, err := pipetest.Find(args)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if len(files) == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "flowrun test: no NAME.test.yaml files in %v\n", args)
		return &exitError{code: 1}
	}
	var sum pipetest.Summary
	for _, path := range files {
		r, err := pipetest.RunFile(cmd.Context(), path, opts)
		if err != nil {
			return err
		}
		if f.format == "github" {
			pipetest.WriteGitHub(out, r, &sum)
		} else {
			pipetest.WriteText(out, r, f.verbose, &sum)
		}
	}
	printTestSummary(out, sum)
	if sum.Failed > 0 || sum.Invalid > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// changedTests lists the test files that exercise the changed files.
func changedTests(changed []string, notes io.Writer) ([]string, error) {
	targets, err := expandChanged(changed, ".", notes)
	if err != nil {
		return nil, err
	}
	byPipeline, err := testsByPipeline(".")
	if err != nil {
		return nil, err
	}
	var files []string
	seen := map[string]bool{}
	for _, t := range targets {
		tests := testsOf(t, byPipeline)
		if len(tests) == 0 {
			fmt.Fprintf(notes, "no tests: %s (its tests would be in %s.test.yaml)\n", t.path, strings.TrimSuffix(strings.TrimSuffix(t.path, ".yaml"), ".yml"))
		}
		for _, p := range tests {
			if !seen[p] {
				seen[p] = true
				files = append(files, p)
			}
		}
	}
	return files, nil
}

func printTestSummary(w io.Writer, s pipetest.Summary) {
	status := "ok"
	if s.Failed > 0 || s.Invalid > 0 {
		status = "FAIL"
	}
	fmt.Fprintf(w, "%s: %d passed, %d failed, %d invalid files, in %d files\n", status, s.Passed, s.Failed, s.Invalid, s.Files)
}
