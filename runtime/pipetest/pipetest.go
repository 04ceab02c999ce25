// Package pipetest runs pipeline tests (dsl/testfile) with the real runtime
// and the real transforms and windows: every source is replaced by a fixture
// that emits the test's rows, every sink by one that keeps what it receives,
// and time is a simulated clock, so a test needs no server and never sleeps.
// It compares what each sink received with the test's expectations and
// reports differences row by row, with positions in the test file.
package pipetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/testfile"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/op"
)

// Options tune a test run.
type Options struct {
	Catalog *op.Registry
	// Lookup resolves ${VARS} not set by the test file (the environment).
	Lookup func(string) (string, bool)
	// Run selects tests by name (nil: all).
	Run *regexp.Regexp
	// Update rewrites the expectations of failing tests with what the
	// pipeline produced.
	Update bool
	// Timeout bounds one test (default 30s); a test that hangs fails.
	Timeout time.Duration
	// CheckOnly checks the file against its pipeline and runs nothing
	// (what `flowrun validate` does with a test file).
	CheckOnly bool
}

// IsTestFile reports whether path names a test file (NAME.test.yaml).
func IsTestFile(path string) bool {
	return strings.HasSuffix(path, ".test.yaml") || strings.HasSuffix(path, ".test.yml")
}

// FileResult is the outcome of one test file.
type FileResult struct {
	Path    string
	Errors  source.Errors // the file or its pipeline is invalid: no test ran
	Tests   []*TestResult
	Updated bool // --update rewrote the file
}

// Failed reports whether anything in the file failed.
func (r *FileResult) Failed() bool {
	if len(r.Errors) > 0 {
		return true
	}
	for _, t := range r.Tests {
		if t.Failed() {
			return true
		}
	}
	return false
}

// TestResult is the outcome of one test.
type TestResult struct {
	Name     string
	Pos      source.Pos
	Elapsed  time.Duration
	Err      error       // the run itself failed (a node error, a timeout)
	Diffs    []*SinkDiff // sinks whose rows differ from the expectation
	Problems source.Errors
	updates  []update
}

// Failed reports whether the test failed.
func (t *TestResult) Failed() bool { return t.Err != nil || len(t.Diffs) > 0 || len(t.Problems) > 0 }

// SinkDiff is how one sink's rows differ from what the test expects.
type SinkDiff struct {
	Sink       string
	Pos        source.Pos
	Want, Got  int
	Missing    []RowDiff // expected rows not produced
	Unexpected []RowDiff // produced rows not expected
}

// RowDiff is one row of a difference: its number (1-based) on its side,
// its position when it is an expected row, and its compared columns.
type RowDiff struct {
	N    int
	Pos  source.Pos
	Text string
}

type update struct {
	node *yaml.Node
	rows []*yaml.Node
}

// HasTestsBlock reports whether path is a pipeline file (a flowrun: key at
// the top) with its own tests: block.
func HasTestsBlock(path string) bool {
	if !strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml") {
		return false
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var head struct {
		Flowrun yaml.Node `yaml:"flowrun"`
		Tests   yaml.Node `yaml:"tests"`
	}
	if yaml.Unmarshal(text, &head) != nil {
		return false
	}
	return head.Flowrun.Kind != 0 && head.Tests.Kind != 0
}

