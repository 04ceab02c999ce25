package kafkaclient

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// EndMarks returns, per partition of topics, the low mark and the end a
// consumer with isolation level iso reaches: the high-water mark when it
// reads uncommitted records, the last stable offset (before the first open
// transaction) when it reads committed ones. A topic that does not exist is
// an error.
func EndMarks(client sarama.Client, topics []string, iso sarama.IsolationLevel) (map[Partition]Marks, error) {
	out := map[Partition]Marks{}
	for _, t := range topics {
		if err := client.RefreshMetadata(t); err != nil {
			return nil, fmt.Errorf("topic %q: %w", t, err)
		}
		parts, err := client.Partitions(t)
		if err != nil {
			return nil, fmt.Errorf("topic %q: %w", t, err)
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("topic %q has no partitions", t)
		}
		for _, p := range parts {
			hi, err := listOffset(client, t, p, sarama.OffsetNewest, iso)
			if err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", t, p, err)
			}
			lo, err := client.GetOffset(t, p, sarama.OffsetOldest)
			if err != nil {
				return nil, fmt.Errorf("low-water mark of %s/%d: %w", t, p, err)
			}
			out[Partition{t, p}] = Marks{Low: lo, High: hi}
		}
	}
	return out, nil
}

// listOffset is client.GetOffset with an isolation level (GetOffset always
// reads uncommitted).
func listOffset(client sarama.Client, topic string, partition int32, at int64, iso sarama.IsolationLevel) (int64, error) {
	if iso == sarama.ReadUncommitted {
		return client.GetOffset(topic, partition, at)
	}
	broker, err := client.Leader(topic, partition)
	if err != nil {
		return -1, err
	}
	req := sarama.NewOffsetRequest(client.Config().Version)
	req.IsolationLevel = iso
	req.AddBlock(topic, partition, at, 1)
	resp, err := broker.GetAvailableOffsets(req)
	if err != nil {
		return -1, err
	}
	b := resp.GetBlock(topic, partition)
	if b == nil {
		return -1, sarama.ErrIncompleteResponse
	}
	if !errors.Is(b.Err, sarama.ErrNoError) {
		return -1, b.Err
	}
	if len(b.Offsets) != 1 {
		return -1, sarama.ErrOffsetOutOfRange
	}
	return b.Offsets[0], nil
}

// HasData reports whether partition p holds, at an offset in [from, end),
// a record that a consumer with isolation level iso receives. Transaction
// markers (control batches) take offsets but are never delivered, nor are
// aborted transactional records when reading committed: a reader that
// stops at an end offset uses HasData to tell "more records to come" from
// "only markers left", instead of waiting for an offset that never comes.
func HasData(client sarama.Client, p Partition, from, end int64, iso sarama.IsolationLevel) (bool, error) {
	const maxBytes = 4 << 20
	for from < end {
		broker, err := client.Leader(p.Topic, p.Partition)
		if err != nil {
			return false, err
		}
		req := &sarama.FetchRequest{Version: 11, MaxWaitTime: 0, MinBytes: 0, MaxBytes: maxBytes, Isolation: iso,
			SessionID: 0, SessionEpoch: -1}
		req.AddBlock(p.Topic, p.Partition, from, maxBytes, -1)
		resp, err := broker.Fetch(req)
		if err != nil {
			return false, err
		}
		block := resp.GetBlock(p.Topic, p.Partition)
		if block == nil {
			return false, sarama.ErrIncompleteResponse
		}
		if !errors.Is(block.Err, sarama.ErrNoError) {
			return false, block.Err
		}
		aborts := block.AbortedTransactions
		aborted := map[int64]bool{}
		next := from
		for _, rs := range block.RecordsSet {
			if rs == nil {
				continue
			}
			if rs.MsgSet != nil { // legacy message format: no markers
				for _, m := range rs.MsgSet.Messages {
					if m.Offset >= from && m.Offset < end {
						return true, nil
					}
				}
				continue
			}
			b := rs.RecordBatch
			if b == nil {
				continue
			}
			if b.PartialTrailingRecord || len(b.Records) == 0 && !b.Control {
				break // cut off by the size limit: decide on what is complete
			}
			for len(aborts) > 0 && aborts[0].FirstOffset <= b.LastOffset() {
				aborted[aborts[0].ProducerID] = true
				aborts = aborts[1:]
			}
			switch {
			case b.Control:
				if len(b.Records) > 0 && isAbortMarker(b.Records[0].Key) {
					delete(aborted, b.ProducerID)
				}
			case iso == sarama.ReadCommitted && b.IsTransactional && aborted[b.ProducerID]:
			default:
				for _, r := range b.Records {
					if o := b.FirstOffset + r.OffsetDelta; o >= from && o < end {
						return true, nil
					}
				}
			}
			if b.LastOffset()+1 > next {
				next = b.LastOffset() + 1
			}
		}
		if next == from {
			// Nothing complete at from: either nothing more is readable
			// (the end is a transaction still open, or the log was cut),
			// or one batch larger than the fetch limit, which would be data.
			if len(block.RecordsSet) > 0 {
				return true, nil
			}
			return false, nil
		}
		from = next
	}
	return false, nil
}

// isAbortMarker decodes a control record's key: version int16, type int16
// (0 abort, 1 commit).
func isAbortMarker(key []byte) bool {
	return len(key) >= 4 && key[2] == 0 && key[3] == 0
}
