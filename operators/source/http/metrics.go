package httpsrc

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/flowrun/flowrun/runtime/op"
)

// requestMetrics counts requests by status and times the ingest endpoints.
// Instruments per status are made on first use and kept, so a request costs
// a map read under a read lock, not a registry lookup.
type requestMetrics struct {
	m        op.Metrics
	duration op.Histogram
	mu       sync.RWMutex
	byStatus map[int]op.Counter
}

func newRequestMetrics(m op.Metrics) *requestMetrics {
	return &requestMetrics{
		m:        m,
		duration: m.Histogram("flowrun_http_request_duration_seconds", "Ingest API request latency, from the request to the answer (posts stored or refused).", op.LatencyBuckets),
		byStatus: map[int]op.Counter{},
	}
}

func (rm *requestMetrics) count(status int) {
	rm.mu.RLock()
	c := rm.byStatus[status]
	rm.mu.RUnlock()
	if c == nil {
		rm.mu.Lock()
		if c = rm.byStatus[status]; c == nil {
			c = rm.m.Counter("flowrun_http_requests_total", "Ingest API requests by HTTP status.", op.Label{Name: "status", Value: strconv.Itoa(status)})
			rm.byStatus[status] = c
		}
		rm.mu.Unlock()
	}
	c.Add(1)
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP implements http.Handler: the routes of serve, measured.
func (s *Source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	s.serve(sw, r)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	s.metrics.count(sw.status)
	if r.URL.Path == s.cfg.Path || r.URL.Path == s.cfg.BatchPath {
		s.metrics.duration.Observe(time.Since(start).Seconds())
	}
}
