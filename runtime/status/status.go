// Package status owns the HTTP server that `flowrun run --metrics-addr`
// starts: /metrics for Prometheus, and at / a live status page of the
// running pipeline (its DAG, per-node counters, Kafka lag, watermarks, the
// last dead letters and, for a scheduled pipeline, its recent runs from the
// scheduler's run history) fed by /status.json. `flowrun schedule
// --metrics-addr` serves the same page without a graph: the recent runs of
// every pipeline it schedules. It only reads: nothing it serves changes the
// pipeline or the history.
package status

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/metrics"
	"github.com/flowrun/flowrun/runtime/schedule"
)

//go:embed page.html
var page []byte

// DeadLetter is one recent dead letter shown on the page.
type DeadLetter struct {
	Node   string    `json:"node"`
	Reason string    `json:"reason"`
	Record string    `json:"record"`
	Time   time.Time `json:"time"`
}

// Server serves metrics and the status page of one pipeline.
type Server struct {
	checked *validate.Result
	p       *exec.Pipeline
	reg     *metrics.Registry
	started time.Time
	log     *slog.Logger
	// Recent, when set, returns the last dead letters (newest first).
	Recent func() []DeadLetter
	// Runs, when set, returns the recent runs from the run history, newest
	// first (schedule.Recent.Runs).
	Runs func() ([]schedule.Run, error)
	name string // the page's title when there is no pipeline (the scheduler)

	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	mu   sync.Mutex
}

// New prepares a server; Start binds it.
func New(checked *validate.Result, p *exec.Pipeline, reg *metrics.Registry, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{checked: checked, p: p, reg: reg, started: time.Now(), log: log}
}

// NewScheduler prepares the page of `flowrun schedule`: no pipeline graph,
// the recent runs of every scheduled pipeline (set Runs), and the
// scheduler's metrics.
func NewScheduler(name string, reg *metrics.Registry, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{reg: reg, started: time.Now(), log: log, name: name}
}

// Handler is the server's routes, for tests.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.reg.Handler())
	mux.HandleFunc("GET /status.json", s.serveJSON)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		w.Write(page)
	})
	return mux
}

// Start listens on addr (host:port; 127.0.0.1 when the host is empty) and
// serves until Close. It returns the address bound.
func (s *Server) Start(addr string) (string, error) {
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("metrics server stopped", "err", err)
		}
	}()
	return ln.Addr().String(), nil
}

// Close stops the server and waits for its goroutine.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// Snapshot is what /status.json returns.
type Snapshot struct {
	Pipeline    string        `json:"pipeline"`
	Started     time.Time     `json:"started"`
	Now         time.Time     `json:"now"`
	Nodes       []NodeStatus  `json:"nodes"`
	DeadLetters []DeadLetter  `json:"dead_letters"`
	Lag         []SeriesValue `json:"kafka_lag"`
	Watermarks  []SeriesValue `json:"watermarks"`
	Runs        []RunStatus   `json:"runs"`
	// RunsError says why the run history could not be read (the page shows
	// it in place of the runs).
	RunsError string `json:"runs_error,omitempty"`
}

// RunStatus is one run of a scheduled pipeline as the page shows it.
type RunStatus struct {
	ID       string           `json:"id"`
	Pipeline string           `json:"pipeline"`
	Interval string           `json:"interval"` // "start .. end", " [I/N]" for a shard
	Attempt  int              `json:"attempt"`
	Trigger  string           `json:"trigger"`
	Status   string           `json:"status"`
	Started  time.Time        `json:"started"`
	Duration float64          `json:"duration_seconds"` // so far, when running
	Rows     map[string]int64 `json:"rows"`
	Error    string           `json:"error,omitempty"`
}

// password in a URL (scheme://user:password@host): never shown, whatever
// an error message carries.
var urlPassword = regexp.MustCompile(`(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@`)

func runStatus(r schedule.Run, now time.Time) RunStatus {
	iv := r.Start.Format(time.RFC3339) + " .. " + r.End.Format(time.RFC3339)
	if r.Shard != "" {
		iv += " [" + r.Shard + "]"
	}
	rs := RunStatus{ID: r.ID, Pipeline: r.Pipeline, Interval: iv, Attempt: r.Attempt, Trigger: r.Trigger,
		Status: string(r.Status), Started: r.Started, Rows: r.Rows, Error: urlPassword.ReplaceAllString(r.Error, "${1}xxxxx@")}
	if rs.Rows == nil {
		rs.Rows = map[string]int64{}
	}
	switch {
	case r.Status == schedule.Skipped || r.Started.IsZero():
	case r.Ended.IsZero():
		rs.Duration = now.Sub(r.Started).Seconds()
	default:
		rs.Duration = r.Ended.Sub(r.Started).Seconds()
	}
	return rs
}

