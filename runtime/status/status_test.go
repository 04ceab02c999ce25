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

	"github.com/flowrun/flowrun/dsl/validate"
	_ "github.com/flowrun/flowrun/operators/all"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/metrics"
	"github.com/flowrun/flowrun/runtime/op"
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

func TestStatus(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	res, errs := validate.Load("s.yaml", []byte(pipeline), func(string) (string, bool) { return "", false }, op.Default)
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	reg := metrics.New(quiet)
	p, err := exec.New(res, exec.Options{Metrics: reg, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
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
