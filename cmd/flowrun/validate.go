package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/pipetest"
)

// exitError asks main to exit with code after the command has already
// printed what went wrong.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Permanent implements op.PermanentError: an exitError reports a pipeline
// that is not valid (its errors already printed), which a retry of the same
// file would find again.
func (e *exitError) Permanent() bool { return true }

// loadPipeline reads, parses and validates the pipeline at path. Variables
// come from --set NAME=VALUE overrides first, then the environment. err is
// for problems outside the file (unreadable, a malformed --set); errs holds
// the file's problems. res is nil only when the file is not valid YAML.
func loadPipeline(path string, sets []string, reg *op.Registry) (*validate.Result, source.Errors, error) {
	return loadPipelineFor(validate.Options{}, path, sets, nil, reg)
}

// loadPipelineFor is loadPipeline for a run with options o (--once) and
// variables extra that take precedence over --set and the environment (a
// scheduled run's INTERVAL_*).
func loadPipelineFor(o validate.Options, path string, sets []string, extra map[string]string, reg *op.Registry) (*validate.Result, source.Errors, error) {
	base, err := varLookup(sets)
	if err != nil {
		return nil, nil, err
	}
	lookup := base
	if len(extra) > 0 {
		lookup = func(name string) (string, bool) {
			if v, ok := extra[name]; ok {
				return v, true
			}
			return base(name)
		}
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	res, errs := o.Load(path, text, lookup, reg)
	return res, errs, nil
}

// checkTestFile validates a NAME.test.yaml against its pipeline without
// running it; the result names the pipeline's checked graph.
func checkTestFile(path string, sets []string, reg *op.Registry) (*validate.Result, source.Errors, error) {
	lookup, err := varLookup(sets)
	if err != nil {
		return nil, nil, err
	}
	r, err := pipetest.RunFile(context.Background(), path, pipetest.Options{Catalog: reg, Lookup: lookup, CheckOnly: true})
	if err != nil {
		return nil, nil, err
	}
	return &validate.Result{}, r.Errors, nil
}

func varLookup(sets []string) (func(string) (string, bool), error) {
	over := map[string]string{}
	for _, s := range sets {
		name, val, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--set %q: want NAME=VALUE", s)
		}
		over[name] = val
	}
	return func(name string) (string, bool) {
		if v, ok := over[name]; ok {
			return v, true
		}
		return os.LookupEnv(name)
	}, nil
}

func newValidateCmd(reg *op.Registry) *cobra.Command {
	var (
		sets    []string
		format  string
		once    bool
		changed bool
	)
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check pipeline files without running them",
		Long: `Validate parses and checks each pipeline file and reports every problem at
once: YAML syntax, unknown keys and operators, wrong value types, bad
durations, missing or unknown 'from' references, cycles, nodes that no sink
uses, undefined ${VARS}, unknown schemas and column types, and each
operator's own checks (expression types against the upstream schema, ...).

Each problem is printed as file:line:col: message, followed by the offending
line and a caret under the column, with a suggestion in parentheses where
there is one. Variables are resolved from --set NAME=VALUE, then the
environment, then the file's vars: defaults.

The exit code is 1 when any file has a problem and 0 when all are clean.
--format json prints a JSON array of {file,line,column,message,hint,code};
--format github prints GitHub Actions workflow annotations.

--changed takes the files as a list of changed files (as a pre-commit hook
passes them): YAML files that are not flowrun's are skipped, and an include
fragment is checked through every pipeline under the current folder that
includes it.`,
		Example: `  flowrun validate pipelines/*.yaml
  flowrun validate --set OUT=/tmp/out pipeline.yaml
  flowrun validate --format github pipelines/*.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "text", "json", "github":
			default:
				return fmt.Errorf("--format %q: want text, json or github", format)
			}
			if changed {
				targets, err := expandChanged(args, ".", cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				args = args[:0]
				for _, t := range targets {
					args = append(args, t.path)
				}
				if len(args) == 0 && format != "json" {
					fmt.Fprintln(cmd.ErrOrStderr(), "flowrun validate: no pipeline, test or included file among the changed files")
					return nil
				}
			}
			return runValidate(cmd.OutOrStdout(), cmd.ErrOrStderr(), reg, args, sets, format, validate.Options{Once: once})
		},
	}
	cmd.Flags().BoolVar(&changed, "changed", false, "the files are changed files (a pre-commit hook): skip other YAML, check pipelines that include a changed fragment")
	cmd.Flags().BoolVar(&once, "once", false, "check for a run with --once (unbounded sources stop at their current end)")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "set a variable: NAME=VALUE (repeatable)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json or github")
	return cmd
}

type jsonError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	Code    string `json:"code,omitempty"`
}

func runValidate(stdout, stderr io.Writer, reg *op.Registry, files, sets []string, format string, o validate.Options) error {
	if _, err := varLookup(sets); err != nil {
		return err
	}
	failed := false
	all := []jsonError{}
	for _, path := range files {
		load := func(path string, sets []string, reg *op.Registry) (*validate.Result, source.Errors, error) {
			return loadPipelineFor(o, path, sets, nil, reg)
		}
		if pipetest.IsTestFile(path) {
			load = checkTestFile
		}
		res, errs, err := load(path, sets, reg)
		if err != nil {
			if format == "json" {
				all = append(all, jsonError{File: path, Message: err.Error(), Code: "io"})
			} else if format == "github" {
				fmt.Fprintf(stdout, "::error file=%s::%s\n", ghProp(path), ghData(err.Error()))
			} else {
				fmt.Fprintf(stderr, "%s: %v\n", path, err)
			}
			failed = true
			continue
		}
		if len(errs) > 0 {
			failed = true
		}
		switch format {
		case "text":
			if len(errs) > 0 {
				fmt.Fprint(stderr, errs.Render())
			} else {
				if pipetest.IsTestFile(path) {
					fmt.Fprintf(stdout, "ok: %s (tests checked against their pipeline)\n", path)
				} else {
					fmt.Fprintf(stdout, "ok: %s (%d nodes)\n", path, len(res.Nodes))
				}
			}
		case "json":
			for _, e := range errs {
				all = append(all, jsonError{File: path, Line: e.Pos.Line, Column: e.Pos.Column, Message: e.Msg, Hint: e.Hint, Code: e.Code})
			}
		case "github":
			for _, e := range errs {
				msg := e.Msg
				if e.Hint != "" {
					msg += " (" + e.Hint + ")"
				}
				fmt.Fprintf(stdout, "::error file=%s,line=%d,col=%d::%s\n", ghProp(path), e.Pos.Line, e.Pos.Column, ghData(msg))
			}
		}
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(all); err != nil {
			return err
		}
	}
	if failed {
		return &exitError{code: 1}
	}
	return nil
}

// ghData escapes a workflow command's message.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProp escapes a workflow command's property value.
func ghProp(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
