package pipetest_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/flowrun/flowrun/operators/all"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/pipetest"
)

var update = flag.Bool("update", false, "rewrite golden files")

func run(t *testing.T, path string, opts pipetest.Options) *pipetest.FileResult {
	t.Helper()
	opts.Catalog = op.Default
	r, err := pipetest.RunFile(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func text(r *pipetest.FileResult) string {
	var b bytes.Buffer
	var sum pipetest.Summary
	pipetest.WriteText(&b, r, true, &sum)
	// Durations vary between runs.
	var lines []string
	for _, l := range strings.Split(b.String(), "\n") {
		if i := strings.LastIndex(l, " ("); i > 0 && strings.HasSuffix(l, "s)") && (strings.HasPrefix(l, "ok") || strings.HasPrefix(l, "FAIL")) {
			l = l[:i]
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

func TestPassing(t *testing.T) {
	r := run(t, "testdata/pass.test.yaml", pipetest.Options{})
	if r.Failed() {
		t.Fatalf("expected every test to pass:\n%s", text(r))
	}
	if len(r.Tests) != 2 {
		t.Fatalf("ran %d tests, want 2", len(r.Tests))
	}
}

// TestWrongExpectationsFail: deliberately wrong expectations are reported
// with the rows that differ, their numbers and their lines.
func TestWrongExpectationsFail(t *testing.T) {
	r := run(t, "testdata/fail.test.yaml", pipetest.Options{})
	if !r.Failed() || len(r.Tests) != 2 || !r.Tests[0].Failed() || !r.Tests[1].Failed() {
		t.Fatalf("both tests must fail:\n%s", text(r))
	}
	golden(t, "fail.golden", text(r))

	var b bytes.Buffer
	var sum pipetest.Summary
	pipetest.WriteGitHub(&b, r, &sum)
	golden(t, "fail.github.golden", b.String())
	if sum.Failed != 2 || sum.Passed != 0 {
		t.Errorf("summary %+v, want 2 failed", sum)
	}
}

func TestInvalidFileReportsEveryMistake(t *testing.T) {
	r := run(t, "testdata/invalid.test.yaml", pipetest.Options{})
	if len(r.Errors) == 0 || len(r.Tests) != 0 {
		t.Fatalf("an invalid file runs no test and reports errors:\n%s", text(r))
	}
	golden(t, "invalid.golden", text(r))
}

func TestRunSelectsByName(t *testing.T) {
	r := run(t, "testdata/fail.test.yaml", pipetest.Options{Run: mustRegexp(t, "order")})
	if len(r.Tests) != 1 || r.Tests[0].Name != "order matters when asked" {
		t.Fatalf("--run order ran %d tests", len(r.Tests))
	}
}

func TestUpdateRewritesExpectations(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"clean.yaml", "fail.test.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "fail.test.yaml")
	r := run(t, path, pipetest.Options{Update: true})
	if !r.Updated {
		t.Fatal("failing tests with --update must rewrite the file")
	}
	r = run(t, path, pipetest.Options{})
	if r.Failed() {
		t.Fatalf("after --update the tests pass:\n%s", text(r))
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "{id: a, n: 10000}") {
		t.Errorf("updated file lacks the produced row:\n%s", b)
	}
}

func TestFindAndPipelineFor(t *testing.T) {
	files, err := pipetest.Find([]string{"testdata"})
	if err != nil {
		t.Fatal(err)
	}
	// testdata folders are skipped when walking, as go does; a folder
	// given directly is searched.
	// clean.yaml has no tests: block and is not found; inline.yaml has one.
	if len(files) != 6 || !slices.Contains(files, "testdata/inline.yaml") || slices.Contains(files, "testdata/clean.yaml") {
		t.Errorf("found %v, want the 5 test files and inline.yaml", files)
	}
	if r := run(t, "testdata/inline.yaml", pipetest.Options{}); r.Failed() || len(r.Tests) != 1 {
		t.Errorf("inline tests block: want 1 passing test:\n%s", text(r))
	}
	if got := pipetest.PipelineFor("a/b/p.test.yaml", nil); got != "a/b/p.yaml" {
		t.Errorf("PipelineFor = %q", got)
	}
}

// TestHourWindowOnSimulatedTime: hour-long processing-time windows close as
// the test advances the clock; nothing waits for an hour (the test's own
// timeout, far below an hour, would fail it).
func TestHourWindowOnSimulatedTime(t *testing.T) {
	r := run(t, "testdata/hourly.test.yaml", pipetest.Options{Timeout: 20 * time.Second})
	if r.Failed() {
		t.Fatalf("%s", text(r))
	}
}

// TestWatermarkStep: a `watermark:` step closes a window before any later
// row arrives (so an older row after it is late), and a watermark for one
// partition does not close a window another partition still holds open.
func TestWatermarkStep(t *testing.T) {
	r := run(t, "testdata/watermark.test.yaml", pipetest.Options{Timeout: 20 * time.Second})
	if r.Failed() || len(r.Tests) != 2 {
		t.Fatalf("expected 2 passing tests:\n%s", text(r))
	}
}
