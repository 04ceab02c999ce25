// Package metrics owns flowrun's Prometheus side: the implementation of
// op.Metrics over one client_golang registry per process (with Go runtime
// and process collectors), and the /metrics handler. Operators and the
// runtime only ever see op.Metrics.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowrun/flowrun/runtime/op"
)

// Registry is op.Metrics backed by Prometheus. Instruments with the same
// name share one metric family; their label names must agree (the first
// creation fixes them), as Prometheus requires.
type Registry struct {
	reg *prometheus.Registry
	log *slog.Logger

	mu       sync.Mutex
	families map[string]*family
	problems map[string]bool
}

type family struct {
	kind   string // counter, gauge, histogram
	labels []string
	cv     *prometheus.CounterVec
	gv     *prometheus.GaugeVec
	hv     *prometheus.HistogramVec
}

// New returns a registry with the Go runtime and process collectors.
// Problems (a name reused with other labels) are logged once to log.
func New(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.Default()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg, log: log, families: map[string]*family{}, problems: map[string]bool{}}
}

// Gatherer is the registry, for tests and the status page.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg, ErrorLog: slogPrinter{r.log}})
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics: " + fmt.Sprint(v...)) }

var validName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

func split(labels []op.Label) (names, values []string) {
	names = make([]string, len(labels))
	values = make([]string, len(labels))
	for i, l := range labels {
		names[i], values[i] = l.Name, l.Value
	}
	return names, values
}

// family returns the family called name of kind with these label names,
// creating and registering it on first use; nil after a conflict.
func (r *Registry) family(kind, name, help string, labels []string, buckets []float64) *family {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.families[name]; ok {
		if f.kind != kind || strings.Join(f.labels, ",") != strings.Join(labels, ",") {
			r.problem(name, fmt.Sprintf("metric %s used as a %s with labels %v and as a %s with labels %v; the second is not recorded", name, f.kind, f.labels, kind, labels))
			return nil
		}
		return f
	}
	if !validName.MatchString(name) {
		r.problem(name, fmt.Sprintf("invalid metric name %q; not recorded", name))
		return nil
	}
	f := &family{kind: kind, labels: labels}
	var c prometheus.Collector
	switch kind {
	case "counter":
		f.cv = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		c = f.cv
	case "gauge":
		f.gv = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		c = f.gv
	case "histogram":
		if buckets == nil {
			buckets = op.LatencyBuckets
		}
		f.hv = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		c = f.hv
	}
	if err := r.reg.Register(c); err != nil {
		r.problem(name, fmt.Sprintf("metric %s: %v", name, err))
		return nil
	}
	r.families[name] = f
	return f
}

func (r *Registry) problem(name, msg string) {
	if !r.problems[name] {
		r.problems[name] = true
		r.log.Warn(msg)
	}
}

type nop struct{}

func (nop) Add(float64)     {}
func (nop) Set(float64)     {}
func (nop) Observe(float64) {}

// Counter implements op.Metrics.
func (r *Registry) Counter(name, help string, labels ...op.Label) op.Counter {
	names, values := split(labels)
	f := r.family("counter", name, help, names, nil)
	if f == nil {
		return nop{}
	}
	return f.cv.WithLabelValues(values...)
}

// Gauge implements op.Metrics.
func (r *Registry) Gauge(name, help string, labels ...op.Label) op.Gauge {
	names, values := split(labels)
	f := r.family("gauge", name, help, names, nil)
	if f == nil {
		return nop{}
	}
	return f.gv.WithLabelValues(values...)
}

// Histogram implements op.Metrics.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...op.Label) op.Histogram {
	names, values := split(labels)
	f := r.family("histogram", name, help, names, buckets)
	if f == nil {
		return nop{}
	}
	return f.hv.WithLabelValues(values...)
}

// Names lists the flowrun metric families registered so far with their
// label names, "name{a,b}", sorted: what a test pins.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.families))
	for n, f := range r.families {
		out = append(out, n+"{"+strings.Join(f.labels, ",")+"}")
	}
	sort.Strings(out)
	return out
}
