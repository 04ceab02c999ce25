package exec

import (
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/runtime/op"
)

// fakeMetrics keeps every instrument's value by name and labels.
type fakeMetrics struct {
	mu     sync.Mutex
	values map[string]*fakeInstrument
}

type fakeInstrument struct {
	mu       sync.Mutex
	v        float64
	observed int
}

func (f *fakeInstrument) Add(v float64) { f.mu.Lock(); f.v += v; f.mu.Unlock() }
func (f *fakeInstrument) Set(v float64) { f.mu.Lock(); f.v = v; f.mu.Unlock() }
func (f *fakeInstrument) Observe(v float64) {
	f.mu.Lock()
	f.observed++
	f.v += v
	f.mu.Unlock()
}

func (m *fakeMetrics) get(name string, ls []op.Label) *fakeInstrument {
	var b strings.Builder
	b.WriteString(name)
	for _, l := range ls {
		if l.Name == "pipeline" || l.Name == "type" {
			continue
		}
		b.WriteString("," + l.Name + "=" + l.Value)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := b.String()
	if m.values[k] == nil {
		m.values[k] = &fakeInstrument{}
	}
	return m.values[k]
}

func (m *fakeMetrics) Counter(name, _ string, ls ...op.Label) op.Counter { return m.get(name, ls) }
func (m *fakeMetrics) Gauge(name, _ string, ls ...op.Label) op.Gauge     { return m.get(name, ls) }
func (m *fakeMetrics) Histogram(name, _ string, _ []float64, ls ...op.Label) op.Histogram {
	return m.get(name, ls)
}

func TestRuntimeRecordsMetrics(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	m := &fakeMetrics{values: map[string]*fakeInstrument{}}
	acks := &ackLog{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: 30, rows: 100, acks: acks}, output: intSchema},
		spec{name: "pass", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: &collectSink{}, from: []string{"pass"}},
	)
	if _, err := run(t, res, Options{Alloc: mem, Metrics: m}); err != nil {
		t.Fatal(err)
	}
	per := float64(sampleBytes(t, 100))
	for _, c := range []struct {
		key  string
		want float64
	}{
		{"flowrun_node_rows_in_total,node=src", 3000},
		{"flowrun_node_rows_out_total,node=src", 3000},
		{"flowrun_node_batches_out_total,node=src", 30},
		{"flowrun_node_bytes_in_total,node=src", 30 * per},
		{"flowrun_node_rows_in_total,node=pass", 3000},
		{"flowrun_node_batches_in_total,node=pass", 30},
		{"flowrun_node_bytes_in_total,node=pass", 30 * per},
		{"flowrun_node_rows_in_total,node=out", 3000},
		{"flowrun_node_rows_out_total,node=out", 3000},
		{"flowrun_node_bytes_in_total,node=out", 30 * per},
		{"flowrun_queue_bytes,node=out", 0}, // everything released at the end
		{"flowrun_queue_batches,node=pass", 0},
	} {
		in := m.values[c.key]
		if in == nil {
			t.Errorf("%s: not recorded", c.key)
			continue
		}
		if math.Abs(in.v-c.want) > 1e-6 {
			t.Errorf("%s = %v, want %v", c.key, in.v, c.want)
		}
	}
	lat := m.values["flowrun_ack_latency_seconds,node=src"]
	if lat == nil || lat.observed != 30 || lat.v <= 0 {
		t.Fatalf("ack latency: %+v, want 30 observations", lat)
	}
}