// Find lists the test files under paths: NAME.test.yaml files, files given
// directly, and pipelines with their own tests: block.
func Find(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != p && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if d.IsDir() {
				return nil
			}
			if IsTestFile(path) || HasTestsBlock(path) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

// PipelineFor returns the pipeline a test file tests: its `pipeline:` key
// relative to the test file, or NAME.yaml beside NAME.test.yaml.
func PipelineFor(testPath string, f *testfile.File) string {
	if f != nil && f.Pipeline != "" {
		if filepath.IsAbs(f.Pipeline) {
			return f.Pipeline
		}
		return filepath.Join(filepath.Dir(testPath), f.Pipeline)
	}
	for _, suf := range []string{".test.yaml", ".test.yml"} {
		if strings.HasSuffix(testPath, suf) {
			return strings.TrimSuffix(testPath, suf) + ".yaml"
		}
	}
	return testPath
}

// RunFile runs every selected test of one file: a NAME.test.yaml, or a
// pipeline file with a tests: block.
func RunFile(ctx context.Context, path string, opts Options) (*FileResult, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	res := &FileResult{Path: path}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var (
		tf       *testfile.File
		tests    []*testfile.Test
		pipePath string
		pipeText []byte
		vars     map[string]string
	)
	if IsTestFile(path) {
		var errs source.Errors
		tf, errs = testfile.Parse(path, text)
		if tf == nil {
			res.Errors = errs
			return res, nil
		}
		// Mistakes in the file's shape are reported together with the
		// checks against the pipeline below.
		res.Errors = errs
		tests, vars = tf.Tests, tf.Vars
		pipePath = PipelineFor(path, tf)
		if pipeText, err = os.ReadFile(pipePath); err != nil {
			res.Errors.Add(tf.PipelinePos, "cannot read the pipeline this file tests: %v", err).Code = "pipeline"
			if !tf.PipelinePos.IsValid() {
				res.Errors[0].Pos = source.Pos{File: tf.Src, Line: 1, Column: 1}
			}
			return res, nil
		}
	} else {
		pipePath, pipeText = path, text
	}
	lookup := func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		if opts.Lookup != nil {
			return opts.Lookup(name)
		}
		return "", false
	}
	load := func() (*validate.Result, source.Errors) {
		// Fixture inputs are finite: check the pipeline as for a --once run.
		return validate.Options{Once: true}.Load(pipePath, pipeText, lookup, opts.Catalog)
	}
	checked, errs := load()
	if len(errs) > 0 {
		res.Errors = append(res.Errors, errs...)
		res.Errors.Sort()
		return res, nil
	}
	if tf == nil {
		if checked.Pipeline.Tests == nil {
			return res, nil
		}
		tests, errs = testfile.ParseTests(checked.Pipeline.File, checked.Pipeline.Tests)
		if len(errs) > 0 {
			res.Errors = errs
			return res, nil
		}
	}
	var selected []*testfile.Test
	for _, t := range tests {
		if opts.Run == nil || opts.Run.MatchString(t.Name) {
			selected = append(selected, t)
		}
	}
	// Check every test against the pipeline before running any, so a test
	// file is validated as a whole, like a pipeline file.
	for _, t := range selected {
		checked, _ := load()
		h := newHarness(checked)
		steps := h.prepare(t, &res.Errors)
		releaseSteps(steps)
	}
	if len(res.Errors) > 0 || opts.CheckOnly {
		res.Errors.Sort()
		return res, nil
	}
	for _, t := range selected {
		checked, _ := load() // fresh operator instances for every test
		res.Tests = append(res.Tests, runTest(ctx, checked, t, opts.Timeout))
	}
	if opts.Update && tf != nil {
		changed := false
		for _, tr := range res.Tests {
			for _, u := range tr.updates {
				u.node.Kind, u.node.Tag, u.node.Style, u.node.Value = yaml.SequenceNode, "!!seq", 0, ""
				u.node.Content = u.rows
				changed = true
			}
		}
		if changed {
			var b strings.Builder
			enc := yaml.NewEncoder(&b)
			enc.SetIndent(2)
			if err := enc.Encode(tf.Root); err != nil {
				return nil, err
			}
			if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
				return nil, err
			}
			res.Updated = true
		}
	}
	return res, nil
}

// harness is one test's running pipeline with its fixtures.
type harness struct {
	sources map[string]*fixtureSource
	sinks   map[string]*fixtureSink
	nodes   map[string]*validate.Node
	pending atomic.Int64
}

func newHarness(checked *validate.Result) *harness {
	h := &harness{sources: map[string]*fixtureSource{}, sinks: map[string]*fixtureSink{}, nodes: map[string]*validate.Node{}}
	for _, n := range checked.Nodes {
		h.nodes[n.Name()] = n
		switch n.AST.Section {
		case ast.Sources:
			s := &fixtureSource{name: n.Name(), items: make(chan item), offsets: map[int32]int64{}, pending: &h.pending}
			h.sources[n.Name()] = s
			n.Build = op.Constructor(func(op.Resources) (any, error) { return s, nil })
		case ast.Sinks:
			s := &fixtureSink{}
			h.sinks[n.Name()] = s
			n.Build = op.Constructor(func(op.Resources) (any, error) { return s, nil })
		}
	}
	return h
}

