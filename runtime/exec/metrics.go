package exec

import (
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// nodeMetrics are the instruments the runtime records for one node, made
// once when the pipeline is built. Every update is per batch, never per row.
type nodeMetrics struct {
	rowsIn, rowsOut       op.Counter
	batchesIn, batchesOut op.Counter
	bytesIn               op.Counter
	rejected, errors      op.Counter
	late                  op.Counter   // windows: records that missed their window
	ackLatency            op.Histogram // sources: emit to acknowledgement
	writeLatency          op.Histogram // sinks: one Write or Flush call
	clock                 op.Clock
	timed                 bool // ackLatency is a real instrument
}

type queueGauges struct {
	bytes, batches op.Gauge
}

func newNodeMetrics(m op.Metrics, typ string, clock op.Clock) nodeMetrics {
	t := op.Label{Name: "type", Value: typ}
	_, nop := m.(op.NopMetrics)
	return nodeMetrics{
		rowsIn:     m.Counter("flowrun_node_rows_in_total", "Rows the node received.", t),
		rowsOut:    m.Counter("flowrun_node_rows_out_total", "Rows the node emitted (sinks: wrote).", t),
		batchesIn:  m.Counter("flowrun_node_batches_in_total", "Batches the node received.", t),
		batchesOut: m.Counter("flowrun_node_batches_out_total", "Batches the node emitted.", t),
		bytesIn:    m.Counter("flowrun_node_bytes_in_total", "Bytes of the batches the node received (sources: emitted).", t),
		rejected:   m.Counter("flowrun_node_rejected_total", "Records sent to the dead-letter output.", t),
		errors:     m.Counter("flowrun_node_errors_total", "Times the node failed.", t),
		late:       m.Counter("flowrun_node_late_total", "Records that arrived after their window was emitted (windows), sent to the late output.", t),
		ackLatency: m.Histogram("flowrun_ack_latency_seconds", "Time from a source emitting a batch to its acknowledgement.", op.LatencyBuckets, t),
		clock:      clock,
		timed:      !nop,
	}
}

// newWriteLatency is the sinks' histogram of Write and Flush calls.
func newWriteLatency(m op.Metrics, typ string) op.Histogram {
	return m.Histogram("flowrun_sink_write_latency_seconds", "Time a sink spent in one Write or Flush call (a flush includes the durable write: fsync, commit).",
		op.LatencyBuckets, op.Label{Name: "type", Value: typ})
}

func newQueueGauges(m op.Metrics) queueGauges {
	return queueGauges{
		bytes:   m.Gauge("flowrun_queue_bytes", "Bytes charged to the node's input queue (queued or being processed)."),
		batches: m.Gauge("flowrun_queue_batches", "Batches in the node's input queue (queued or being processed)."),
	}
}

// timeAck records the ack latency of a batch a source emits.
func (m *nodeMetrics) timeAck(a *batch.Ack) {
	if !m.timed || a == nil {
		return
	}
	start := m.clock.Now()
	a.OnDone(func(error) { m.ackLatency.Observe(m.clock.Now().Sub(start).Seconds()) })
}
