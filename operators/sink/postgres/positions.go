package postgres

import (
	"context"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// positionsOf returns the source positions a batch's ack covers.
func positionsOf(a *batch.Ack) []batch.Position { return a.Positions() }

type partKey struct {
	topic     string
	partition int32
}

// What a transaction does with one pending batch.
const (
	doWrite  = iota // new rows: write them
	doSkip          // every row already stored by an earlier transaction
	doDedupe        // possibly partly stored: write the rows the table does not hold yet
)

// eoState is the exactly-once bookkeeping of one transaction: what to do
// with each batch, and the next offsets the transaction stores.
type eoState struct {
	do   []int
	next map[partKey]int64
}

func (e *eoState) action(b int) int {
	if e == nil {
		return doWrite
	}
	return e.do[b]
}

// readStored locks and reads the stored offsets of the partitions pend
// covers and decides, per batch: skip it (an upsert or a single-path append
// whose every position is stored: a replay), write its rows, or write only
// the rows the table does not hold yet (an append batch that starts below
// the stored offset: a replay cut differently than the first time, or a
// dead-letter sink that hears of one input from several nodes). It returns
// nil when no batch carries positions.
func (s *Sink) readStored(ctx context.Context, tx pgx.Tx, pend []batch.Batch) (*eoState, error) {
	var (
		topics []string
		have   bool
	)
	for _, b := range pend {
		for _, p := range positionsOf(b.Ack) {
			have = true
			if !contains(topics, p.Topic) {
				topics = append(topics, p.Topic)
			}
		}
	}
	if !have {
		return nil, nil
	}
	// Two processes may write the same partition for a moment (a
	// rebalance): a transaction lock per partition serialises them, also
	// for a partition that has no row in the offsets table yet (FOR UPDATE
	// locks only existing rows). Taken in sorted order: no deadlock.
	var keys []string
	for _, b := range pend {
		for _, p := range positionsOf(b.Ack) {
			k := s.cfg.Pipeline + "/" + s.res.Node + "/" + p.Topic + "/" + strconv.Itoa(int(p.Partition))
			if !contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock(hashtext(k)) from unnest($1::text[]) with ordinality u(k, i) order by i", keys); err != nil {
		return nil, err
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
	var refused []batch.Position // ranges whose rows were refused before
	if s.res.DeadLetters != nil {
		rows, err := tx.Query(ctx, "select topic, partition, first_offset, last_offset from "+rejectedTable(s.offsets).Sanitize()+
			" where pipeline = $1 and sink = $2 and topic = any($3)", s.cfg.Pipeline, s.res.Node, topics)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var p batch.Position
			if err := rows.Scan(&p.Topic, &p.Partition, &p.First, &p.Last); err != nil {
				rows.Close()
				return nil, err
			}
			refused = append(refused, p)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	overlaps := func(ps []batch.Position) bool {
		for _, p := range ps {
			for _, r := range refused {
				if p.Topic == r.Topic && p.Partition == r.Partition && p.First <= r.Last && r.First <= p.Last {
					return true
				}
			}
		}
		return false
	}
	e := &eoState{do: make([]int, len(pend)), next: map[partKey]int64{}}
	for bi, b := range pend {
		ps := positionsOf(b.Ack)
		if len(ps) == 0 {
			continue
		}
		all, some := true, false
		for _, p := range ps {
			n, ok := stored[partKey{p.Topic, p.Partition}]
			if !ok || n <= p.Last {
				all = false
			}
			if ok && n > p.First {
				some = true
			}
		}
		switch {
		case s.deadLetterInput && some:
			e.do[bi] = doDedupe
		case all && overlaps(ps) && s.cfg.Mode == "upsert":
			// A row the table refused the first time went to the
			// dead-letter output after the commit; if the process died
			// before that was stored, only writing the batch again (an
			// idempotent upsert) refuses the row again. The dead-letter
			// sink drops the copy if it had stored it.
			e.do[bi] = doWrite
		case all && overlaps(ps):
			e.do[bi] = doDedupe
		case all:
			e.do[bi] = doSkip
		case some && s.cfg.Mode == "append":
			e.do[bi] = doDedupe
		}
		if !b.Final || e.do[bi] == doSkip {
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

// storeRejected records the source ranges of the batches that had refused
// rows, in the transaction.
func (s *Sink) storeRejected(ctx context.Context, tx pgx.Tx, pend []batch.Batch, rejects []reject) error {
	if len(rejects) == 0 || s.res.DeadLetters == nil {
		return nil
	}
	var (
		topics        []string
		parts         []int32
		firsts, lasts []int64
	)
	done := map[int32]bool{}
	for _, r := range rejects {
		if done[r.ref.b] {
			continue
		}
		done[r.ref.b] = true
		for _, p := range positionsOf(pend[r.ref.b].Ack) {
			topics = append(topics, p.Topic)
			parts = append(parts, p.Partition)
			firsts = append(firsts, p.First)
			lasts = append(lasts, p.Last)
		}
	}
	if len(topics) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, "insert into "+rejectedTable(s.offsets).Sanitize()+" (pipeline, sink, topic, partition, first_offset, last_offset) "+
		"select $1, $2, unnest($3::text[]), unnest($4::integer[]), unnest($5::bigint[]), unnest($6::bigint[]) on conflict do nothing",
		s.cfg.Pipeline, s.res.Node, topics, parts, firsts, lasts)
	return err
}

// StoredOffsets returns, per partition of topic, the next offset this sink
// has not stored (empty when it has stored none).
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

// StoreSink is the sink of a data path: an op.PositionStore, so the source
// resumes where it stopped writing. (A dead-letter sink, which hears of one
// input from several nodes, is a plain *Sink: it stores positions and
// writes replays without duplicates, but lets the source resume from its
// own committed offsets.)
type StoreSink struct{ *Sink }

var _ op.PositionStore = StoreSink{}

// Resume implements op.PositionStore.
func (s StoreSink) Resume(ctx context.Context, source, topic string) (map[int32]int64, error) {
	return s.StoredOffsets(ctx, topic)
}
