package op

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard is this process's share of a bounded input split over Count
// processes (flowrun run --shard I/N). The zero value (Count 0) means the
// whole input. A source that reads a list of items (the lake source's
// files) keeps the items for which Owns is true, so that N processes with
// Index 1..N together read every item exactly once.
type Shard struct {
	Index, Count int // 1-based Index of Count; Count 0: not sharded
}

// ParseShard reads "I/N" with 1 ≤ I ≤ N.
func ParseShard(s string) (Shard, error) {
	i, n, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want I/N, e.g. 2/4", s)
	}
	ii, err1 := strconv.Atoi(i)
	nn, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil || nn < 1 || ii < 1 || ii > nn {
		return Shard{}, fmt.Errorf("shard %q: want I/N with 1 ≤ I ≤ N, e.g. 2/4", s)
	}
	return Shard{Index: ii, Count: nn}, nil
}

// Sharded reports whether the input is split (Count > 1).
func (s Shard) Sharded() bool { return s.Count > 1 }

// String is "I/N", or "" when not sharded.
func (s Shard) String() string {
	if s.Count == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Variables a run sets to its shard (flowrun run --shard I/N), for
// pipelines that split rows by key: bucket(KEY, ${SHARD_COUNT}) ==
// ${SHARD_INDEX} - 1. An unsharded run is shard 1 of 1.
const (
	ShardIndexVar = "SHARD_INDEX"
	ShardCountVar = "SHARD_COUNT"
)

// Vars are the run's SHARD_INDEX and SHARD_COUNT (1 and 1 when not sharded).
func (s Shard) Vars() map[string]string {
	if s.Count <= 1 {
		return map[string]string{ShardIndexVar: "1", ShardCountVar: "1"}
	}
	return map[string]string{ShardIndexVar: strconv.Itoa(s.Index), ShardCountVar: strconv.Itoa(s.Count)}
}

// Owns reports whether the item named key belongs to this shard: FNV-1a of
// the key mod Count equals Index-1. A hash (rather than contiguous ranges
// of a sorted list) keeps an item's shard independent of the other items,
// so a file that appears late does not move every other file to another
// shard between two shards' listings.
func (s Shard) Owns(key string) bool {
	if s.Count <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(h.Sum64()%uint64(s.Count)) == s.Index-1
}

// Progress is how far a bounded source is through its input: what a
// progress bar shows. Totals are known once the source has listed its input
// (zero before).
type Progress struct {
	Files, TotalFiles int64
	Rows, Bytes       int64
	TotalBytes        int64
}

// Progresser is implemented by bounded sources that know their input's size
// (the lake source). Progress is called from another goroutine (the
// terminal's bar, twice a second) and must be cheap and safe for that.
type Progresser interface{ Progress() Progress }
