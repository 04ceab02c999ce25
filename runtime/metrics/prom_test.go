package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/flowrun/flowrun/dsl/validate"
	_ "github.com/flowrun/flowrun/operators/all"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/metrics"
	"github.com/flowrun/flowrun/runtime/op"
)

const pipeline = `flowrun: 1
name: m
sources:
  posts: {generate: {count: 3000, seed: 1}}
transforms:
  valid:
    from: posts
    dead_letter: bad
    require: {not art: category != "art"}
sinks:
  out: {from: valid, discard: {}}
  bad: {discard: {}}
`

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestRunRegistersTheCatalogue runs a real pipeline with the Prometheus
// registry and pins what it exports: names and labels, all catalogued,
// with values that add up.
func TestRunRegistersTheCatalogue(t *testing.T) {
	res, errs := validate.Load("m.yaml", []byte(pipeline), func(string) (string, bool) { return "", false }, op.Default)
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	reg := metrics.New(quiet())
	p, err := exec.New(res, exec.Options{Metrics: reg, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	names := reg.Names()
	for _, n := range names {
		base := n[:strings.Index(n, "{")]
		f, ok := metrics.Lookup(base)
		if !ok {
			t.Errorf("%s is not in metrics.Catalog (document it)", n)
			continue
		}
		want := base + "{" + strings.Join(append([]string{"pipeline", "node"}, f.Labels...), ",") + "}"
		if n != want {
			t.Errorf("registered %s, catalogue says %s", n, want)
		}
	}
	for _, must := range []string{"flowrun_node_rows_in_total", "flowrun_node_rows_out_total", "flowrun_node_rejected_total", "flowrun_queue_bytes", "flowrun_ack_latency_seconds", "flowrun_sink_write_latency_seconds"} {
		found := false
		for _, n := range names {
			found = found || strings.HasPrefix(n, must+"{")
		}
		if !found {
			t.Errorf("a run does not export %s (got %v)", must, names)
		}
	}
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	body := get(t, srv.URL)
	in := sample(t, body, `flowrun_node_rows_in_total{node="valid",pipeline="m",type="require"}`)
	out := sample(t, body, `flowrun_node_rows_out_total{node="valid",pipeline="m",type="require"}`)
	rej := sample(t, body, `flowrun_node_rejected_total{node="valid",pipeline="m",type="require"}`)
	if in != 3000 || rej <= 0 || out+rej != in {
		t.Errorf("valid: in %v, out %v, rejected %v: want in 3000 = out + rejected", in, out, rej)
	}
	if n := sample(t, body, `flowrun_sink_write_latency_seconds_count{node="out",pipeline="m",type="discard"}`); n < 3 {
		t.Errorf("out's write latency counted %v calls, want one per batch (3)", n)
	}
	if strings.Contains(body, `flowrun_sink_write_latency_seconds_count{node="valid"`) {
		t.Error("a transform has a sink write latency")
	}
	if !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Error("Go runtime and process metrics missing")
	}
}

func TestConflictingLabelsAreNotRecorded(t *testing.T) {
	reg := metrics.New(quiet())
	reg.Counter("flowrun_x_total", "x", op.Label{Name: "a", Value: "1"}).Add(1)
	c := reg.Counter("flowrun_x_total", "x", op.Label{Name: "b", Value: "1"})
	c.Add(5) // must not panic, must not record
	reg.Gauge("bad name", "x").Set(1)
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	body := get(t, srv.URL)
	if v := sample(t, body, `flowrun_x_total{a="1"}`); v != 1 {
		t.Errorf("flowrun_x_total{a=1} = %v", v)
	}
	if strings.Contains(body, `b="1"`) {
		t.Error("the conflicting instrument was recorded")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := httptestClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func sample(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, series+" ") {
			var v float64
			if _, err := fmtSscan(strings.TrimPrefix(line, series+" "), &v); err == nil {
				return v
			}
		}
	}
	t.Errorf("series %s not exported", series)
	return -1
}

var _ = os.Getenv
