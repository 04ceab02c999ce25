package win

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

const noTime = math.MinInt64

// partitionOf names the source partition a batch came from, for
// per-partition watermarks: the batch's source positions (source node,
// topic, partition). Batches of one partition arrive in order; the
// watermark of the node is the minimum over its partitions that are not
// idle. A batch without positions (a file, the generator) counts as one
// partition per input of the node (the node that sent it: each side of a
// union keeps its own watermark); a batch whose rows come from several
// partitions (merged upstream) counts as one partition named after all of
// them.
func partitionOf(b batch.Batch, from string) string {
	ps := b.Ack.Positions()
	if len(ps) == 0 {
		if from == "" {
			return ""
		}
		return "input " + from
	}
	first := ps[0]
	names := []string(nil)
	for _, p := range ps[1:] {
		if p.Source != first.Source || p.Topic != first.Topic || p.Partition != first.Partition {
			if names == nil {
				names = []string{partName(first)}
			}
			if n := partName(p); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if names == nil {
		return partName(first)
	}
	return strings.Join(names, "+")
}

func partName(p batch.Position) string {
	if p.Topic == "" {
		return p.Source + "/" + strconv.Itoa(int(p.Partition))
	}
	return p.Source + "/" + p.Topic + "/" + strconv.Itoa(int(p.Partition))
}

type part struct {
	name string
	idx  int32      // watermark group in per_partition mode
	max  int64      // highest event time seen, noTime before the first
	seen time.Time  // clock time of the last batch
	next int64      // one past the last source offset seen, -1 unknown
	ack  *batch.Ack // of the last batch: a transform may emit several pieces of one input under its ack
}

// slot is a session's state beside its aggregates (tumbling and sliding
// windows keep none: their start, end and watermark group are their
// unit's).
type slot struct {
	start, end int64
	group      int32 // watermark group: 0, or the partition in per_partition mode
	live       bool
	ver        uint32
	stamp      uint64       // batch that last added its ack
	heapEnd    int64        // end as last pushed on the end heap
	acks       []*batch.Ack // held inputs
}

// unit is one tumbling or sliding window over every key (of one partition
// in per_partition mode). Its groups are found by key id in an
// open-addressing table; groups only leave a unit with the whole unit.
type unit struct {
	id         uint32 // not reused while a key may cache it (see newUnit)
	group      int32
	start, end int64
	slots      []int32  // in the order they opened
	tab        []uint64 // (key id+1)<<32 | slot, at most half full; nil until needed
	acks       []*batch.Ack
	stamp      uint64
}

func unitHome(k int32, mask uint32) uint32 {
	return uint32((uint64(k)*0x9e3779b97f4a7c15)>>32) & mask
}

// get returns key k's slot in u. The table is built on the first lookup:
// a window whose rows come in order finds its groups through the keys'
// cache (keyEnt.lastSlot) and never needs one.
func (u *unit) get(k int32, slotKey []int32) (int32, bool) {
	if u.tab == nil {
		n := 8
		for n < 2*len(u.slots)+2 {
			n *= 2
		}
		u.tab = make([]uint64, n)
		for _, s := range u.slots {
			u.place(uint64(slotKey[s]+1)<<32 | uint64(uint32(s)))
		}
	}
	mask := uint32(len(u.tab) - 1)
	for i := unitHome(k, mask); ; i = (i + 1) & mask {
		e := u.tab[i]
		if e == 0 {
			return 0, false
		}
		if int32(e>>32) == k+1 {
			return int32(uint32(e)), true
		}
	}
}

// put records key k's new slot s.
func (u *unit) put(k, s int32) {
	u.slots = append(u.slots, s)
	if u.tab == nil {
		return
	}
	if 2*len(u.slots) > len(u.tab) {
		old := u.tab
		u.tab = make([]uint64, 2*len(u.tab))
		for _, e := range old {
			if e != 0 {
				u.place(e)
			}
		}
	}
	u.place(uint64(k+1)<<32 | uint64(uint32(s)))
}

func (u *unit) place(e uint64) {
	mask := uint32(len(u.tab) - 1)
	i := unitHome(int32(e>>32)-1, mask)
	for u.tab[i] != 0 {
		i = (i + 1) & mask
	}
	u.tab[i] = e
}

type ukey struct {
	group int32
	start int64
}

// Window is a running window node.
type Window struct {
	cfg  *Config
	res  op.Resources
	accs []acc
	// st holds the numeric aggregates (rowAccs), others are the rest;
	// holding are the others whose slots hold memory (strings, sets,
	// values): reset when a slot is freed, the rest when it is reused.
	st      store
	others  []acc
	holding []acc
	fixed   int64

	keys    keyTable
	newKeys []int32 // keys made by the batch being processed
	buf     []byte
	dec     keyDecoder

	slotKey []int32 // per slot: its key id
	slots   []slot  // per slot, sessions only
	free    []int32
	live    int

	units map[ukey]*unit
	last  *unit
	spare []*unit // emitted units whose slices are reused
	// unitSeq numbers units, so a key's cached group names its unit.
	unitSeq uint32
	// phases is size/every of a sliding window (up to 8, else 0): slide
	// caches each key's group in each of the windows a row visits, by key
	// id and window start / every mod phases: (unit id)<<32 | slot.
	phases int
	slide  []uint64

	sess    [][]int32 // by key id: its open sessions; emptied lists keep their room for the id's next key
	ends    endHeap
	fwd     map[int32]int32 // session slots merged during this batch
	dead    []int32         // their frees, deferred past the batch's adds
	touched []int32         // sessions this batch added to

	from string // the input the next batch comes by (op.InputNamer)
	// pending are the inputs that have sent nothing yet: they hold the
	// watermark back (not in per_partition mode) until their first batch
	// or until idle_timeout after the start.
	pending      map[string]bool
	pendingSince time.Time
	parts        map[string]*part
	byIdx        []*part
	wm           int64   // the node's watermark (the lowest of wms)
	wms          []int64 // per watermark group: [0] alone, or one per partition
	seq          uint64
	stopped      bool
	late         int64

	// Measured state, per batch: open groups, bytes, the watermark.
	gRows, gBytes, gWM, gLag op.Gauge
	cLate                    op.Counter

	sortBuf []sortEnt // the keys of the windows being emitted
	views   []view    // of the batch being processed
	one     [1]int32

	ts     []int64
	keyOf  []int32
	rows   []int32
	slotOf []int32
	ev     *exprc.Evaluator
}

// New returns a window node for cfg.
func New(cfg *Config, r op.Resources) *Window {
	if r.Clock == nil {
		r.Clock = op.SystemClock{}
	}
	if r.BatchRows <= 0 {
		r.BatchRows = 1024
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	w := &Window{cfg: cfg, res: r, keys: newKeyTable(),
		units: map[ukey]*unit{}, fwd: map[int32]int32{},
		parts: map[string]*part{}, wm: noTime, wms: []int64{noTime}, fixed: groupCost}
	if cfg.Kind == Session {
		w.fixed = sessionCost
	}
	if p := cfg.Size / max(cfg.Every, 1); cfg.Kind == Sliding && p > 1 && p <= 8 {
		w.phases = int(p)
	}
	m := r.MetricsOrNop()
	// The names and help of runtime/metrics.Catalog.
	w.gRows = m.Gauge("flowrun_window_open_windows", "Windows holding state.")
	w.gBytes = m.Gauge("flowrun_window_state_bytes", "Bytes of window state.")
	w.gWM = m.Gauge("flowrun_window_watermark_seconds", "The window's watermark, in Unix seconds.")
	w.gLag = m.Gauge("flowrun_window_watermark_lag_seconds", "Processing time minus the window's watermark.")
	w.cLate = m.Counter("flowrun_window_late_records_total", "Records that arrived after their window was emitted.")
	for _, k := range cfg.Keys {
		w.dec.kinds = append(w.dec.kinds, kindOf(cfg.In.Field(k).Type))
	}
	w.newAccs()
	for _, a := range w.accs {
		w.fixed += a.fixed()
	}
	return w
}

// LateCount is the number of late records sent to the late output.
func (w *Window) LateCount() int64 { return w.late }

// Watermark is the node's current watermark (event time), and false before
// the first one.
func (w *Window) Watermark() (time.Time, bool) {
	if w.wm == noTime {
		return time.Time{}, false
	}
	return time.UnixMicro(w.wm).UTC(), true
}

// StateRows and StateBytes measure the open state.
func (w *Window) StateRows() int { return w.live }

// StateBytes estimates the memory the open state holds.
func (w *Window) StateBytes() int64 {
	n := int64(w.live)*w.fixed + w.keys.bytes() + 8*int64(len(w.slide))
	for _, a := range w.accs {
		n += a.dyn()
	}
	return n
}

// Process implements op.Transform.
func (w *Window) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	if w.stopped {
		// A graceful stop dropped the state: the rows still in flight are
		// not counted either, and their positions stay uncommitted.
		in.Release(batch.ErrDropped)
		return nil
	}
	defer in.Rec.Release()
	now := w.res.Clock.Now()
	if w.cfg.Processing {
		if err := w.advance(ctx, now, out); err != nil {
			in.Ack.Done(err)
			return err
		}
	}
	w.seq++
	n := in.Rows()
	if err := w.eventTimes(in.Rec, now, out); err != nil {
		in.Ack.Done(err)
		return err
	}
	p := w.part(partitionOf(in, w.from), now)
	w.replayed(p, in.Ack)
	w.keyIDsFor(in.Rec, p)
	g := w.group(p)
	other := w.otherMin(p, now)
	if w.waiting(now) {
		other = noTime + w.cfg.Lateness // an input not heard from yet: no watermark
	}
	run := p.max
	w.rows, w.slotOf = w.rows[:0], w.slotOf[:0]
	for r := range n {
		t := w.ts[r]
		if t == noTime {
			continue
		}
		wmRow := w.wms[g]
		if !w.cfg.Processing {
			run = max(run, t)
			c := run - w.cfg.Lateness
			if !w.cfg.PerPartition {
				c = min(other, run) - w.cfg.Lateness
			}
			wmRow = max(wmRow, c)
		}
		if err := w.assign(in.Rec, int32(r), t, w.keyOf[r], g, wmRow, in.Ack, out); err != nil {
			in.Ack.Done(err)
			return err
		}
	}
	p.max = run
	if len(w.fwd) > 0 {
		for i, s := range w.slotOf {
			w.slotOf[i] = w.resolve(s)
		}
	}
	w.views = grow(w.views[:0], len(w.accs))
	for i, a := range w.accs {
		v := &w.views[i]
		if c := w.cfg.Aggs[i].Col; c >= 0 {
			*v = newView(in.Rec.Column(c))
		}
		a.add(v, w.rows, w.slotOf, w.ts)
	}
	clear(w.views) // let the batch go
	for _, s := range w.touched {
		if sl := &w.slots[s]; sl.live && sl.heapEnd != sl.end {
			sl.ver++
			sl.heapEnd = sl.end
			w.ends.push(endEntry{end: sl.end, slot: s, ver: sl.ver})
		}
	}
	w.touched = w.touched[:0]
	for _, s := range w.dead {
		w.freeSlot(s)
	}
	w.dead = w.dead[:0]
	clear(w.fwd)
	for _, k := range w.newKeys {
		// (The table was reset if the batch's merges freed every key.)
		if int(k) < len(w.keys.ids) && w.keys.ids[k].refs == 0 {
			w.keys.remove(k)
		}
	}
	w.keys.maybeSweep()
	w.newKeys = w.newKeys[:0]
	in.Ack.Done(nil)
	if err := w.advance(ctx, now, out); err != nil {
		return err
	}
	return w.checkBounds()
}

func (w *Window) resolve(s int32) int32 {
	for {
		t, ok := w.fwd[s]
		if !ok {
			return s
		}
		s = t
	}
}

// eventTimes fills w.ts (microseconds) for every row; rows without a usable
// time are rejected and marked noTime.
func (w *Window) eventTimes(rec arrow.RecordBatch, now time.Time, out op.Output) error {
	n := int(rec.NumRows())
	w.ts = grow(w.ts[:0], n)
	switch {
	case w.cfg.Processing:
		t := now.UnixMicro()
		for i := range w.ts {
			w.ts[i] = t
		}
	case w.cfg.TimeCol >= 0:
		col := rec.Column(w.cfg.TimeCol).(*array.Timestamp)
		unit := col.DataType().(*arrow.TimestampType).Unit
		vals := col.TimestampValues()
		for i := range n {
			if col.IsNull(i) {
				w.ts[i] = noTime
				if err := out.Reject(rowJSON(rec, i), "window: event_time is null"); err != nil {
					return err
				}
				continue
			}
			w.ts[i] = toMicros(int64(vals[i]), unit)
		}
	default:
		if w.ev == nil {
			w.ev = w.cfg.TimeExpr.NewEvaluator()
		}
		w.ev.Bind(rec)
		for i := range n {
			v, err := w.ev.Eval(i)
			t, ok := v.(time.Time)
			if err != nil || !ok {
				w.ts[i] = noTime
				reason := "window: event_time is null"
				if err != nil {
					reason = "window: event_time: " + err.Error()
				}
				if err := out.Reject(rowJSON(rec, i), reason); err != nil {
					return err
				}
				continue
			}
			w.ts[i] = t.UnixMicro()
		}
	}
	return nil
}

func toMicros(v int64, u arrow.TimeUnit) int64 {
	switch u {
	case arrow.Second:
		return v * 1e6
	case arrow.Millisecond:
		return v * 1e3
	case arrow.Nanosecond:
		return v / 1e3
	}
	return v
}

func (w *Window) part(name string, now time.Time) *part {
	p := w.parts[name]
	if p == nil {
		p = &part{name: name, max: noTime, idx: int32(len(w.byIdx)), next: -1}
		w.parts[name] = p
		w.byIdx = append(w.byIdx, p)
		if w.cfg.PerPartition && p.idx > 0 {
			w.wms = append(w.wms, noTime)
		}
	}
	p.seen = now
	return p
}

// group is the watermark group of p's rows.
func (w *Window) group(p *part) int32 {
	if w.cfg.PerPartition {
		return p.idx
	}
	return 0
}

func (w *Window) idle(p *part, now time.Time) bool { return now.Sub(p.seen) >= w.cfg.Idle }

// otherMin is the lowest high-water mark of the partitions other than p that
// hold the watermark back (active, with data), or MaxInt64.
func (w *Window) otherMin(p *part, now time.Time) int64 {
	m := int64(math.MaxInt64)
	for _, q := range w.parts {
		if q != p && q.max != noTime && !w.idle(q, now) {
			m = min(m, q.max)
		}
	}
	return m
}

// watermark computes the node's watermark: the minimum over active
// partitions of their highest event time, or the maximum over all when
// every partition is idle, minus the allowed lateness.
func (w *Window) watermark(now time.Time) int64 {
	if w.cfg.Processing {
		return now.UnixMicro()
	}
	if w.waiting(now) {
		return noTime
	}
	lo, hi := int64(math.MaxInt64), int64(noTime)
	for _, q := range w.parts {
		if q.max == noTime {
			continue
		}
		hi = max(hi, q.max)
		if !w.idle(q, now) {
			lo = min(lo, q.max)
		}
	}
	if hi == noTime {
		return noTime
	}
	if lo == math.MaxInt64 {
		lo = hi
	}
	return lo - w.cfg.Lateness
}

func (w *Window) advance(ctx context.Context, now time.Time, out op.Output) error {
	if !w.cfg.PerPartition || w.cfg.Processing {
		if wm := w.watermark(now); wm > w.wm {
			w.wm = wm
			for i := range w.wms {
				w.wms[i] = wm
			}
			return w.emit(ctx, out)
		}
		return nil
	}
	// Each partition's windows close by its own watermark; an idle
	// partition's windows close at its highest event time.
	moved := false
	lo := int64(math.MaxInt64)
	for _, p := range w.byIdx {
		if p.max == noTime {
			continue
		}
		c := p.max - w.cfg.Lateness
		if w.idle(p, now) {
			c = p.max
		}
		if c > w.wms[p.idx] {
			w.wms[p.idx], moved = c, true
		}
		lo = min(lo, w.wms[p.idx])
	}
	if lo != math.MaxInt64 {
		w.wm = lo
	}
	if moved {
		return w.emit(ctx, out)
	}
	return nil
}

// keyIDsFor fills w.keyOf with each row's key id, creating keys as needed.
// In per_partition mode a key ends with its partition's index, so the
// same values read from two partitions are two groups.
func (w *Window) keyIDsFor(rec arrow.RecordBatch, p *part) {
	n := int(rec.NumRows())
	w.keyOf = grow(w.keyOf[:0], n)
	var suffix []byte
	if w.cfg.PerPartition {
		suffix = binary.BigEndian.AppendUint32(nil, uint32(p.idx))
	}
	if len(w.cfg.Keys) == 0 {
		id := w.keyID(suffix)
		for i := range w.keyOf {
			w.keyOf[i] = id
		}
		return
	}
	w.views = grow(w.views[:0], len(w.cfg.Keys))
	views := w.views
	defer clear(views) // let the batch go
	for i, k := range w.cfg.Keys {
		views[i] = newView(rec.Column(k))
	}
	for r := range n {
		b := w.buf[:0]
		for i := range views {
			b = encodeKey(b, &views[i], int32(r))
		}
		b = append(b, suffix...)
		w.buf = b
		w.keyOf[r] = w.keyID(b)
	}
}

func (w *Window) keyID(enc []byte) int32 {
	id, made := w.keys.find(enc)
	if made {
		w.newKeys = append(w.newKeys, id)
	}
	return id
}

// keyVal is key id's encoded values, without the partition.
func (w *Window) keyVal(id int32) []byte {
	b := w.keys.key(id)
	if w.cfg.PerPartition {
		b = b[:len(b)-4]
	}
	return b
}

// keyPart is the partition of key id in per_partition mode.
func (w *Window) keyPart(id int32) string {
	b := w.keys.key(id)
	return w.byIdx[binary.BigEndian.Uint32(b[len(b)-4:])].name
}

// Bytes held per open group beside the aggregates and keys: a tumbling or
// sliding group's key id, its entry in its unit's list and table (at most
// half full); a session's also its slot, its end heap entry and its entry
// in its key's list.
const (
	groupCost   = 4 + 4 + 2*8
	sessionCost = 4 + int64(unsafe.Sizeof(slot{})) + int64(unsafe.Sizeof(endEntry{})) + 4
)

func (w *Window) newSlot(start, end int64, key, group int32) int32 {
	var s int32
	if n := len(w.free); n > 0 {
		s = w.free[n-1]
		w.free = w.free[:n-1]
		// Numbers are reset here rather than when the slot was freed: the
		// rows about to be added load these cache lines anyway.
		w.st.clear(s)
		w.one[0] = s
		for _, a := range w.others {
			a.reset(w.one[:])
		}
	} else {
		s = int32(len(w.slotKey))
		w.slotKey = append(w.slotKey, 0)
		if w.cfg.Kind == Session {
			w.slots = append(w.slots, slot{})
		}
		w.st.grow(len(w.slotKey))
		for _, a := range w.others {
			a.grow(len(w.slotKey))
		}
	}
	w.slotKey[s] = key
	if w.cfg.Kind == Session {
		sl := &w.slots[s]
		sl.start, sl.end, sl.group, sl.live = start, end, group, true
		sl.ver++
		sl.acks, sl.stamp, sl.heapEnd = sl.acks[:0], 0, 0
	}
	w.keys.ids[key].refs++
	w.live++
	return s
}

func (w *Window) freeSlot(s int32) {
	w.one[0] = s
	w.freeSlots(w.one[:])
}

// freeSlots frees slots: their aggregates, and their keys when no other
// group holds them.
func (w *Window) freeSlots(slots []int32) {
	for _, a := range w.holding {
		a.reset(slots)
	}
	for _, s := range slots {
		if w.cfg.Kind == Session {
			sl := &w.slots[s]
			sl.live = false
			sl.ver++
			clear(sl.acks)
			sl.acks = sl.acks[:0]
		}
		k := w.slotKey[s]
		if e := &w.keys.ids[k]; e.refs == 1 {
			w.keys.remove(k)
		} else {
			e.refs--
		}
	}
	w.free = append(w.free, slots...)
	w.live -= len(slots)
}

// assign places row r (event time t, key k) into its windows, or sends it
// to the late output when the windows it belongs to were already emitted.
func (w *Window) assign(rec arrow.RecordBatch, r int32, t int64, k, g int32, wm int64, ack *batch.Ack, out op.Output) error {
	switch w.cfg.Kind {
	case Tumbling:
		start := floorDiv(t, w.cfg.Size) * w.cfg.Size
		end := start + w.cfg.Size
		if end <= wm {
			return w.lateRow(rec, r, t, wm, out, [][2]int64{{start, end}})
		}
		w.addTo(start, end, k, g, r, ack, w.keys.ids[k].refs == 0)
	case Sliding:
		last := floorDiv(t, w.cfg.Every) * w.cfg.Every
		var missed [][2]int64
		// A key with no group before this row has none in any of its
		// windows but those this row opens: nothing to look up.
		fresh := w.keys.ids[k].refs == 0
		for start := last; start > t-w.cfg.Size; start -= w.cfg.Every {
			end := start + w.cfg.Size
			if end <= wm {
				missed = append(missed, [2]int64{start, end})
				continue
			}
			w.addTo(start, end, k, g, r, ack, fresh)
		}
		if len(missed) > 0 {
			slices.Reverse(missed)
			return w.lateRow(rec, r, t, wm, out, missed)
		}
	case Session:
		return w.addSession(rec, r, t, k, g, wm, ack, out)
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// addTo adds row r to the (start, key) group of a tumbling or sliding window.
// fresh says the key had no group before this row.
func (w *Window) addTo(start, end int64, k, g, r int32, ack *batch.Ack, fresh bool) {
	u := w.last
	if u == nil || u.start != start || u.group != g {
		u = w.units[ukey{g, start}]
		if u == nil {
			u = w.newUnit(g, start, end)
			w.units[ukey{g, start}] = u
		}
		w.last = u
	}
	if u.stamp != w.seq {
		u.stamp = w.seq
		ack.Retain(1)
		u.acks = append(u.acks, ack)
	}
	e := &w.keys.ids[k]
	if w.phases > 0 {
		// Sliding: the key's group in each of the windows a row visits.
		ph := floorDiv(start, w.cfg.Every) % int64(w.phases)
		if ph < 0 {
			ph += int64(w.phases)
		}
		i := int(k)*w.phases + int(ph)
		if i >= len(w.slide) {
			w.slide = grow(w.slide, (int(k)+1)*w.phases)
		}
		c := w.slide[i]
		s := int32(uint32(c))
		if uint32(c>>32) != u.id {
			var ok bool
			if !fresh {
				s, ok = u.get(k, w.slotKey)
			}
			if !ok {
				s = w.newSlot(start, end, k, g)
				u.put(k, s)
			}
			w.slide[i] = uint64(u.id)<<32 | uint64(uint32(s))
		}
		w.rows = append(w.rows, r)
		w.slotOf = append(w.slotOf, s)
		return
	}
	s := e.lastSlot
	if e.lastUnit != u.id {
		var ok bool
		if !fresh { // a new key has no group to look for
			s, ok = u.get(k, w.slotKey)
		}
		if !ok {
			s = w.newSlot(start, end, k, g)
			u.put(k, s)
			e = &w.keys.ids[k]
		}
		e.lastUnit, e.lastSlot = u.id, s
	}
	w.rows = append(w.rows, r)
	w.slotOf = append(w.slotOf, s)
}

func (w *Window) newUnit(g int32, start, end int64) *unit {
	if w.unitSeq++; w.unitSeq == 0 {
		// Wrapped after 2^32 windows: forget every key's cached group
		// rather than let an old id name a new window. 0 is no unit.
		for i := range w.keys.ids {
			w.keys.ids[i].lastUnit = 0
		}
		clear(w.slide)
		w.unitSeq = 1
	}
	if n := len(w.spare); n > 0 {
		u := w.spare[n-1]
		w.spare = w.spare[:n-1]
		u.group, u.start, u.end, u.stamp, u.id = g, start, end, 0, w.unitSeq
		return u
	}
	return &unit{group: g, start: start, end: end, id: w.unitSeq}
}

// forget removes emitted or dropped unit u, keeping small slices for the
// next unit (a spike's big table goes to the collector).
func (w *Window) forget(u *unit) {
	delete(w.units, ukey{u.group, u.start})
	if w.last == u {
		w.last = nil
	}
	if len(w.spare) >= 8 || len(u.slots) > 1<<12 {
		return
	}
	clear(u.acks)
	u.slots, u.acks, u.tab = u.slots[:0], u.acks[:0], nil
	w.spare = append(w.spare, u)
}

// addSession adds row r to key k's session around t, merging the sessions
// it bridges.
func (w *Window) addSession(rec arrow.RecordBatch, r int32, t int64, k, g int32, wm int64, ack *batch.Ack, out op.Output) error {
	lo, hi := t, t+w.cfg.Gap
	if int(k) >= len(w.sess) {
		w.sess = grow(w.sess, int(k)+1)
	}
	list := w.sess[k]
	target := int32(-1)
	keep := list[:0]
	for _, s := range list {
		sl := &w.slots[s]
		// A session the watermark has passed is closed even before it is
		// emitted at the end of the batch: results must not depend on
		// where batches happen to start.
		if sl.start > hi || sl.end < lo || sl.end <= wm {
			keep = append(keep, s)
			continue
		}
		if target < 0 {
			target = s
			continue
		}
		// s is bridged by t: fold it into target.
		tg := &w.slots[target]
		w.one[0] = s
		for _, a := range w.accs {
			a.merge(target, s)
			a.reset(w.one[:])
		}
		tg.start, tg.end = min(tg.start, sl.start), max(tg.end, sl.end)
		tg.acks = append(tg.acks, sl.acks...)
		if sl.stamp == w.seq {
			tg.stamp = w.seq
		}
		sl.acks = sl.acks[:0]
		w.touched = append(w.touched, target)
		w.fwd[s] = target
		w.dead = append(w.dead, s)
	}
	if target < 0 {
		if hi <= wm {
			return w.lateRow(rec, r, t, wm, out, [][2]int64{{lo, hi}})
		}
		target = w.newSlot(lo, hi, k, g)
	}
	tg := &w.slots[target]
	tg.start, tg.end = min(tg.start, lo), max(tg.end, hi)
	if tg.stamp != w.seq {
		tg.stamp = w.seq
		ack.Retain(1)
		tg.acks = append(tg.acks, ack)
		w.touched = append(w.touched, target)
	}
	keep = append(keep, target)
	slices.SortFunc(keep, func(a, b int32) int { return cmp.Compare(w.slots[a].start, w.slots[b].start) })
	w.sess[k] = keep
	w.rows = append(w.rows, r)
	w.slotOf = append(w.slotOf, target)
	return nil
}

func (w *Window) lateRow(rec arrow.RecordBatch, r int32, t, wm int64, out op.Output, missed [][2]int64) error {
	w.late++
	w.cLate.Add(1)
	parts := make([]string, len(missed))
	for i, m := range missed {
		parts[i] = fmt.Sprintf("[%s, %s)", ts(m[0]), ts(m[1]))
	}
	reason := fmt.Sprintf("late: event_time %s is behind the watermark %s; %s window %s was already emitted",
		ts(t), ts(wm), w.cfg.Kind, strings.Join(parts, ", "))
	if lo, ok := out.(op.LateOutput); ok {
		return lo.Late(rowJSON(rec, int(r)), reason)
	}
	return out.Reject(rowJSON(rec, int(r)), reason)
}

func ts(us int64) string { return time.UnixMicro(us).UTC().Format(time.RFC3339Nano) }

// seg is a run of emitted groups of one window: a tumbling or sliding
// unit's groups, or one session.
type seg struct {
	start, end int64
	group      int32
	slots      []int32
	keys       []sortEnt // the slots' encoded keys, when sorting read them
}

// emit writes every window that ends at or before wm.
func (w *Window) emit(ctx context.Context, out op.Output) error {
	var segs []seg
	var acks []*batch.Ack
	var us []*unit
	if w.cfg.Kind == Session {
		var done []int32
		hi := slices.Max(w.wms)
		var later []endEntry // of partitions whose watermark is behind
		for w.ends.Len() > 0 && w.ends[0].end <= hi {
			e := w.ends.pop()
			sl := &w.slots[e.slot]
			if !sl.live || sl.ver != e.ver {
				continue // stale: the session grew or was merged
			}
			if e.end > w.wms[sl.group] {
				later = append(later, e)
				continue
			}
			done = append(done, e.slot)
			acks = append(acks, sl.acks...)
			sl.acks = sl.acks[:0]
		}
		for _, e := range later {
			w.ends.push(e)
		}
		slices.SortFunc(done, func(a, b int32) int {
			if c := cmp.Compare(w.slots[a].start, w.slots[b].start); c != 0 {
				return c
			}
			return w.keyCmp(w.slotKey[a], w.slotKey[b])
		})
		for i, s := range done {
			sl := &w.slots[s]
			segs = append(segs, seg{sl.start, sl.end, sl.group, done[i : i+1], nil})
		}
	} else {
		for _, u := range w.units {
			if u.end <= w.wms[u.group] {
				us = append(us, u)
			}
		}
		slices.SortFunc(us, func(a, b *unit) int {
			if c := cmp.Compare(a.start, b.start); c != 0 {
				return c
			}
			return cmp.Compare(w.byIdx[a.group].name, w.byIdx[b.group].name)
		})
		n := 0
		for _, u := range us {
			n += len(u.slots)
		}
		if cap(w.sortBuf) < n {
			w.sortBuf = make([]sortEnt, 0, n)
		}
		for _, u := range us {
			segs = append(segs, seg{u.start, u.end, u.group, u.slots, w.sortByKey(u.slots)})
			acks = append(acks, u.acks...)
		}
	}
	err := w.write(ctx, segs, acks, out)
	clear(w.sortBuf) // they point into the key arena
	w.sortBuf = w.sortBuf[:0]
	if cap(w.sortBuf) > 1<<16 {
		w.sortBuf = nil
	}
	for _, sg := range segs {
		if w.cfg.Kind == Session {
			for _, s := range sg.slots {
				w.unlinkSession(s)
			}
		}
		w.freeSlots(sg.slots)
	}
	for _, u := range us {
		w.forget(u)
	}
	w.keys.maybeSweep()
	if w.live == 0 {
		w.slide = w.slide[:0] // no key has a group to remember
	}
	return err
}

// write emits the groups of segs in batches of at most BatchRows rows,
// under one ack that finishes acks when every batch is stored. The result
// carries none of their source positions, which may also cover rows of
// windows still open (see docs/windows.md).
func (w *Window) write(ctx context.Context, segs []seg, acks []*batch.Ack, out op.Output) error {
	var chunks [][]seg
	var chunk []seg
	rows := 0
	for _, sg := range segs {
		for len(sg.slots) > 0 {
			take := min(len(sg.slots), w.res.BatchRows-rows)
			piece := sg
			piece.slots = sg.slots[:take]
			if sg.keys != nil {
				piece.keys = sg.keys[:take]
				sg.keys = sg.keys[take:]
			}
			chunk = append(chunk, piece)
			sg.slots = sg.slots[take:]
			if rows += take; rows == w.res.BatchRows {
				chunks, chunk, rows = append(chunks, chunk), nil, 0
			}
		}
	}
	if rows > 0 {
		chunks = append(chunks, chunk)
	}
	if len(chunks) == 0 {
		batch.Merge(acks...).Done(nil)
		return nil
	}
	merged := batch.Merge(acks...)
	ack := batch.NewAck(merged.Done)
	ack.Retain(len(chunks) - 1)
	for c, chunk := range chunks {
		rec := w.build(chunk)
		if err := out.Emit(ctx, batch.Batch{Rec: rec, Ack: ack}); err != nil {
			for range len(chunks) - c - 1 {
				ack.Done(err)
			}
			return err
		}
	}
	return nil
}

func (w *Window) unlinkSession(s int32) {
	k := w.slotKey[s]
	list := w.sess[k]
	if i := slices.Index(list, s); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	w.sess[k] = list
}

// build writes the groups of chunk column by column.
func (w *Window) build(chunk []seg) arrow.RecordBatch {
	b := array.NewRecordBuilder(w.res.Alloc, w.cfg.Out)
	defer b.Release()
	rows := 0
	for _, sg := range chunk {
		rows += len(sg.slots)
	}
	b.Reserve(rows)
	nk := len(w.cfg.Keys)
	keys := b.Fields()[:nk]
	if n := w.keys.live + w.keys.dead; n > 0 {
		// String keys take at most the bytes of their encoding: reserve
		// the average, so the value buffers rarely grow and copy.
		avg := len(w.keys.arena)/n + 1
		for _, k := range keys {
			if sb, ok := k.(*array.StringBuilder); ok {
				sb.ReserveData(rows * avg)
			}
		}
	}
	var parts *array.StringBuilder
	if w.cfg.PerPartition {
		parts = b.Field(nk).(*array.StringBuilder)
		nk++
	}
	starts := b.Field(nk).(*array.TimestampBuilder)
	ends := b.Field(nk + 1).(*array.TimestampBuilder)
	for _, sg := range chunk {
		switch {
		case len(keys) == 0:
		case sg.keys != nil:
			cut := 0
			if w.cfg.PerPartition {
				cut = 4
			}
			for i := range sg.keys {
				k := sg.keys[i].key
				w.dec.put(unsafe.Slice(unsafe.StringData(k), len(k)-cut), keys)
			}
		default:
			for _, s := range sg.slots {
				w.dec.put(w.keyVal(w.slotKey[s]), keys)
			}
		}
		for range sg.slots {
			if parts != nil {
				parts.Append(w.byIdx[sg.group].name)
			}
			starts.UnsafeAppend(arrow.Timestamp(sg.start))
			ends.UnsafeAppend(arrow.Timestamp(sg.end))
		}
		rows := w.st.gather(sg.slots)
		for i, a := range w.accs {
			if ra, ok := a.(rowAcc); ok {
				ra.putRows(b.Field(nk+2+i), rows, w.st.stride)
			} else {
				a.put(b.Field(nk+2+i), sg.slots)
			}
		}
	}
	return b.NewRecordBatch()
}

// sortEnt is a group being sorted by key: the key's bytes past the prefix
// all keys share, their first 8 bytes as a number (most comparisons end
// there), and the slot.
type sortEnt struct {
	pre  uint64
	key  string
	slot int32
}

// sortByKey orders the slots of one unit (keys of one partition) by key
// and returns their sort entries (appended to w.sortBuf, pointing into the
// arena): the slots were made in the order their keys were, so this pass
// reads the arena in order, and writing the keys later needs no lookup.
func (w *Window) sortByKey(slots []int32) []sortEnt {
	if len(slots) == 0 {
		return nil
	}
	first := w.keys.keyString(w.slotKey[slots[0]])
	lcp := len(first)
	for _, s := range slots[1:] {
		k := w.keys.keyString(w.slotKey[s])
		n := min(lcp, len(k))
		i := 0
		for i < n && k[i] == first[i] {
			i++
		}
		lcp = i
	}
	at := len(w.sortBuf)
	for _, s := range slots {
		k := w.keys.keyString(w.slotKey[s])
		var p [8]byte
		copy(p[:], k[lcp:])
		w.sortBuf = append(w.sortBuf, sortEnt{binary.BigEndian.Uint64(p[:]), k, s})
	}
	ents := w.sortBuf[at:]
	slices.SortFunc(ents, func(a, b sortEnt) int {
		if a.pre != b.pre {
			return cmp.Compare(a.pre, b.pre)
		}
		return strings.Compare(a.key, b.key)
	})
	for i := range ents {
		slots[i] = ents[i].slot
	}
	return ents
}

// keyCmp orders keys by their values (column by column, nulls first),
// then in per_partition mode by partition name.
func (w *Window) keyCmp(a, b int32) int {
	if c := bytes.Compare(w.keyVal(a), w.keyVal(b)); c != 0 || !w.cfg.PerPartition {
		return c
	}
	return strings.Compare(w.keyPart(a), w.keyPart(b))
}

func (w *Window) checkBounds() error {
	w.gRows.Set(float64(w.live))
	w.gBytes.Set(float64(w.StateBytes()))
	if w.wm != noTime && w.wm != math.MaxInt64 {
		w.gWM.Set(float64(w.wm) / 1e6)
		w.gLag.Set(float64(w.res.Clock.Now().UnixMicro()-w.wm) / 1e6)
	}
	if w.live > w.cfg.MaxRows {
		err := fmt.Errorf("window state bound reached: %d open (window, key) groups, over max_state_rows %d (watermark %s); raise max_state_rows, use fewer keys or shorter windows, or check for a partition holding the watermark back",
			w.live, w.cfg.MaxRows, w.wmText())
		w.drop(err)
		return err
	}
	if w.StateBytes() > w.cfg.MaxBytes {
		w.keys.sweep() // dead keys are a cache, not state
	}
	if b := w.StateBytes(); b > w.cfg.MaxBytes {
		err := fmt.Errorf("window state bound reached: about %d bytes held, over max_state_bytes %d (%d open groups, watermark %s); raise max_state_bytes, or use fewer keys, shorter windows or fewer count_distinct/median/quantile aggregates",
			b, w.cfg.MaxBytes, w.live, w.wmText())
		w.drop(err)
		return err
	}
	return nil
}

func (w *Window) wmText() string {
	if w.wm == noTime {
		return "not set yet"
	}
	return ts(w.wm)
}

// replayed notices a partition read again from an earlier offset: the
// source lost it in a rebalance and got it back, and replays from its
// committed offset, which is at or before the first record of its oldest
// open window. In per_partition mode the partition's open windows are
// dropped (their acks, of the lost claim, finish with batch.ErrDropped) and
// its watermark starts over, so the replay rebuilds them without counting
// a record twice; windows already written are rebuilt partly and written
// again, which the sink ignores (see docs/windows.md).
func (w *Window) replayed(p *part, ack *batch.Ack) {
	ps := ack.Positions()
	if len(ps) == 0 || ack == p.ack {
		return
	}
	p.ack = ack
	first, last := ps[0].First, ps[len(ps)-1].Last
	for _, q := range ps[1:] {
		if q.Source != ps[0].Source || q.Topic != ps[0].Topic || q.Partition != ps[0].Partition {
			return // rows of several partitions: no single offset order
		}
	}
	back := p.next >= 0 && first < p.next
	p.next = max(p.next, last+1)
	if !back {
		return
	}
	if !w.cfg.PerPartition {
		w.res.Log.Warn("window: a partition is read again from an earlier offset (a rebalance gave it back); without per_partition its records already in open windows are counted again",
			"partition", p.name, "offset", first, "seen up to", p.next-1)
		return
	}
	w.res.Log.Info("window: partition read again from an earlier offset; its open windows are rebuilt from the replay",
		"partition", p.name, "offset", first, "seen up to", p.next-1)
	w.dropGroup(p.idx, batch.ErrDropped)
	p.max, p.next = noTime, last+1
	w.wms[p.idx] = noTime
}

// Inputs implements op.InputNamer.
func (w *Window) Inputs(names []string) {
	if len(names) < 2 {
		return // one input: nothing to wait for beside it
	}
	w.pending = map[string]bool{}
	for _, n := range names {
		w.pending[n] = true
	}
	w.pendingSince = w.res.Clock.Now()
}

// Input implements op.InputNamer.
func (w *Window) Input(from string) {
	w.from = from
	delete(w.pending, from)
}

// waiting reports whether an input that has sent nothing yet still holds
// the watermark back.
func (w *Window) waiting(now time.Time) bool {
	return len(w.pending) > 0 && !w.cfg.PerPartition && now.Sub(w.pendingSince) < w.cfg.Idle
}

// OnControl implements op.ControlReceiver. A revoked partition's open
// windows are dropped (their acks finish as dropped: its next owner reads
// them again) in per_partition mode, and it stops holding the watermark
// back in either mode; a source's watermark for a partition counts as if a
// row at that time (plus allowed_lateness) had been seen.
func (w *Window) OnControl(ctx context.Context, c op.Control, out op.Output) error {
	if w.stopped {
		return nil
	}
	name := partName(c.Partition)
	now := w.res.Clock.Now()
	switch c.Kind {
	case op.Revoked:
		p := w.parts[name]
		if p == nil {
			return nil
		}
		if w.cfg.PerPartition {
			w.dropGroup(p.idx, batch.ErrDropped)
			p.max = noTime
			w.wms[p.idx] = noTime
		}
		p.next, p.ack = -1, nil
		p.seen = time.Time{} // idle: it no longer holds the watermark back
		w.res.Log.Info("window: partition revoked", "partition", name, "per_partition", w.cfg.PerPartition)
	case op.Watermark:
		if w.cfg.Processing {
			return nil
		}
		p := w.part(name, now)
		p.max = max(p.max, c.Time.UnixMicro()+w.cfg.Lateness)
	}
	if err := w.advance(ctx, now, out); err != nil {
		return err
	}
	return w.checkBounds()
}

// dropGroup forgets the open windows of one watermark group (a partition
// in per_partition mode), finishing the acks they held with err.
func (w *Window) dropGroup(g int32, err error) {
	for _, u := range w.units {
		if u.group != g {
			continue
		}
		for _, a := range u.acks {
			a.Done(err)
		}
		w.freeSlots(u.slots)
		w.forget(u)
	}
	if w.cfg.Kind != Session {
		return
	}
	for i := range w.slots {
		sl := &w.slots[i]
		if !sl.live || sl.group != g {
			continue
		}
		for _, a := range sl.acks {
			a.Done(err)
		}
		clear(sl.acks)
		sl.acks = sl.acks[:0]
		w.unlinkSession(int32(i))
		w.freeSlot(int32(i))
	}
}

// drop forgets every open window, finishing the acks it held with err.
func (w *Window) drop(err error) {
	for _, u := range w.units {
		for _, a := range u.acks {
			a.Done(err)
		}
	}
	for i := range w.slots {
		for _, a := range w.slots[i].acks {
			a.Done(err)
		}
		w.slots[i].acks = nil
	}
	w.units, w.last, w.spare = map[ukey]*unit{}, nil, nil
	w.sess, w.ends = nil, nil
	w.slots, w.slotKey, w.free, w.live = nil, nil, nil, 0
	w.keys, w.newKeys, w.slide = newKeyTable(), nil, nil
	w.newAccs()
}

// newAccs makes the aggregates, with the numeric ones in a new row store.
func (w *Window) newAccs() {
	w.accs, w.holding, w.others = w.accs[:0], w.holding[:0], w.others[:0]
	w.st = store{}
	for i := range w.cfg.Aggs {
		a := newAcc(&w.cfg.Aggs[i])
		w.accs = append(w.accs, a)
		if ra, ok := a.(rowAcc); ok {
			ra.bind(&w.st, w.st.stride)
			w.st.stride += ra.words()
			continue
		}
		w.others = append(w.others, a)
		if a.holds() {
			w.holding = append(w.holding, a)
		}
	}
}

// End implements op.Stateful: the real end of input emits every open
// window; a stop drops them unacknowledged, to be rebuilt by replay.
func (w *Window) End(ctx context.Context, reason op.EndReason, out op.Output) error {
	if reason == op.EndOfInput && !w.stopped {
		w.wm = math.MaxInt64
		for i := range w.wms {
			w.wms[i] = math.MaxInt64
		}
		return w.emit(ctx, out)
	}
	w.drop(batch.ErrDropped)
	w.stopped = true
	return nil
}

// NextTimer implements op.Timed.
func (w *Window) NextTimer() (time.Time, bool) {
	if w.stopped || w.live == 0 {
		return time.Time{}, false
	}
	if w.cfg.Processing {
		next := int64(math.MaxInt64)
		if w.cfg.Kind == Session {
			for _, e := range w.ends {
				next = min(next, e.end)
			}
		} else {
			for _, u := range w.units {
				next = min(next, u.end)
			}
		}
		if next == math.MaxInt64 {
			return time.Time{}, false
		}
		return time.UnixMicro(next), true
	}
	// Event time: wake when an active partition would turn idle, if that
	// can move the watermark.
	now := w.res.Clock.Now()
	if w.waiting(now) {
		return w.pendingSince.Add(w.cfg.Idle), true
	}
	if len(w.parts) < 2 && !w.cfg.PerPartition {
		return time.Time{}, false
	}
	var at time.Time
	for _, q := range w.parts {
		if q.max == noTime || w.idle(q, now) {
			continue
		}
		if t := q.seen.Add(w.cfg.Idle); at.IsZero() || t.Before(at) {
			at = t
		}
	}
	return at, !at.IsZero()
}

// OnTimer implements op.Timed.
func (w *Window) OnTimer(ctx context.Context, now time.Time, out op.Output) error {
	if w.stopped {
		return nil
	}
	return w.advance(ctx, now, out)
}

type endEntry struct {
	end  int64
	slot int32
	ver  uint32
}

// endHeap is a min-heap of session ends (container/heap would box every
// entry pushed into an interface: an allocation per session per batch).
type endHeap []endEntry

func (h endHeap) Len() int { return len(h) }

func (h *endHeap) push(e endEntry) {
	*h = append(*h, e)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p].end <= a[i].end {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *endHeap) pop() endEntry {
	a := *h
	e := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && a[l].end < a[m].end {
			m = l
		}
		if r := l + 1; r < n && a[r].end < a[m].end {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return e
}

// rowJSON renders row r as a JSON object, for late and rejected records.
func rowJSON(rec arrow.RecordBatch, row int) string {
	b := []byte{'{'}
	for i, f := range rec.Schema().Fields() {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f.Name)
		b = append(b, k...)
		b = append(b, ':')
		v, err := json.Marshal(arrowx.NewGetter(rec.Column(i))(row))
		if err != nil {
			v = []byte("null")
		}
		b = append(b, v...)
	}
	return string(append(b, '}'))
}
