package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/flowrun/flowrun/runtime/batch"
)

// position is the range of one source partition a batch covers.
type position struct {
	Source, Topic string
	Partition     int32
	First, Last   int64
}

// positionsOf returns the source positions a batch's ack covers.
func positionsOf(a *batch.Ack) []position { return nil }

type partKey struct {
	topic     string
	partition int32
}

// eoState is the exactly-once bookkeeping of one transaction: which
// batches are already stored, and the next offsets the transaction stores.
type eoState struct {
	skips []bool
	next  map[partKey]int64
}

func (e *eoState) skip(b int) bool { return e != nil && e.skips[b] }

// readStored locks and reads the stored offsets of the partitions pend
// covers, and decides which batches are already stored (every partition
// they cover has a stored next offset past their last offset). It returns
// nil when no batch carries positions.
func (s *Sink) readStored(ctx context.Context, tx pgx.Tx, pend []batch.Batch) (*eoState, error) {
	var (
		all    [][]position
		topics []string
		have   bool
	)
	for _, b := range pend {
		ps := positionsOf(b.Ack)
		all = append(all, ps)
		for _, p := range ps {
			have = true
			if !contains(topics, p.Topic) {
				topics = append(topics, p.Topic)
			}
		}
	}
	if !have {
		return nil, nil
	}
	stored := map[partKey]int64{}
	rows, err := tx.Query(ctx, "select topic, partition, next_offset from "+s.offsets.Sanitize()+
		" where pipeline = $1 and sink = $2 and topic = any($3) for update", s.cfg.Pipeline, s.res.Node, topics)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var k partKey
		var next int64
		if err := rows.Scan(&k.topic, &k.partition, &next); err != nil {
			rows.Close()
			return nil, err
		}
		stored[k] = next
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	e := &eoState{skips: make([]bool, len(pend)), next: map[partKey]int64{}}
	for bi, ps := range all {
		if len(ps) == 0 {
			continue
		}
		done := true
		for _, p := range ps {
			if n, ok := stored[partKey{p.Topic, p.Partition}]; !ok || n <= p.Last {
				done = false
			}
		}
		e.skips[bi] = done
		if done {
			continue
		}
		for _, p := range ps {
			k := partKey{p.Topic, p.Partition}
			if p.Last+1 > e.next[k] {
				e.next[k] = p.Last + 1
			}
		}
	}
	return e, nil
}

// storePositions records the next offsets in the transaction.
func (s *Sink) storePositions(ctx context.Context, tx pgx.Tx, e *eoState) error {
	if e == nil || len(e.next) == 0 {
		return nil
	}
	var (
		topics []string
		parts  []int32
		nexts  []int64
	)
	for k, n := range e.next {
		topics = append(topics, k.topic)
		parts = append(parts, k.partition)
		nexts = append(nexts, n)
	}
	t := s.offsets.Sanitize()
	_, err := tx.Exec(ctx, "insert into "+t+" as o (pipeline, sink, topic, partition, next_offset) "+
		"select $1, $2, unnest($3::text[]), unnest($4::integer[]), unnest($5::bigint[]) "+
		"on conflict (pipeline, sink, topic, partition) do update set next_offset = greatest(o.next_offset, excluded.next_offset), updated_at = now()",
		s.cfg.Pipeline, s.res.Node, topics, parts, nexts)
	return err
}

func (s *Sink) committed(e *eoState) {}

// StoredOffsets returns the next offset this sink has not stored for every
// partition of topic it has written (empty when none).
func (s *Sink) StoredOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	rows, err := s.pool.Query(ctx, "select partition, next_offset from "+s.offsets.Sanitize()+
		" where pipeline = $1 and sink = $2 and topic = $3", s.cfg.Pipeline, s.res.Node, topic)
	if err != nil {
		return nil, redactErr(err, s.cfg.URL)
	}
	defer rows.Close()
	out := map[int32]int64{}
	for rows.Next() {
		var p int32
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			return nil, err
		}
		out[p] = n
	}
	return out, rows.Err()
}
