package metrics

// Family documents one metric family flowrun exports: the contract that
// docs/metrics.md, the Grafana dashboard and the alert rules are written
// against. Tests check that a real run registers nothing outside it and
// that the dashboard and rules use nothing outside it.
type Family struct {
	Name   string
	Type   string // counter, gauge, histogram
	Labels []string
	Help   string
}

// Catalog lists every flowrun_ family. Every instrument of a running
// pipeline also carries the labels pipeline and node (added by the
// runtime); Labels are the rest. The scheduler's families carry pipeline
// and their Labels only (flowrun schedule --metrics-addr).
var Catalog = []Family{
	{"flowrun_node_rows_in_total", "counter", []string{"type"}, "Rows the node received (sources: produced)."},
	{"flowrun_node_rows_out_total", "counter", []string{"type"}, "Rows the node emitted (sinks: wrote)."},
	{"flowrun_node_batches_in_total", "counter", []string{"type"}, "Batches the node received."},
	{"flowrun_node_batches_out_total", "counter", []string{"type"}, "Batches the node emitted."},
	{"flowrun_node_bytes_in_total", "counter", []string{"type"}, "Bytes of the batches the node received."},
	{"flowrun_node_rejected_total", "counter", []string{"type"}, "Records sent to the dead-letter output."},
	{"flowrun_node_late_total", "counter", []string{"type"}, "Records that arrived after their window was emitted (windows), sent to the late output."},
	{"flowrun_node_errors_total", "counter", []string{"type"}, "Times the node failed."},
	{"flowrun_ack_latency_seconds", "histogram", []string{"type"}, "Time from a source emitting a batch to its acknowledgement."},
	{"flowrun_queue_bytes", "gauge", nil, "Bytes held by the node's input queue."},
	{"flowrun_queue_batches", "gauge", nil, "Batches in the node's input queue."},
	{"flowrun_kafka_consumer_lag", "gauge", []string{"topic", "partition"}, "Messages between the consumer's position and the partition's end."},
	{"flowrun_kafka_source_in_flight_batches", "gauge", nil, "Batches the kafka source emitted that are not yet committable (bounded by max_in_flight)."},
	{"flowrun_kafka_source_in_flight_bytes", "gauge", nil, "Bytes of those batches (bounded by max_in_flight_bytes)."},
	{"flowrun_kafka_commit_latency_seconds", "histogram", nil, "Time from a batch's acknowledgement making its offset committable to the broker answering the offset commit that carries it (a consumer group only)."},
	{"flowrun_kafka_produce_latency_seconds", "histogram", nil, "Time from sending a batch to Kafka to its acknowledgement."},
	{"flowrun_kafka_transactions_total", "counter", []string{"result"}, "Kafka transactions of a transactional kafka sink, by result: committed, aborted (none of its batches stored)."},
	{"flowrun_kafka_producers_replaced_total", "counter", nil, "Transactional producers a kafka sink replaced after a failed transaction (the new one aborts what the old one left open)."},
	{"flowrun_sink_write_latency_seconds", "histogram", []string{"type"}, "Time a sink spent in one Write or Flush call (a flush includes the durable write: fsync, commit)."},
	{"flowrun_sink_rows_written_total", "counter", []string{"type"}, "Rows a sink stored durably (committed), counted by the sink itself."},
	{"flowrun_sink_commit_latency_seconds", "histogram", []string{"type"}, "Time a sink took to store one batch durably (one transaction)."},
	{"flowrun_sink_retries_total", "counter", []string{"type"}, "Writes a sink retried after a retryable error."},
	{"flowrun_sink_connections_in_use", "gauge", []string{"type"}, "Connections a sink holds open."},
	{"flowrun_lake_files_committed_total", "counter", nil, "Parquet files the lake sink committed."},
	{"flowrun_lake_rows_committed_total", "counter", nil, "Rows in the files the lake sink committed."},
	{"flowrun_lake_bytes_committed_total", "counter", nil, "Bytes of the files the lake sink committed."},
	{"flowrun_lake_open_files", "gauge", nil, "Files the lake sink is writing."},
	{"flowrun_window_open_windows", "gauge", nil, "Windows holding state."},
	{"flowrun_window_state_bytes", "gauge", nil, "Bytes of window state."},
	{"flowrun_window_watermark_seconds", "gauge", nil, "The window's watermark, in Unix seconds."},
	{"flowrun_window_watermark_lag_seconds", "gauge", nil, "Processing time minus the window's watermark."},
	{"flowrun_window_late_records_total", "counter", nil, "Records that arrived after their window was emitted."},
	{"flowrun_dedupe_forgotten_keys_total", "counter", nil, "Keys dedupe forgot to stay within max_keys (on_full: forget_oldest); a later repeat of one passes."},
	{"flowrun_http_requests_total", "counter", []string{"status"}, "Ingest API requests by HTTP status."},
	{"flowrun_http_request_duration_seconds", "histogram", nil, "Ingest API request latency."},
	{"flowrun_schedule_runs_total", "counter", []string{"status"}, "Scheduled runs by final status."},
	{"flowrun_schedule_last_success_timestamp_seconds", "gauge", nil, "When the pipeline's last scheduled run succeeded."},
}

// Lookup returns the catalogue entry of name.
func Lookup(name string) (Family, bool) {
	for _, f := range Catalog {
		if f.Name == name {
			return f, true
		}
	}
	return Family{}, false
}
