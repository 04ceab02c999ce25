package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/flowrun/flowrun/internal/testenv"
)

const deploy = "../../deploy/"

var metricRef = regexp.MustCompile(`\bflowrun_[a-z_]+`)

// known reports whether a name used in a query is a catalogued family (or
// one of a histogram's series).
func known(name string) bool {
	if _, ok := Lookup(name); ok {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := Lookup(strings.TrimSuffix(name, suf)); ok && f.Type == "histogram" {
			return true
		}
	}
	return false
}

func TestPromtool(t *testing.T) {
	promtool := testenv.Tool(t, "promtool", "apt-get install -y prometheus")
	for _, args := range [][]string{
		{"check", "config", deploy + "prometheus/prometheus.yml"},
		{"check", "rules", deploy + "prometheus/flowrun.rules.yml"},
		// The alert rules' own unit tests: each alert fires on its input.
		{"test", "rules", deploy + "prometheus/flowrun.rules.test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

func TestDashboardAndRulesUseCataloguedMetrics(t *testing.T) {
	b, err := os.ReadFile(deploy + "grafana/dashboards/flowrun.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) < 8 {
		t.Fatalf("dashboard has uid %q and %d panels", dash.UID, len(dash.Panels))
	}
	queried := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricRef.FindAllString(tg.Expr, -1) {
				if !known(m) {
					t.Errorf("panel %q queries %s, which flowrun does not export", p.Title, m)
				}
				queried[strings.TrimSuffix(m, "_bucket")] = true
			}
		}
	}
	// What the issue asks the dashboard to show: throughput, lag, latency
	// (acknowledgement, sink writes, Kafka commits and produces), dead
	// letters, queue fill and window health.
	for _, m := range []string{"flowrun_node_rows_out_total", "flowrun_kafka_consumer_lag", "flowrun_ack_latency_seconds",
		"flowrun_sink_write_latency_seconds", "flowrun_kafka_commit_latency_seconds", "flowrun_kafka_produce_latency_seconds",
		"flowrun_node_rejected_total", "flowrun_queue_bytes", "flowrun_window_watermark_lag_seconds", "flowrun_window_open_windows"} {
		if !queried[m] {
			t.Errorf("no dashboard panel shows %s", m)
		}
	}
	rules, err := os.ReadFile(deploy + "prometheus/flowrun.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metricRef.FindAllString(string(rules), -1) {
		if !known(m) && !strings.Contains(string(rules), "flowrun:"+strings.TrimPrefix(m, "flowrun_")) {
			t.Errorf("alert rules use %s, which flowrun does not export", m)
		}
	}
	docs, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range Catalog {
		if !strings.Contains(string(docs), "`"+f.Name+"`") {
			t.Errorf("docs/metrics.md does not document %s", f.Name)
		}
	}
}
