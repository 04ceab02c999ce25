package status_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowrun/flowrun/dsl/validate"
	_ "github.com/flowrun/flowrun/operators/all"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/metrics"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/schedule"
	"github.com/flowrun/flowrun/runtime/status"
)

const pipeline = `flowrun: 1
name: s
sources:
  posts: {generate: {count: 500, seed: 1}}
transforms:
  valid:
    from: posts
    dead_letter: bad
    require: {not art: category != "art"}
sinks:
  out: {from: valid, discard: {}}
  bad: {discard: {}}
`

// build validates the test pipeline and builds it with a metrics registry.
func build(t *testing.T, quiet *slog.Logger) (*validate.Result, *exec.Pipeline, *metrics.Registry) {
	t.Helper()
	res, errs := validate.Load("s.yaml", []byte(pipeline), func(string) (string, bool) { return "", false }, op.Default)
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	reg := metrics.New(quiet)
	p, err := exec.New(res, exec.Options{Metrics: reg, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return res, p, reg
}

func TestStatus(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	res, p, reg := build(t, quiet)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := status.New(res, p, reg, quiet)
	s.Recent = func() []status.DeadLetter {
		var out []status.DeadLetter
		for _, d := range p.RecentDeadLetters() {
			out = append(out, status.DeadLetter{Node: d.Node, Reason: d.Reason, Record: d.Record, Time: d.Time})
		}
		return out
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var snap status.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	byName := map[string]status.NodeStatus{}
	for _, n := range snap.Nodes {
		byName[n.Name] = n
	}
	if snap.Pipeline != "s" || len(snap.Nodes) != 4 {
		t.Fatalf("snapshot %+v", snap)
	}
	v := byName["valid"]
	if v.Depth != 1 || byName["out"].Depth != 2 || byName["bad"].Depth != 2 || v.DeadLetter != "bad" || len(v.Inputs) != 1 || v.Inputs[0] != "posts" {
		t.Errorf("graph: %+v", snap.Nodes)
	}
	if byName["posts"].RowsIn != 500 || v.RowsIn != 500 || v.Rejected == 0 || v.RowsOut+v.Rejected != 500 {
		t.Errorf("counters: posts %+v valid %+v", byName["posts"], v)
	}
	if len(snap.DeadLetters) == 0 || snap.DeadLetters[0].Node != "valid" || !strings.Contains(snap.DeadLetters[0].Reason, "not art") {
		t.Errorf("recent dead letters: %+v", snap.DeadLetters)
	}
	if len(snap.DeadLetters) > 20 {
		t.Errorf("%d recent dead letters kept, want at most 20", len(snap.DeadLetters))
	}

	resp, err = http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "status.json") || strings.Contains(string(body), "http://") && strings.Contains(string(body), "<script src") {
		t.Errorf("page: %d, self-contained: %v", resp.StatusCode, !strings.Contains(string(body), "<script src"))
	}
	// The page only reads: other methods are refused.
	resp, err = http.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", resp.StatusCode)
	}
}

// TestRecentRuns: a scheduled pipeline's page lists its recent runs from
// the run history (newest first, with duration, rows and error, no
// password), and the scheduler's page (no pipeline) lists every pipeline's.
func TestRecentRuns(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	st, err := schedule.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	started := time.Now().Add(-time.Minute)
	failed := schedule.Run{ID: schedule.RunID("s", day(23), 1), Pipeline: "s", Start: day(23), End: day(24), Attempt: 1,
		Trigger: "schedule", Status: schedule.Failed, Started: started, Ended: started.Add(2500 * time.Millisecond),
		Rows: map[string]int64{"out": 7}, Error: `sink out: connect postgres://flowrun:s3cret@127.0.0.1:1/x: refused`}
	running := schedule.Run{ID: schedule.RunID("s", day(24), 1), Pipeline: "s", Start: day(24), End: day(25), Attempt: 1,
		Trigger: "manual", Status: schedule.Running, Started: started.Add(30 * time.Second)}
	other := running
	other.ID, other.Pipeline = schedule.RunID("other", day(24), 1), "other"
	if err := st.Append(failed, running, other); err != nil {
		t.Fatal(err)
	}

	res, p, reg := build(t, quiet)
	s := status.New(res, p, reg, quiet)
	s.Runs = schedule.NewRecent(dir, "s", 20).Runs
	snap := getSnapshot(t, s)
	if len(snap.Runs) != 2 || snap.Runs[0].ID != running.ID || snap.Runs[1].ID != failed.ID {
		t.Fatalf("runs %+v, want the running then the failed run of s", snap.Runs)
	}
	r := snap.Runs[1]
	if r.Status != "failed" || r.Duration != 2.5 || r.Rows["out"] != 7 || r.Interval != "2026-11-23T00:00:00Z .. 2026-11-24T00:00:00Z" || r.Trigger != "schedule" {
		t.Errorf("failed run shown as %+v", r)
	}
	if strings.Contains(r.Error, "s3cret") || !strings.Contains(r.Error, "postgres://flowrun:xxxxx@127.0.0.1:1/x: refused") {
		t.Errorf("error shown as %q", r.Error)
	}
	if d := snap.Runs[0].Duration; d < 29 || d > 120 {
		t.Errorf("running run's duration so far %.1fs, want about 30s", d)
	}

	// The run ends: the next poll shows it.
	running.Status, running.Ended = schedule.Succeeded, running.Started.Add(time.Second)
	if err := st.Append(running); err != nil {
		t.Fatal(err)
	}
	if snap := getSnapshot(t, s); snap.Runs[0].Status != "succeeded" || snap.Runs[0].Duration != 1 {
		t.Errorf("after the run ended: %+v", snap.Runs[0])
	}

	sched := status.NewScheduler("schedule pipelines/", metrics.New(quiet), quiet)
	sched.Runs = schedule.NewRecent(dir, "", 20).Runs
	snap = getSnapshot(t, sched)
	if snap.Pipeline != "schedule pipelines/" || len(snap.Nodes) != 0 || len(snap.Runs) != 3 {
		t.Errorf("scheduler page: %+v", snap)
	}
	srv := httptest.NewServer(sched.Handler())
	defer srv.Close()
	for _, path := range []string{"/", "/metrics"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("scheduler %s: %d", path, resp.StatusCode)
		}
	}
}

func getSnapshot(t *testing.T, s *status.Server) status.Snapshot {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var snap status.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	return snap
}
