package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowrun/flowrun/runtime/op"
)

// TestShippedPipelinesHaveTests: every pipeline in pipelines/ and examples/
// validates, has a NAME.test.yaml, and its tests pass.
func TestShippedPipelinesHaveTests(t *testing.T) {
	var pipes []string
	for _, dir := range []string{"../../pipelines", "../../examples"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			if !strings.HasSuffix(p, ".test.yaml") {
				pipes = append(pipes, p)
			}
		}
	}
	if len(pipes) < 2 {
		t.Fatalf("found only %v", pipes)
	}
	for _, p := range pipes {
		tf := strings.TrimSuffix(p, ".yaml") + ".test.yaml"
		if _, err := os.Stat(tf); err != nil {
			t.Errorf("%s has no tests (%s)", p, tf)
		}
	}
	var out bytes.Buffer
	root := newRootCmd(op.Default)
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"test", "../../pipelines", "../../examples"})
	if err := root.Execute(); err != nil {
		t.Fatalf("flowrun test failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "ok: ") || strings.Contains(out.String(), " 0 passed") {
		t.Errorf("unexpected summary:\n%s", out.String())
	}
}

// TestTestCmdFailsOnWrongExpectations: the command exits 1 and prints the
// diff when an expectation is wrong.
func TestTestCmdFailsOnWrongExpectations(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd(op.Default)
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"test", "../../runtime/pipetest/testdata/fail.test.yaml"})
	err := root.Execute()
	var ee *exitError
	if err == nil || !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("want exit code 1, got %v\n%s", err, out.String())
	}
	for _, want := range []string{"FAIL ", "- expected row 1 (../../runtime/pipetest/testdata/fail.test.yaml:10), not produced: {id: \"a\", n: 1000}", "+ got row 1, not expected:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