// NodeStatus is one node's live counters and place in the graph.
type NodeStatus struct {
	Name       string   `json:"name"`
	Section    string   `json:"section"`
	Type       string   `json:"type"`
	Inputs     []string `json:"inputs"`
	DeadLetter string   `json:"dead_letter,omitempty"`
	Depth      int      `json:"depth"`
	RowsIn     int64    `json:"rows_in"`
	RowsOut    int64    `json:"rows_out"`
	Rejected   int64    `json:"dead_letters"`
	Errors     int64    `json:"errors"`
	Queue      int      `json:"queue_batches"`
}

// SeriesValue is one labelled sample read from the metrics registry.
type SeriesValue struct {
	Labels map[string]string `json:"labels"`
	Value  float64           `json:"value"`
}

// Snapshot reads the pipeline's state now.
func (s *Server) Snapshot() Snapshot {
	snap := Snapshot{Pipeline: s.name, Started: s.started, Now: time.Now(), Nodes: []NodeStatus{}, DeadLetters: []DeadLetter{},
		Lag: []SeriesValue{}, Watermarks: []SeriesValue{}, Runs: []RunStatus{}}
	if s.Runs != nil {
		runs, err := s.Runs()
		if err != nil {
			snap.RunsError = urlPassword.ReplaceAllString(err.Error(), "${1}xxxxx@")
		}
		for _, r := range runs {
			snap.Runs = append(snap.Runs, runStatus(r, snap.Now))
		}
	}
	if s.p == nil { // the scheduler's page: its runs only
		return snap
	}
	snap.Pipeline = s.p.Name
	depth := map[string]int{}
	for _, cn := range s.checked.Nodes { // inputs come first
		d := 0
		for _, in := range cn.Inputs {
			d = max(d, depth[in.Name()]+1)
		}
		depth[cn.Name()] = d
	}
	// Dead-letter sinks sit one column right of the deepest node feeding them.
	for _, cn := range s.checked.Nodes {
		if cn.DeadLetter != nil {
			if d := depth[cn.Name()] + 1; d > depth[cn.DeadLetter.Name()] && len(cn.DeadLetter.Inputs) == 0 {
				depth[cn.DeadLetter.Name()] = d
			}
		}
	}
	byName := map[string]*validate.Node{}
	for _, cn := range s.checked.Nodes {
		byName[cn.Name()] = cn
	}
	for _, n := range s.p.Nodes {
		ns := NodeStatus{
			Name: n.Name, Section: n.Section.Singular(), Type: n.Type, Inputs: []string{}, Depth: depth[n.Name],
			RowsIn: n.Stats.RowsIn.Load(), RowsOut: n.Stats.RowsOut.Load(),
			Rejected: n.Stats.Rejected.Load(), Errors: n.Stats.Errors.Load(),
		}
		if n.Section == ast.Sources {
			ns.RowsIn = ns.RowsOut + ns.Rejected
		}
		if n.Stats.QueueLength != nil {
			ns.Queue = n.Stats.QueueLength()
		}
		if cn := byName[n.Name]; cn != nil {
			for _, in := range cn.Inputs {
				ns.Inputs = append(ns.Inputs, in.Name())
			}
			if cn.DeadLetter != nil {
				ns.DeadLetter = cn.DeadLetter.Name()
			}
		}
		snap.Nodes = append(snap.Nodes, ns)
	}
	if s.Recent != nil {
		snap.DeadLetters = s.Recent()
	}
	fams, err := s.reg.Gatherer().Gather()
	if err == nil {
		snap.Lag = series(fams, "flowrun_kafka_consumer_lag")
		snap.Watermarks = series(fams, "flowrun_window_watermark_seconds")
	}
	return snap
}

func series(fams []*dto.MetricFamily, name string) []SeriesValue {
	out := []SeriesValue{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sv := SeriesValue{Labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				sv.Labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Gauge != nil:
				sv.Value = m.GetGauge().GetValue()
			case m.Counter != nil:
				sv.Value = m.GetCounter().GetValue()
			}
			out = append(out, sv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i].Labels) < key(out[j].Labels) })
	return out
}

func key(m map[string]string) string {
	ks := make([]string, 0, len(m))
	for k, v := range m {
		ks = append(ks, k+"="+v)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func (s *Server) serveJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(s.Snapshot()); err != nil {
		s.log.Debug("status.json", "err", err)
	}
}
