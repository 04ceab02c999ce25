package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
)

// startMonitored runs testdata/monitored.yaml with --metrics-addr and waits
// until /metrics answers.
func startMonitored(t *testing.T) (addr string) {
	t.Helper()
	addr = freeAddr(t)
	p := flowrun(t, "flowrun", "tests/e2e/testdata/monitored.yaml", nil, nil, "--metrics-addr", addr)
	if !answers("http://"+addr+"/metrics", 20*time.Second) {
		t.Fatalf("/metrics never answered (flowrun exited: %v)", p.exited())
	}
	return addr
}

// answers polls url until it answers 200, for at most timeout.
func answers(url string, timeout time.Duration) bool {
	client := &http.Client{Timeout: time.Second}
	return eventually(timeout, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// startPrometheus runs a real Prometheus scraping target every second and
// returns its address.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	prom := testenv.Tool(t, "prometheus", "apt-get install -y prometheus")
	promAddr := freeAddr(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: flowrun\n    static_configs: [{targets: [%q]}]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	pp := start(t, "prometheus", nil, prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	if !answers("http://"+promAddr+"/-/ready", 30*time.Second) {
		t.Fatalf("prometheus not ready within 30s (exited: %v)", pp.exited())
	}
	return promAddr
}

// promSeries is one series of an instant query's answer.
type promSeries struct {
	Metric map[string]string
	Value  float64 // NaN when Prometheus answers NaN
}

// promQuery runs an instant query against Prometheus's query API. A query
// Prometheus cannot parse or evaluate is an error carrying its message.
func promQuery(promAddr, q string) ([]promSeries, error) {
	resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status, ErrorType, Error string
		Data                     struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s (HTTP %d)", r.ErrorType, r.Error, resp.StatusCode)
	}
	out := make([]promSeries, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
		out = append(out, promSeries{Metric: s.Metric, Value: v})
	}
	return out, nil
}

// TestPrometheusScrapesFlowrun: a real Prometheus scrapes a running flowrun;
// its query API then returns the node series with plausible values.
func TestPrometheusScrapesFlowrun(t *testing.T) {
	testenv.Tool(t, "prometheus", "apt-get install -y prometheus")
	addr := startMonitored(t)
	promAddr := startPrometheus(t, addr)

	query := func(q string) (map[string]float64, error) {
		series, err := promQuery(promAddr, q)
		if err != nil {
			return nil, err
		}
		out := map[string]float64{}
		for _, s := range series {
			out[s.Metric["node"]] = s.Value
		}
		return out, nil
	}
	var rows map[string]float64
	if !eventually(60*time.Second, func() bool {
		var err error
		rows, err = query(`rate(flowrun_node_rows_in_total{pipeline="monitored"}[5s])`)
		return err == nil && rows["posts"] > 0 && rows["out"] > 0
	}) {
		t.Fatalf("Prometheus has no rising flowrun_node_rows_in_total: %v", rows)
	}
	// The source runs at 2,000 posts/s: the scraped rate must say so.
	if r := rows["posts"]; r < 500 || r > 4000 {
		t.Errorf("rows/s of posts = %.0f, want about 2000", r)
	}
	dl, err := query(`flowrun_node_rejected_total{pipeline="monitored"}`)
	if err != nil || dl["valid"] <= 0 {
		t.Errorf("dead letters of valid = %v (%v), want > 0", dl, err)
	}
	up, err := query(`up{job="flowrun"}`)
	if err != nil || len(up) != 1 {
		t.Errorf("up = %v (%v)", up, err)
	}
}

// TestDashboardQueriesReturnSeries stands in for loading the dashboard into
// a real Grafana (no Grafana server can be installed here: see
// docs/metrics.md). A real Prometheus scrapes testdata/dashboard.yaml, a
// pipeline that gives every panel something to show (a rule with dead
// letters, a window, Kafka produce and consume with a group, the ingest
// API); then every query of deploy/grafana/dashboards/flowrun.json, with
// $pipeline set as Grafana sets it, must parse and evaluate in Prometheus
// and return at least one series, and the pipeline selector's label_values
// query must list the pipeline.
func TestDashboardQueriesReturnSeries(t *testing.T) {
	testenv.Tool(t, "prometheus", "apt-get install -y prometheus")
	brokers := testenv.Kafka(t)
	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 2, topic); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/dashboards/flowrun.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct{ Name, Query string }
		}
		Panels []struct {
			Title   string
			Targets []struct{ RefID, Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}

	addr, listen := freeAddr(t), freeAddr(t)
	p := flowrun(t, "dashboard", "tests/e2e/testdata/dashboard.yaml", map[string]string{
		"KAFKA_BROKERS": strings.Join(brokers, ","), "TOPIC": topic, "GROUP": "flowrun-test-" + topic, "LISTEN": listen,
	}, nil, "--metrics-addr", addr)
	if !answers("http://"+addr+"/metrics", 30*time.Second) {
		t.Fatalf("/metrics never answered (flowrun exited: %v)", p.exited())
	}
	client := &http.Client{Timeout: 2 * time.Second}
	promAddr := startPrometheus(t, addr)

	// Posts to the ingest API while the test waits: a few per second, and
	// one malformed (400), so the requests panel has more than one status.
	stop := make(chan struct{})
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		for i := 0; ; i++ {
			body := fmt.Sprintf(`{"index": %d, "unique_id": "u%d", "category": "travel"}`, i, i)
			if i%5 == 4 {
				body = `{"index": "not a number"}`
			}
			if resp, err := client.Post("http://"+listen+"/v1/posts", "application/json", strings.NewReader(body)); err == nil {
				resp.Body.Close()
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-posted }()

	const pipelineSel = `=~"dashboard"` // Grafana's rendering of $pipeline for one value
	type target struct{ panel, ref, expr string }
	var targets []target
	for _, pn := range dash.Panels {
		for _, tg := range pn.Targets {
			expr := strings.ReplaceAll(tg.Expr, `=~"$pipeline"`, pipelineSel)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q query %s uses a variable the test does not set: %s", pn.Title, tg.RefID, tg.Expr)
				continue
			}
			targets = append(targets, target{pn.Title, tg.RefID, expr})
		}
	}
	// Every query parses at once, before any series exists.
	for _, tg := range targets {
		if _, err := promQuery(promAddr, tg.expr); err != nil {
			t.Errorf("panel %q query %s does not run in Prometheus: %v\n%s", tg.panel, tg.ref, err, tg.expr)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	empty := map[string]bool{}
	ok := eventually(90*time.Second, func() bool {
		clear(empty)
		for _, tg := range targets {
			series, err := promQuery(promAddr, tg.expr)
			if err != nil || len(series) == 0 {
				empty[fmt.Sprintf("%s (%s): %s", tg.panel, tg.ref, tg.expr)] = true
			}
		}
		return len(empty) == 0
	})
	if !ok {
		for e := range empty {
			t.Errorf("no series for panel %s", e)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Name != "pipeline" {
			continue
		}
		// label_values(METRIC, LABEL) is Grafana's call of the series API.
		m := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`).FindStringSubmatch(v.Query)
		if m == nil {
			t.Fatalf("pipeline selector query %q is not label_values(metric, label)", v.Query)
		}
		resp, err := http.Get("http://" + promAddr + "/api/v1/label/" + m[2] + "/values?match[]=" + url.QueryEscape(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Data []string }
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || !slices.Contains(r.Data, "dashboard") {
			t.Errorf("pipeline selector lists %v (%v), want dashboard among them", r.Data, err)
		}
	}
	t.Logf("%d dashboard queries in %d panels return series", len(targets), len(dash.Panels))
}

// TestStatusPageInChromium loads the status page in headless Chromium
// against a running pipeline: the nodes are drawn and the counters move.
func TestStatusPageInChromium(t *testing.T) {
	chromium := testenv.Tool(t, "chromium", "apt-get install -y chromium")
	addr := startMonitored(t)
	profile := t.TempDir()
	dump := func() string {
		t.Helper()
		cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--no-first-run", "--user-data-dir="+profile,
			"--virtual-time-budget=3000", "--dump-dom", "http://"+addr+"/")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium --dump-dom: %v", err)
		}
		return string(out)
	}
	total := func(dom string) int64 {
		_, rest, ok := strings.Cut(dom, `id="total-rows">`)
		if !ok {
			return -1
		}
		n, _ := strconv.ParseInt(strings.ReplaceAll(strings.SplitN(rest, "<", 2)[0], ",", ""), 10, 64)
		return n
	}
	first := dump()
	for _, node := range []string{"posts", "valid", "out", "dead_letters"} {
		if !strings.Contains(first, `data-node="`+node+`"`) || !strings.Contains(first, `id="rows-`+node+`"`) {
			t.Errorf("the page lacks node %s in the graph or the table", node)
		}
	}
	a := total(first)
	time.Sleep(1500 * time.Millisecond)
	second := dump()
	b := total(second)
	if a <= 0 || b <= a {
		t.Errorf("records read did not move: %d then %d", a, b)
	}
	// A screenshot as an artefact for people to look at.
	shot := filepath.Join(os.TempDir(), "flowrun-status-page.png")
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir="+profile,
		"--virtual-time-budget=3000", "--window-size=1280,900", "--screenshot="+shot, "http://"+addr+"/")
	cmd.Dir = t.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("screenshot: %v\n%s", err, out)
	} else if st, err := os.Stat(shot); err != nil || st.Size() < 1000 {
		t.Errorf("screenshot %s missing or empty: %v", shot, err)
	} else {
		t.Logf("status page screenshot: %s", shot)
	}
	_ = io.Discard
}

// TestStatusPageShowsRecentRuns: the status page of a scheduled pipeline's
// run (flowrun run --interval --metrics-addr, a process of its own) lists the
// pipeline's recent runs from the run history beside it: the earlier run
// with its rows, and itself, running. /status.json is checked, then the page
// in headless Chromium.
func TestStatusPageShowsRecentRuns(t *testing.T) {
	chromium := testenv.Tool(t, "chromium", "apt-get install -y chromium")
	dir := t.TempDir()
	file := filepath.Join(dir, "daily.yaml")
	const text = `flowrun: 1
name: daily-runs
schedule: {cron: "@daily", catchup: 1}
vars: {COUNT: "40", RATE: "0"}
sources:
  posts: {generate: {count: "${COUNT}", rate: "${RATE}", seed: 3}}
sinks:
  out: {from: posts, discard: {}}
`
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	first := flowrun(t, "first", file, nil, nil, "--interval", "2026-11-23")
	if code := first.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("first interval exited %d", code)
	}
	// The second interval runs for about 12 s at 500 posts/s.
	addr := freeAddr(t)
	second := flowrun(t, "second", file, map[string]string{"COUNT": "6000", "RATE": "500"}, nil,
		"--interval", "2026-11-24", "--metrics-addr", addr)

	type run struct {
		ID, Status, Interval string
		Duration             float64 `json:"duration_seconds"`
		Rows                 map[string]int64
	}
	var snap struct {
		Runs      []run
		RunsError string `json:"runs_error"`
	}
	client := &http.Client{Timeout: time.Second}
	if !eventually(30*time.Second, func() bool {
		resp, err := client.Get("http://" + addr + "/status.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&snap) == nil && len(snap.Runs) > 0
	}) {
		t.Fatalf("/status.json never listed a run (second exited: %v): %+v", second.exited(), snap)
	}
	const now, before = "daily-runs@2026-11-24T00:00:00Z#1", "daily-runs@2026-11-23T00:00:00Z#1"
	if len(snap.Runs) != 2 || snap.Runs[0].ID != now || snap.Runs[0].Status != "running" ||
		snap.Runs[1].ID != before || snap.Runs[1].Status != "succeeded" || snap.Runs[1].Rows["out"] != 40 || snap.RunsError != "" {
		t.Fatalf("recent runs %+v (error %q), want %s running and %s succeeded with 40 rows out", snap.Runs, snap.RunsError, now, before)
	}

	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--no-first-run", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=3000", "--dump-dom", "http://"+addr+"/")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	dom := string(out)
	for _, want := range []string{
		`data-run="` + now + `">running<`,
		`data-run="` + before + `">succeeded<`,
		"2026-11-23T00:00:00Z .. 2026-11-24T00:00:00Z",
		"out=40",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if t.Failed() {
		_, runs, _ := strings.Cut(dom, `id="runs"`)
		t.Logf("runs table: %.2000s", runs)
	}
	if code := second.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("second interval exited %d", code)
	}
}
