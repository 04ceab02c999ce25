// Package dedupe is the "dedupe" transform: pass the first row for each key
// and drop later rows with the same key, optionally only within a time span.
package dedupe

import (
	"context"
	"encoding/binary"
	"math"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/transform/internal/xf"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Transforms,
	Spec: spec.Spec{
		Name:    "dedupe",
		Summary: "Drop rows whose key was already seen.",
		Doc: `The first row for each key passes; later rows with the same key are dropped
(counted as filtered). Null is a key value like any other. With within, a key
is forgotten that long after it was first seen (on the node's clock), so a
later row with it passes again. At most max_keys keys are remembered; beyond
that the oldest are forgotten. The state lives in memory and is lost on
restart: use an upserting sink for exactly-once results.`,
		Example: `transforms:
  unique:
    from: clean
    dedupe: {key: unique_id, within: 1h}`,
		Config: spec.Obj(
			spec.F("key", spec.StringList, "Columns that make up the key.").Req(),
			spec.F("within", spec.Duration, "Forget a key this long after first seeing it; 0 means never.").Def(time.Duration(0)),
			spec.F("max_keys", spec.Int, "Most keys remembered; the oldest are forgotten first.").Def(1_000_000),
		),
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	in := c.In()
	if in == nil {
		return nil, nil
	}
	cfg := c.Config
	var keys []int
	for i, k := range cfg.Strings("key") {
		j := in.FieldIndices(k)
		if len(j) == 0 {
			xf.UnknownColumn(c, xf.ItemPos(c, cfg.PosOf("key"), i, "key"), k, in)
			continue
		}
		keys = append(keys, j[0])
	}
	if cfg.Has("key") && len(cfg.Strings("key")) == 0 {
		c.Errorf(cfg.PosOf("key"), "'key' needs at least one column")
	}
	maxKeys := cfg.Int64("max_keys")
	if maxKeys < 1 {
		c.Errorf(cfg.PosOf("max_keys"), "'max_keys' must be at least 1")
	}
	within := cfg.Duration("within")
	c.RequireWholeInput("dedupe needs every row of a key to drop its repeats")
	return in, func(r op.Resources) (any, error) {
		clock := r.Clock
		if clock == nil {
			clock = op.SystemClock{}
		}
		return New(keys, within, int(maxKeys), clock, xf.Alloc(r)), nil
	}
}

type seen struct {
	key string
	at  int64
}

// Dedupe remembers keys and drops repeated ones.
type Dedupe struct {
	keys    []int
	within  int64
	maxKeys int
	clock   op.Clock
	mem     memory.Allocator

	mu    sync.Mutex
	first map[string]int64 // key → unix nanos first seen
	order []seen           // keys in the order first seen (may hold stale entries)
	head  int
	buf   []byte
	keep  []bool
}

// New returns a Dedupe over the key columns keys.
func New(keys []int, within time.Duration, maxKeys int, clock op.Clock, mem memory.Allocator) *Dedupe {
	return &Dedupe{keys: keys, within: int64(within), maxKeys: max(1, maxKeys), clock: clock, mem: mem, first: map[string]int64{}}
}

// Len returns how many keys are remembered.
func (d *Dedupe) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.first)
}

// Process implements op.Transform.
func (d *Dedupe) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock.Now().UnixNano()
	if d.within > 0 {
		d.expire(now)
	}
	n := in.Rows()
	d.keep = append(d.keep[:0], make([]bool, n)...)
	cols := make([]arrow.Array, len(d.keys))
	for i, k := range d.keys {
		cols[i] = in.Rec.Column(k)
	}
	kept := 0
	for r := range n {
		d.buf = d.buf[:0]
		for _, c := range cols {
			d.buf = appendKey(d.buf, c, r)
		}
		if at, ok := d.first[string(d.buf)]; ok && (d.within == 0 || now-at < d.within) {
			continue
		}
		k := string(d.buf)
		d.first[k] = now
		d.order = append(d.order, seen{k, now})
		d.keep[r] = true
		kept++
		if len(d.first) > d.maxKeys {
			d.evictOne()
		}
	}
	d.compact()
	return xf.EmitKept(ctx, out, d.mem, in.Ack, in.Rec, d.keep, kept)
}

// expire forgets keys first seen `within` or more before now.
func (d *Dedupe) expire(now int64) {
	for d.head < len(d.order) && now-d.order[d.head].at >= d.within {
		d.drop(d.order[d.head])
		d.head++
	}
}

func (d *Dedupe) evictOne() {
	for d.head < len(d.order) {
		e := d.order[d.head]
		d.head++
		if d.drop(e) {
			return
		}
	}
}

// drop forgets e's key unless it was seen again since (a stale entry).
func (d *Dedupe) drop(e seen) bool {
	if at, ok := d.first[e.key]; ok && at == e.at {
		delete(d.first, e.key)
		return true
	}
	return false
}

func (d *Dedupe) compact() {
	if d.head > 1024 && d.head > len(d.order)/2 {
		n := copy(d.order, d.order[d.head:])
		clear(d.order[n:])
		d.order = d.order[:n]
		d.head = 0
	}
}

// appendKey appends an unambiguous encoding of arr's value at row.
func appendKey(b []byte, arr arrow.Array, row int) []byte {
	if arr.IsNull(row) {
		return append(b, 0)
	}
	b = append(b, 1)
	switch a := arr.(type) {
	case *array.String:
		s := a.Value(row)
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...)
	case *array.Int64:
		return binary.LittleEndian.AppendUint64(b, uint64(a.Value(row)))
	case *array.Int32:
		return binary.LittleEndian.AppendUint32(b, uint32(a.Value(row)))
	case *array.Float64:
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(a.Value(row)))
	case *array.Boolean:
		if a.Value(row) {
			return append(b, 1)
		}
		return append(b, 0)
	case *array.Timestamp:
		return binary.LittleEndian.AppendUint64(b, uint64(a.Value(row)))
	}
	s := arr.ValueStr(row)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
