package op

// Metrics is where nodes and the runtime record measurements, so exporting
// them (Prometheus) is an implementation of this interface, not a change to
// the runtime. Names follow Prometheus conventions (flowrun_ prefix, base
// units, _total for counters, _seconds, _bytes). Label values must have low
// cardinality: pipeline, node, operator type, a topic — never a key or a
// record value. Instruments are created once (at build time) and used on the
// hot path; they must be safe for concurrent use.
//
// The Metrics a node receives in Resources already carries the labels
// pipeline and node; it adds its own labels per instrument.
type Metrics interface {
	Counter(name, help string, labels ...Label) Counter
	Gauge(name, help string, labels ...Label) Gauge
	Histogram(name, help string, buckets []float64, labels ...Label) Histogram
}

// Label is one label name and value of an instrument.
type Label struct{ Name, Value string }

// Counter only goes up.
type Counter interface{ Add(v float64) }

// Gauge goes up and down.
type Gauge interface {
	Set(v float64)
	Add(v float64)
}

// Histogram records observations into buckets.
type Histogram interface{ Observe(v float64) }

// LatencyBuckets are the default histogram buckets for durations in
// seconds, from 1ms to about a minute.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// NopMetrics discards everything; it is the default.
type NopMetrics struct{}

type nopInstrument struct{}

func (nopInstrument) Add(float64)     {}
func (nopInstrument) Set(float64)     {}
func (nopInstrument) Observe(float64) {}

// Counter implements Metrics.
func (NopMetrics) Counter(string, string, ...Label) Counter { return nopInstrument{} }

// Gauge implements Metrics.
func (NopMetrics) Gauge(string, string, ...Label) Gauge { return nopInstrument{} }

// Histogram implements Metrics.
func (NopMetrics) Histogram(string, string, []float64, ...Label) Histogram {
	return nopInstrument{}
}

// WithLabels returns m with labels added to every instrument it creates
// (before the instrument's own labels). A nil m gives NopMetrics.
func WithLabels(m Metrics, labels ...Label) Metrics {
	if m == nil {
		return NopMetrics{}
	}
	if _, nop := m.(NopMetrics); nop || len(labels) == 0 {
		return m
	}
	return labeled{m: m, labels: labels}
}

type labeled struct {
	m      Metrics
	labels []Label
}

func (l labeled) join(ls []Label) []Label {
	return append(append(make([]Label, 0, len(l.labels)+len(ls)), l.labels...), ls...)
}

func (l labeled) Counter(name, help string, ls ...Label) Counter {
	return l.m.Counter(name, help, l.join(ls)...)
}

func (l labeled) Gauge(name, help string, ls ...Label) Gauge {
	return l.m.Gauge(name, help, l.join(ls)...)
}

func (l labeled) Histogram(name, help string, b []float64, ls ...Label) Histogram {
	return l.m.Histogram(name, help, b, l.join(ls)...)
}
