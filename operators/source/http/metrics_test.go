package httpsrc

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flowrun/flowrun/runtime/metrics"
	"github.com/flowrun/flowrun/runtime/op"
)

// TestRequestMetrics: requests are counted by the status they were
// answered with, and ingest requests are timed, in the Prometheus registry.
func TestRequestMetrics(t *testing.T) {
	reg := metrics.New(quiet)
	h := startWith(t, Config{}, &fakeOut{}, op.Resources{BatchRows: 1, Metrics: reg})
	get := func(path string) int {
		resp, err := h.cl.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	post := func(body string) int {
		resp, err := h.cl.Post(h.url+DefaultPath, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/healthz") != 200 || get("/healthz") != 200 || get("/nope") != 404 {
		t.Fatal("unexpected statuses")
	}
	if code := post(`{"index": 1.5}`); code != 400 {
		t.Fatalf("inexact integer answered %d, want 400", code)
	}
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for _, want := range []string{
		`flowrun_http_requests_total{status="200"} 2`,
		`flowrun_http_requests_total{status="404"} 1`,
		`flowrun_http_requests_total{status="400"} 1`,
		`flowrun_http_request_duration_seconds_count 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(body, "flowrun_http"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
