package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/schedule"
)

const scheduledPipeline = `flowrun: 1
name: daily-posts
schedule: {cron: "@daily", catchup: 2}
sources:
  posts: {generate: {count: 25, seed: 3}}
sinks:
  out:
    from: posts
    file: {path: "${OUT}/${INTERVAL_DATE}/posts.jsonl"}
`

func flowrun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd(op.Default)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestRunIntervalAndRuns: `run --interval` runs one interval with its
// variables and records it; a second run of it is refused unless --force;
// `schedule --once` then runs the due intervals it has not run; `runs`
// lists them all.
func TestRunIntervalAndRuns(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "daily.yaml")
	if err := os.WriteFile(file, []byte(scheduledPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if msg, err := flowrun(t, "run", file, "--interval", "2026-11-24", "--set", "OUT="+out, "-q"); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	data, err := os.ReadFile(filepath.Join(out, "2026-11-24", "posts.jsonl"))
	if err != nil || strings.Count(string(data), "\n") != 25 {
		t.Fatalf("interval output: %v, %d lines", err, strings.Count(string(data), "\n"))
	}
	msg, err := flowrun(t, "run", file, "--interval", "2026-11-24", "--set", "OUT="+out, "-q")
	if err == nil || !strings.Contains(err.Error(), "already succeeded") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("rerun: %v\n%s", err, msg)
	}
	if msg, err := flowrun(t, "run", file, "--interval", "2026-11-24", "--set", "OUT="+out, "-q", "--force"); err != nil {
		t.Fatalf("forced rerun: %v\n%s", err, msg)
	}
	if _, err := flowrun(t, "run", file, "--interval", "2026-11-24T13:00", "--set", "OUT="+out); err == nil ||
		!strings.Contains(err.Error(), "is not the start of an interval") {
		t.Fatalf("misaligned interval: %v", err)
	}
	st, _ := schedule.OpenStore(dir)
	h, err := st.Load()
	if err != nil || len(h.Runs) != 2 {
		t.Fatalf("history: %+v %v", h, err)
	}
	for i, r := range h.Runs {
		if r.Status != schedule.Succeeded || r.Attempt != i+1 || r.Trigger != "manual" || r.Rows["out"] != 25 || r.Rows["posts"] != 25 {
			t.Fatalf("run %d: %+v", i, r)
		}
	}
	// The scheduler catches up from the history's frontier (11-25, where
	// the manual runs ended) to now, at most catchup=2 intervals.
	if msg, err := flowrun(t, "schedule", dir, "--once", "--set", "OUT="+out); err != nil {
		t.Fatalf("schedule: %v\n%s", err, msg)
	}
	list, err := flowrun(t, "runs", dir)
	if err != nil {
		t.Fatal(err)
	}
	// Wall-clock time decides how many days are due: catchup=2 runs the last two.
	if strings.Count(list, "manual    succeeded") != 2 || strings.Count(list, "schedule  succeeded") != 2 ||
		strings.Count(list, "out=25 posts=25") != 4 || !strings.Contains(list, "skipped") {
		t.Fatalf("runs:\n%s", list)
	}
}