// prepare checks a test against the pipeline and builds its input records.
func (h *harness) prepare(t *testfile.Test, probs *source.Errors) [][]stepInput {
	alloc := memory.NewGoAllocator()
	steps := make([][]stepInput, len(t.Steps))
	for i, st := range t.Steps {
		for _, in := range st.Inputs {
			src := h.source(in.Source, in.Pos, "input", probs)
			if src == nil {
				continue
			}
			recs := buildInput(alloc, h.nodes[in.Source].Output, in, probs)
			steps[i] = append(steps[i], stepInput{src: src, recs: recs})
		}
		for _, w := range st.Watermarks {
			src := h.source(w.Source, w.Pos, "watermark", probs)
			if src == nil {
				continue
			}
			steps[i] = append(steps[i], stepInput{src: src, marks: []*testfile.Watermark{w}})
		}
	}
	for _, e := range t.Expect {
		if h.sinks[e.Sink] == nil {
			ee := probs.Add(e.Pos, "expectation for '%s', which is not a sink of the pipeline", e.Sink)
			ee.Hint = source.DidYouMean(e.Sink, keys(h.sinks))
			continue
		}
		checkExpect(h.nodes[e.Sink], e, probs)
	}
	return steps
}

// source is the fixture of the pipeline's source name, or nil with a
// problem (what the step gives: input, watermark) at pos.
func (h *harness) source(name string, pos source.Pos, what string, probs *source.Errors) *fixtureSource {
	src := h.sources[name]
	if src == nil {
		e := probs.Add(pos, "%s for '%s', which is not a source of the pipeline", what, name)
		e.Hint = source.DidYouMean(name, keys(h.sources))
	}
	return src
}

func runTest(ctx context.Context, checked *validate.Result, t *testfile.Test, timeout time.Duration) *TestResult {
	tr := &TestResult{Name: t.Name, Pos: t.Pos}
	start := time.Now()
	defer func() { tr.Elapsed = time.Since(start) }()

	h := newHarness(checked)
	alloc := memory.NewGoAllocator()
	steps := h.prepare(t, &tr.Problems)
	if len(tr.Problems) > 0 {
		releaseSteps(steps)
		tr.Problems.Sort()
		return tr
	}

	clock := op.NewManualClock(t.Start)
	p, err := exec.New(checked, exec.Options{
		Clock: clock, Alloc: alloc, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		DrainTimeout: timeout, Vars: checked.Pipeline.Vars,
	})
	if err != nil {
		releaseSteps(steps)
		tr.Err = err
		return tr
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(ctx) }()

	driveErr := h.drive(ctx, p, clock, t, steps)
	for _, s := range h.sources {
		close(s.items)
	}
	err = <-runErr
	switch {
	case driveErr != nil:
		tr.Err = driveErr
	case err != nil:
		tr.Err = err
	case ctx.Err() != nil:
		tr.Err = fmt.Errorf("the test did not finish within %s", timeout)
	}
	if tr.Err != nil {
		return tr
	}
	for _, e := range t.Expect {
		d, up := compare(h.sinks[e.Sink], h.nodes[e.Sink], e, &tr.Problems)
		if d != nil {
			tr.Diffs = append(tr.Diffs, d)
			if up != nil {
				tr.updates = append(tr.updates, *up)
			}
		}
	}
	return tr
}

type stepInput struct {
	src   *fixtureSource
	recs  []partRecord
	marks []*testfile.Watermark
}

func releaseSteps(steps [][]stepInput) {
	for _, st := range steps {
		for _, in := range st {
			for _, r := range in.recs {
				r.rec.Release()
			}
		}
	}
}

