package op

import "context"

// PositionStore is implemented by a sink that stores source positions in
// its own transaction together with the rows they cover (exactly-once
// output without relying on the source's commit).
//
// Such a sink receives batch.Batch values with Final set on the last piece
// of each ack's rows (see batch.Batch): it stores b.Ack.Positions() only
// with a final batch. It also receives position markers — final batches
// with Rec == nil — for input whose rows were all dropped on the way (a
// filter, dead letters): it stores their positions and acknowledges them
// like any batch. A batch whose positions it has already stored (a replay
// after a crash) it acknowledges without writing its rows again.
type PositionStore interface {
	Sink
	// Resume returns, per partition of topic read by the source node named
	// source, the next offset this sink has NOT stored (last stored + 1).
	// Partitions it has never stored are absent.
	Resume(ctx context.Context, source, topic string) (map[int32]int64, error)
}

// ResumeFunc answers where a source should resume reading topic: for each of
// partitions (every partition the stores know when partitions is nil), the
// next offset not yet stored by every sink downstream of the source. A
// partition is present only when every sink the source's data can reach
// (through data, dead-letter and late edges) is a PositionStore that knows it; the
// value is the minimum over those sinks. An absent partition means "no
// stored position": the source starts from its own committed offset.
type ResumeFunc func(ctx context.Context, topic string, partitions []int32) (map[int32]int64, error)
