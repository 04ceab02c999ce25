package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

const lakeWriter = `flowrun: 1
name: lake-writer
sources:
  posts: {generate: {count: 1000, seed: 7}}
sinks:
  lake:
    from: posts
    lake: {path: "${LAKE}", partition_by: {dt: '"2026-11-24"'}, file_rows: 37}
`

const shardedBatch = `flowrun: 1
name: sharded
schedule: "@daily"
sources:
  posts:
    lake: {path: "${LAKE}", from: "${INTERVAL_START}", to: "${INTERVAL_END}"}
sinks:
  out:
    from: posts
    file: {path: "${OUT}/posts.jsonl"}
`

// TestRunIntervalShards: the N shards of an interval (flowrun run
// --interval --shard I/N) write disjoint rows whose union is the unsharded
// run's; each shard is recorded separately, a succeeded shard is refused
// unless --force, and the interval counts as succeeded once all N shards
// have.
func TestRunIntervalShards(t *testing.T) {
	dir := t.TempDir()
	lake := filepath.Join(dir, "lake")
	writer := filepath.Join(dir, "writer.yaml")
	batch := filepath.Join(dir, "batch.yaml")
	os.WriteFile(writer, []byte(lakeWriter), 0o644)
	os.WriteFile(batch, []byte(shardedBatch), 0o644)
	if msg, err := flowrun(t, "run", writer, "--set", "LAKE="+lake, "--batch-rows", "37", "-q"); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	lines := func(path string) []string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	}
	const n = 3
	seen := map[string]int{}
	for i := 1; i <= n; i++ {
		shard := fmt.Sprintf("%d/%d", i, n)
		out := filepath.Join(dir, fmt.Sprint("shard", i))
		if msg, err := flowrun(t, "run", batch, "--interval", "2026-11-24", "--shard", shard, "--set", "LAKE="+lake, "--set", "OUT="+out, "-q"); err != nil {
			t.Fatalf("shard %s: %v\n%s", shard, err, msg)
		}
		got := lines(filepath.Join(out, "posts.jsonl"))
		if len(got) == 0 || len(got) >= 1000 {
			t.Fatalf("shard %s wrote %d rows: not a share of 1000", shard, len(got))
		}
		for _, l := range got {
			if prev, dup := seen[l]; dup {
				t.Fatalf("row written by shards %d and %d: %s", prev, i, l)
			}
			seen[l] = i
		}
		if i < n {
			// Not all shards done: the interval is not succeeded.
			st, _ := schedule.OpenStore(dir)
			h, _ := st.Load()
			if _, ok := h.Succeeded("sharded", time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)); ok {
				t.Fatalf("interval succeeded after %d of %d shards", i, n)
			}
		}
	}
	if _, err := flowrun(t, "run", batch, "--interval", "2026-11-24", "--shard", "2/3", "--set", "LAKE="+lake, "--set", "OUT="+dir, "-q"); err == nil ||
		!strings.Contains(err.Error(), "already succeeded") {
		t.Fatalf("rerun of a succeeded shard: %v", err)
	}
	if _, err := flowrun(t, "run", batch, "--interval", "2026-11-24", "--set", "LAKE="+lake, "--set", "OUT="+dir, "-q"); err == nil ||
		!strings.Contains(err.Error(), "interval 2026-11-24") || !strings.Contains(err.Error(), "already succeeded") {
		t.Fatalf("rerun of an interval whose shards all succeeded: %v", err)
	}
	whole := filepath.Join(dir, "whole")
	if msg, err := flowrun(t, "run", batch, "--interval", "2026-11-24", "--force", "--set", "LAKE="+lake, "--set", "OUT="+whole, "-q"); err != nil {
		t.Fatalf("forced unsharded run: %v\n%s", err, msg)
	}
	all := lines(filepath.Join(whole, "posts.jsonl"))
	if len(all) != 1000 || len(seen) != len(all) {
		t.Fatalf("unsharded run wrote %d rows, the shards %d distinct", len(all), len(seen))
	}
	for _, l := range all {
		if _, ok := seen[l]; !ok {
			t.Fatalf("row of the unsharded run written by no shard: %s", l)
		}
	}
	st, _ := schedule.OpenStore(dir)
	h, _ := st.Load()
	var shards []string
	for _, r := range h.Runs {
		if r.Status != schedule.Succeeded {
			t.Fatalf("run %+v", r)
		}
		shards = append(shards, r.Shard+" "+r.ID)
	}
	want := []string{"1/3 sharded@2026-11-24T00:00:00Z[1/3]#1", "2/3 sharded@2026-11-24T00:00:00Z[2/3]#1",
		"3/3 sharded@2026-11-24T00:00:00Z[3/3]#1", " sharded@2026-11-24T00:00:00Z#1"}
	if fmt.Sprint(shards) != fmt.Sprint(want) {
		t.Fatalf("history %q, want %q", shards, want)
	}
	if list, err := flowrun(t, "runs", dir); err != nil || !strings.Contains(list, "2026-11-25T00:00:00Z [2/3]") {
		t.Fatalf("runs: %v\n%s", err, list)
	}

	// The scheduler runs the due interval of a pipeline with shards: 2 (catchup 1) as
	// two shard runs, each reading its share of the lake (all of it here:
	// validation needs a file in range, and the due day is today's).
	sdir := filepath.Join(dir, "sched")
	os.MkdirAll(sdir, 0o755)
	os.WriteFile(filepath.Join(sdir, "batch.yaml"), []byte(`flowrun: 1
name: sharded
schedule: {cron: "@daily", catchup: 1, shards: 2}
sources:
  posts: {lake: {path: "${LAKE}"}}
sinks:
  out: {from: posts, discard: {}}
`), 0o644)
	if msg, err := flowrun(t, "schedule", sdir, "--once", "--max-active", "2", "--set", "LAKE="+lake); err != nil {
		t.Fatalf("schedule --shards: %v\n%s", err, msg)
	}
	sst, _ := schedule.OpenStore(sdir)
	sh, _ := sst.Load()
	got := map[string]string{}
	var rows int64
	for _, r := range sh.Runs {
		if r.Status != schedule.Skipped {
			got[r.Shard] = string(r.Status)
			if r.Rows["posts"] == 0 || r.Rows["posts"] >= 1000 {
				t.Errorf("shard %s read %d rows: not a share of 1000", r.Shard, r.Rows["posts"])
			}
			rows += r.Rows["posts"]
		}
	}
	if fmt.Sprint(got) != "map[1/2:succeeded 2/2:succeeded]" || rows != 1000 {
		t.Fatalf("scheduled shard runs %v, %d rows in all; want 2 succeeded shards, 1000 rows", got, rows)
	}
}