// drive feeds the steps in order; recs of steps not reached are released.
func (h *harness) drive(ctx context.Context, p *exec.Pipeline, clock *op.ManualClock, t *testfile.Test, steps [][]stepInput) error {
	for i, st := range t.Steps {
		switch {
		case st.Advance > 0:
			h.waitIdle(ctx, p)
			clock.Advance(st.Advance)
		}
		for j, in := range steps[i] {
			done := make(chan error, 1)
			select {
			case in.src.items <- item{recs: in.recs, marks: in.marks, done: done}:
			case <-ctx.Done():
				releaseSteps(append([][]stepInput{steps[i][j:]}, steps[i+1:]...))
				return fmt.Errorf("%s: the pipeline stopped before this input was read", st.Pos)
			}
			select {
			case err := <-done:
				if err != nil {
					releaseSteps(append([][]stepInput{steps[i][j+1:]}, steps[i+1:]...))
					return nil // the run's own error is reported
				}
			case <-ctx.Done():
				releaseSteps(append([][]stepInput{steps[i][j+1:]}, steps[i+1:]...))
				return fmt.Errorf("%s: the pipeline stopped while reading this input", st.Pos)
			}
		}
	}
	return nil
}

// waitIdle returns once everything fed so far has been processed: every
// emitted batch acknowledged, or (when operators hold acks, as windows do)
// every queue empty and the node counters still for a few polls.
func (h *harness) waitIdle(ctx context.Context, p *exec.Pipeline) {
	var last int64 = -1
	still := 0
	for ctx.Err() == nil {
		if h.pending.Load() == 0 {
			return
		}
		var moved int64
		empty := true
		for _, n := range p.Nodes {
			moved += n.Stats.BatchesIn.Load() + n.Stats.RowsOut.Load()
			if n.Stats.QueueLength != nil && n.Stats.QueueLength() > 0 {
				empty = false
			}
		}
		if empty && moved == last {
			if still++; still >= 5 {
				return
			}
		} else {
			still = 0
		}
		last = moved
		time.Sleep(time.Millisecond)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// buildInput converts one input's rows into records, one per partition,
// with the source's output schema; problems are reported at the cell.
func buildInput(alloc memory.Allocator, schema *arrow.Schema, in *testfile.Input, probs *source.Errors) []partRecord {
	byPart := map[int32][]*testfile.Row{}
	var parts []int32
	for _, r := range in.Rows {
		if _, ok := byPart[r.Partition]; !ok {
			parts = append(parts, r.Partition)
		}
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	var out []partRecord
	for _, part := range parts {
		b := array.NewRecordBuilder(alloc, schema)
		ok := true
		for _, r := range byPart[part] {
			ok = appendRow(b, schema, r, in.Source, probs) && ok
		}
		rec := b.NewRecordBatch()
		b.Release()
		if !ok {
			rec.Release()
			continue
		}
		out = append(out, partRecord{partition: part, rec: rec})
	}
	return out
}

const (
	colPartition = "_partition"
	colKey       = "_key"
)

func appendRow(b *array.RecordBuilder, schema *arrow.Schema, r *testfile.Row, src string, probs *source.Errors) bool {
	vals := make([]any, schema.NumFields())
	for _, c := range r.Cells {
		idx := schema.FieldIndices(c.Column)
		if len(idx) == 0 {
			e := probs.Add(c.Pos, "source '%s' has no column '%s'", src, c.Column)
			e.Hint = source.DidYouMean(c.Column, fieldNames(schema))
			return false
		}
		v, err := goValue(c.Value, schema.Field(idx[0]).Type)
		if err != nil {
			probs.Add(c.Pos, "column '%s': %v", c.Column, err)
			return false
		}
		vals[idx[0]] = v
	}
	if idx := schema.FieldIndices(colPartition); len(idx) > 0 && vals[idx[0]] == nil {
		vals[idx[0]] = int64(r.Partition)
	}
	if r.Key != nil {
		idx := schema.FieldIndices(colKey)
		if len(idx) == 0 {
			probs.Add(r.Pos, "$key given, but source '%s' has no _key column (set metadata: true on the kafka source)", src)
			return false
		}
		vals[idx[0]] = *r.Key
	}
	// Check every value before appending any, so a bad row leaves no partial row.
	for i, v := range vals {
		if err := checkFits(v, schema.Field(i).Type); err != nil {
			probs.Add(r.Pos, "column '%s': %v", schema.Field(i).Name, err)
			return false
		}
	}
	for i, v := range vals {
		if err := appendValue(b.Field(i), v); err != nil {
			probs.Add(r.Pos, "column '%s': %v", schema.Field(i).Name, err)
			return false
		}
	}
	return true
}

func fieldNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}
