// Package dedupe is the "dedupe" transform: pass the first row for each key
// and drop later rows with the same key, optionally only within a time span.
package dedupe

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
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
later row with it passes again. The state lives in memory and is lost on
restart: use an upserting sink for exactly-once results.

At most max_keys keys are remembered; a key costs its own size plus about
65 bytes (90 with within or forget_oldest): about 100 MB a million UUIDs.
When a new key arrives with max_keys held, on_full decides: error (the
default) stops the pipeline with an error naming the node and the bound,
since a repeat of a forgotten key would pass unnoticed; forget_oldest
forgets the oldest keys to make room, logs a warning the first time and
counts every forgotten key in flowrun_dedupe_forgotten_keys_total. Keys
that expired by within do not count.`,
		Example: `transforms:
  unique:
    from: clean
    dedupe: {key: unique_id, within: 1h}
  unique_today:
    from: clean
    dedupe: {key: unique_id, max_keys: 5000000}   # fails past 5M distinct ids
  recent:
    from: clean
    dedupe: {key: unique_id, max_keys: 100000, on_full: forget_oldest}`,
		Config: spec.Obj(
			spec.F("key", spec.StringList, "Columns that make up the key.").Req(),
			spec.F("within", spec.Duration, "Forget a key this long after first seeing it; 0 means never.").Def(time.Duration(0)),
			spec.F("max_keys", spec.Int, "Most keys remembered at once; see on_full for what happens past it.").Def(1_000_000),
			spec.F("on_full", spec.Enum, "When a new key arrives with max_keys held: error stops the pipeline; forget_oldest forgets the oldest keys (a repeat of one then passes), counted in flowrun_dedupe_forgotten_keys_total.").OneOf("error", "forget_oldest").Def("error"),
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
	forget := cfg.String("on_full") == "forget_oldest"
	c.RequireWholeInput("dedupe needs every row of a key to drop its repeats")
	return in, func(r op.Resources) (any, error) {
		clock := r.Clock
		if clock == nil {
			clock = op.SystemClock{}
		}
		o := Options{Within: within, MaxKeys: int(maxKeys), Clock: clock, Log: r.Log}
		if forget {
			o.OnFull = ForgetOldest
			o.Forgotten = r.MetricsOrNop().Counter("flowrun_dedupe_forgotten_keys_total",
				"Keys dedupe forgot to stay within max_keys (on_full: forget_oldest); a later repeat of one passes.")
		}
		return New(keys, o, xf.Alloc(r)), nil
	}
}

// OnFull says what Dedupe does when a new key arrives with MaxKeys held.
type OnFull int

const (
	// Fail makes Process return an ErrFull: the default, because a
	// repeat of a forgotten key would pass unnoticed.
	Fail OnFull = iota
	// ForgetOldest forgets the key first seen longest ago.
	ForgetOldest
)

// Options configure a Dedupe.
type Options struct {
	Within  time.Duration // forget a key this long after first seen; 0 never
	MaxKeys int           // most keys held at once (at least 1)
	OnFull  OnFull
	Clock   op.Clock     // nil: the system clock
	Log     *slog.Logger // ForgetOldest warns here once; nil: no log
	// Forgotten counts keys forgotten by ForgetOldest; nil: not counted.
	Forgotten op.Counter
}

// ErrFull is what Process returns when a new key arrives with MaxKeys keys
// held and OnFull is Fail. The runtime prefixes the node's name.
type ErrFull struct{ MaxKeys int }

func (e *ErrFull) Error() string {
	return fmt.Sprintf("dedupe: a new key arrived with max_keys (%d) keys held; forgetting one would let a later repeat of it pass unnoticed, so the run stops. "+
		"Raise max_keys (memory: about 100 MB a million 36-character keys), set within to forget keys by age, "+
		"or set on_full: forget_oldest to forget the oldest keys (counted in flowrun_dedupe_forgotten_keys_total)", e.MaxKeys)
}

// Permanent implements op.PermanentError: the same input would fill the
// keys again, so a scheduler does not retry the run.
func (e *ErrFull) Permanent() bool { return true }

type seen struct {
	key string
	at  int64
}

// Dedupe remembers keys and drops repeated ones.
type Dedupe struct {
	keys []int
	o    Options
	mem  memory.Allocator
	// ordered: order is kept (within or ForgetOldest need the oldest
	// key); without it a key costs only its map entry.
	ordered bool

	mu     sync.Mutex
	first  map[string]int64 // key → unix nanos first seen
	order  []seen           // keys in the order first seen (may hold stale entries)
	head   int
	buf    []byte
	keep   []bool
	warned bool
}

// New returns a Dedupe over the key columns keys.
func New(keys []int, o Options, mem memory.Allocator) *Dedupe {
	o.MaxKeys = max(1, o.MaxKeys)
	if o.Clock == nil {
		o.Clock = op.SystemClock{}
	}
	return &Dedupe{keys: keys, o: o, mem: mem, first: map[string]int64{},
		ordered: o.Within > 0 || o.OnFull == ForgetOldest}
}

// Len returns how many keys are remembered.
func (d *Dedupe) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.first)
}

// Process implements op.Transform. With OnFull Fail it returns an *ErrFull
// when a new key finds MaxKeys held, emitting nothing of in and failing its
// ack; the Dedupe is not meant to be used after that (the run stops).
func (d *Dedupe) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.o.Clock.Now().UnixNano()
	within := int64(d.o.Within)
	if within > 0 {
		d.expire(now, within)
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
		at, ok := d.first[string(d.buf)]
		if ok && (within == 0 || now-at < within) {
			continue
		}
		if !ok && len(d.first) >= d.o.MaxKeys {
			if d.o.OnFull == Fail {
				err := &ErrFull{MaxKeys: d.o.MaxKeys}
				in.Release(err)
				return err
			}
			d.evictOne()
		}
		k := string(d.buf)
		d.first[k] = now
		if d.ordered {
			d.order = append(d.order, seen{k, now})
		}
		d.keep[r] = true
		kept++
	}
	d.compact()
	return xf.EmitKept(ctx, out, d.mem, in.Ack, in.Rec, d.keep, kept)
}

// expire forgets keys first seen `within` or more before now.
func (d *Dedupe) expire(now, within int64) {
	for d.head < len(d.order) && now-d.order[d.head].at >= within {
		d.drop(d.order[d.head])
		d.head++
	}
}

// evictOne forgets the oldest key (ForgetOldest), warning the first time.
func (d *Dedupe) evictOne() {
	if !d.warned {
		d.warned = true
		if d.o.Log != nil {
			d.o.Log.Warn("dedupe: max_keys reached, forgetting the oldest keys; a repeat of a forgotten key passes (flowrun_dedupe_forgotten_keys_total counts them)",
				"max_keys", d.o.MaxKeys)
		}
	}
	for d.head < len(d.order) {
		e := d.order[d.head]
		d.head++
		if d.drop(e) {
			if d.o.Forgotten != nil {
				d.o.Forgotten.Add(1)
			}
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
