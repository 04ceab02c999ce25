package exec

import (
	"sync"
	"time"
)

// DeadLetter is one record a node rejected, as kept for the status page.
type DeadLetter struct {
	Node, Reason, Record string
	Time                 time.Time
}

// recentDeadLetters keeps the last few rejected records, newest last.
type recentDeadLetters struct {
	mu   sync.Mutex
	ring [recentMax]DeadLetter
	n    int // total recorded
}

const (
	recentMax       = 20
	recentRecordMax = 1 << 10 // bytes of a record kept
)

func (r *recentDeadLetters) add(node, reason, record string, at time.Time) {
	if len(record) > recentRecordMax {
		record = record[:recentRecordMax]
	}
	r.mu.Lock()
	r.ring[r.n%recentMax] = DeadLetter{Node: node, Reason: reason, Record: record, Time: at}
	r.n++
	r.mu.Unlock()
}

// RecentDeadLetters returns up to the last 20 records rejected anywhere in
// the pipeline, newest first (records cut at 1 KiB).
func (p *Pipeline) RecentDeadLetters() []DeadLetter {
	r := &p.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	k := min(r.n, recentMax)
	out := make([]DeadLetter, 0, k)
	for i := 0; i < k; i++ {
		out = append(out, r.ring[(r.n-1-i)%recentMax])
	}
	return out
}
