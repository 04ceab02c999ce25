package win

import (
	"cmp"
	"container/heap"
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

type keyEntry struct {
	enc  string
	vals []any
	refs int32 // live slots of this key
	// str and null are the value of a single string key, for sorting
	// without boxing.
	str  string
	null bool
	part string // per_partition: the source partition
}

type slot struct {
	start, end int64
	key        int32
	group      int32 // watermark group: 0, or the partition in per_partition mode
	live       bool
	ver        uint32
	stamp      uint64       // batch that last added its ack (sessions)
	heapEnd    int64        // end as last pushed on the end heap (sessions)
	acks       []*batch.Ack // held inputs (sessions)
}

// unit is one tumbling or sliding window over every key (of one partition
// in per_partition mode).
type unit struct {
	group      int32
	start, end int64
	slots      []int32
	acks       []*batch.Ack
	stamp      uint64
}

type skey struct {
	start int64
	key   int32
}

type ukey struct {
	group int32
	start int64
}

// Window is a running window node.
type Window struct {
	cfg   *Config
	res   op.Resources
	accs  []acc
	fixed int64

	keyIDs   map[string]int32
	keys     []keyEntry
	freeKeys []int32
	newKeys  []int32
	keyBytes int64
	buf      []byte

	slots []slot
	free  []int32
	live  int

	bySK  map[skey]int32
	units map[ukey]*unit
	last  *unit

	sess    map[int32][]int32
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
	strKey       bool   // one key column, a string
	curPart      string // the partition of the batch being processed
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
	w := &Window{cfg: cfg, res: r, keyIDs: map[string]int32{}, bySK: map[skey]int32{},
		units: map[ukey]*unit{}, sess: map[int32][]int32{}, fwd: map[int32]int32{},
		parts: map[string]*part{}, wm: noTime, wms: []int64{noTime}, fixed: 96}
	m := r.MetricsOrNop()
	// The names and help of runtime/metrics.Catalog.
	w.gRows = m.Gauge("flowrun_window_open_windows", "Windows holding state.")
	w.gBytes = m.Gauge("flowrun_window_state_bytes", "Bytes of window state.")
	w.gWM = m.Gauge("flowrun_window_watermark_seconds", "The window's watermark, in Unix seconds.")
	w.gLag = m.Gauge("flowrun_window_watermark_lag_seconds", "Processing time minus the window's watermark.")
	w.cLate = m.Counter("flowrun_window_late_records_total", "Records that arrived after their window was emitted.")
	w.strKey = len(cfg.Keys) == 1 && cfg.In.Field(cfg.Keys[0]).Type.ID() == arrow.STRING
	for i := range cfg.Aggs {
		a := newAcc(&cfg.Aggs[i])
		w.accs = append(w.accs, a)
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
	n := int64(w.live)*w.fixed + w.keyBytes
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
	for i, a := range w.accs {
		var v view
		if c := w.cfg.Aggs[i].Col; c >= 0 {
			v = newView(in.Rec.Column(c))
		}
		a.add(&v, w.rows, w.slotOf, w.ts)
	}
	for _, s := range w.touched {
		if sl := &w.slots[s]; sl.live && sl.heapEnd != sl.end {
			sl.ver++
			sl.heapEnd = sl.end
			heap.Push(&w.ends, endEntry{end: sl.end, slot: s, ver: sl.ver})
		}
	}
	w.touched = w.touched[:0]
	for _, s := range w.dead {
		w.freeSlot(s)
	}
	w.dead = w.dead[:0]
	clear(w.fwd)
	for _, k := range w.newKeys {
		if w.keys[k].refs == 0 {
			w.dropKey(k)
		}
	}
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
func (w *Window) keyIDsFor(rec arrow.RecordBatch, p *part) {
	n := int(rec.NumRows())
	w.keyOf = grow(w.keyOf[:0], n)
	prefix := ""
	if w.cfg.PerPartition {
		prefix = p.name + "\x00"
	}
	w.curPart = p.name
	if len(w.cfg.Keys) == 0 {
		id, ok := w.keyIDs[prefix]
		if !ok {
			id = w.keyID(prefix, rec, 0)
		}
		for i := range w.keyOf {
			w.keyOf[i] = id
		}
		return
	}
	views := make([]view, len(w.cfg.Keys))
	for i, k := range w.cfg.Keys {
		views[i] = newView(rec.Column(k))
	}
	for r := range n {
		b := append(w.buf[:0], prefix...)
		for i := range views {
			b = encodeKey(b, &views[i], int32(r))
		}
		w.buf = b
		id, ok := w.keyIDs[string(b)] // no allocation on a hit
		if !ok {
			id = w.keyID(string(b), rec, r)
		}
		w.keyOf[r] = id
	}
}

func encodeKey(b []byte, v *view, r int32) []byte {
	if v.null(r) {
		return append(b, 'n')
	}
	switch v.k {
	case kString:
		s := v.str.Value(int(r))
		b = append(b, 's')
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...)
	case kFloat:
		return binary.LittleEndian.AppendUint64(append(b, 'f'), math.Float64bits(v.float(r)))
	case kBool:
		if v.b.Value(int(r)) {
			return append(b, 't')
		}
		return append(b, 'F')
	}
	return binary.LittleEndian.AppendUint64(append(b, 'i'), uint64(v.int(r)))
}

func (w *Window) keyID(enc string, rec arrow.RecordBatch, r int) int32 {
	if id, ok := w.keyIDs[enc]; ok {
		return id
	}
	enc = strings.Clone(enc)
	e := keyEntry{enc: enc}
	if w.cfg.PerPartition {
		e.part = w.curPart
	}
	if w.strKey {
		// One string key: its value is the tail of enc; no boxed copy.
		col := rec.Column(w.cfg.Keys[0]).(*array.String)
		if e.null = col.IsNull(r); !e.null {
			e.str = enc[len(enc)-len(col.Value(r)):]
		}
	} else {
		e.vals = make([]any, len(w.cfg.Keys))
		for i, k := range w.cfg.Keys {
			e.vals[i] = arrowx.NewGetter(rec.Column(k))(r)
		}
	}
	var id int32
	if n := len(w.freeKeys); n > 0 {
		id = w.freeKeys[n-1]
		w.freeKeys = w.freeKeys[:n-1]
		w.keys[id] = e
	} else {
		id = int32(len(w.keys))
		w.keys = append(w.keys, e)
	}
	w.keyIDs[enc] = id
	w.newKeys = append(w.newKeys, id)
	w.keyBytes += keyCost(e)
	return id
}

func keyCost(e keyEntry) int64 {
	n := int64(2*len(e.enc) + 64 + 16*len(e.vals))
	if e.vals == nil {
		n += 16 // str shares enc's bytes
	}
	for _, v := range e.vals {
		if s, ok := v.(string); ok {
			n += int64(len(s))
		}
	}
	return n
}

func (w *Window) dropKey(id int32) {
	e := w.keys[id]
	delete(w.keyIDs, e.enc)
	w.keyBytes -= keyCost(e)
	w.keys[id] = keyEntry{}
	w.freeKeys = append(w.freeKeys, id)
}

func (w *Window) newSlot(start, end int64, key, group int32) int32 {
	var s int32
	if n := len(w.free); n > 0 {
		s = w.free[n-1]
		w.free = w.free[:n-1]
	} else {
		s = int32(len(w.slots))
		w.slots = append(w.slots, slot{})
		for _, a := range w.accs {
			a.grow(len(w.slots))
		}
	}
	sl := &w.slots[s]
	sl.start, sl.end, sl.key, sl.group, sl.live = start, end, key, group, true
	sl.ver++
	sl.acks, sl.stamp, sl.heapEnd = sl.acks[:0], 0, 0
	w.keys[key].refs++
	w.live++
	return s
}

func (w *Window) freeSlot(s int32) {
	sl := &w.slots[s]
	for _, a := range w.accs {
		a.reset(s)
	}
	k := sl.key
	sl.live = false
	sl.ver++
	clear(sl.acks)
	sl.acks = sl.acks[:0]
	w.free = append(w.free, s)
	w.live--
	if w.keys[k].refs--; w.keys[k].refs == 0 {
		w.dropKey(k)
	}
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
		w.addTo(start, end, k, g, r, ack)
	case Sliding:
		last := floorDiv(t, w.cfg.Every) * w.cfg.Every
		var missed [][2]int64
		for start := last; start > t-w.cfg.Size; start -= w.cfg.Every {
			end := start + w.cfg.Size
			if end <= wm {
				missed = append(missed, [2]int64{start, end})
				continue
			}
			w.addTo(start, end, k, g, r, ack)
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
func (w *Window) addTo(start, end int64, k, g, r int32, ack *batch.Ack) {
	u := w.last
	if u == nil || u.start != start || u.group != g {
		u = w.units[ukey{g, start}]
		if u == nil {
			u = &unit{group: g, start: start, end: end}
			w.units[ukey{g, start}] = u
		}
		w.last = u
	}
	if u.stamp != w.seq {
		u.stamp = w.seq
		ack.Retain(1)
		u.acks = append(u.acks, ack)
	}
	sk := skey{start, k}
	s, ok := w.bySK[sk]
	if !ok {
		s = w.newSlot(start, end, k, g)
		w.bySK[sk] = s
		u.slots = append(u.slots, s)
	}
	w.rows = append(w.rows, r)
	w.slotOf = append(w.slotOf, s)
}

// addSession adds row r to key k's session around t, merging the sessions
// it bridges.
func (w *Window) addSession(rec arrow.RecordBatch, r int32, t int64, k, g int32, wm int64, ack *batch.Ack, out op.Output) error {
	lo, hi := t, t+w.cfg.Gap
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
		for _, a := range w.accs {
			a.merge(target, s)
			a.reset(s)
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

// emit writes every window that ends at or before wm.
func (w *Window) emit(ctx context.Context, out op.Output) error {
	var done []int32
	var acks []*batch.Ack
	if w.cfg.Kind == Session {
		hi := slices.Max(w.wms)
		var later []endEntry // of partitions whose watermark is behind
		for w.ends.Len() > 0 && w.ends[0].end <= hi {
			e := heap.Pop(&w.ends).(endEntry)
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
			heap.Push(&w.ends, e)
		}
		slices.SortFunc(done, func(a, b int32) int {
			if c := cmp.Compare(w.slots[a].start, w.slots[b].start); c != 0 {
				return c
			}
			return w.keyCmp(w.slots[a].key, w.slots[b].key)
		})
	} else {
		var us []*unit
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
		for _, u := range us {
			slices.SortFunc(u.slots, func(a, b int32) int { return w.keyCmp(w.slots[a].key, w.slots[b].key) })
			done = append(done, u.slots...)
			acks = append(acks, u.acks...)
			delete(w.units, ukey{u.group, u.start})
			if w.last == u {
				w.last = nil
			}
		}
	}
	if len(done) == 0 {
		batch.Merge(acks...).Done(nil)
		return nil
	}
	// The result holds every input of its windows and finishes them when
	// it is stored; it carries none of their source positions, which may
	// also cover rows of windows still open (see docs/windows.md).
	merged := batch.Merge(acks...)
	ack := batch.NewAck(merged.Done)
	chunks := (len(done) + w.res.BatchRows - 1) / w.res.BatchRows
	ack.Retain(chunks - 1)
	for c := range chunks {
		part := done[c*w.res.BatchRows : min(len(done), (c+1)*w.res.BatchRows)]
		rec, err := w.build(part)
		if err != nil {
			for range chunks - c {
				ack.Done(err)
			}
			return err
		}
		if err := out.Emit(ctx, batch.Batch{Rec: rec, Ack: ack}); err != nil {
			for range chunks - c - 1 {
				ack.Done(err)
			}
			return err
		}
	}
	for _, s := range done {
		if w.cfg.Kind == Session {
			w.unlinkSession(s)
		} else {
			delete(w.bySK, skey{w.slots[s].start, w.slots[s].key})
		}
		w.freeSlot(s)
	}
	return nil
}

func (w *Window) unlinkSession(s int32) {
	k := w.slots[s].key
	list := w.sess[k]
	if i := slices.Index(list, s); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(w.sess, k)
	} else {
		w.sess[k] = list
	}
}

func (w *Window) build(slotsOut []int32) (arrow.RecordBatch, error) {
	b := array.NewRecordBuilder(w.res.Alloc, w.cfg.Out)
	defer b.Release()
	nk := len(w.cfg.Keys)
	apps := make([]arrowx.Appender, nk)
	for i := range apps {
		apps[i] = arrowx.NewAppender(b.Field(i))
	}
	var parts *array.StringBuilder
	if w.cfg.PerPartition {
		parts = b.Field(nk).(*array.StringBuilder)
		nk++
	}
	starts := b.Field(nk).(*array.TimestampBuilder)
	ends := b.Field(nk + 1).(*array.TimestampBuilder)
	for _, s := range slotsOut {
		sl := &w.slots[s]
		if w.strKey {
			if k := &w.keys[sl.key]; k.null {
				b.Field(0).AppendNull()
			} else {
				b.Field(0).(*array.StringBuilder).Append(k.str)
			}
		}
		for i, v := range w.keys[sl.key].vals {
			if err := apps[i](v); err != nil {
				return nil, err
			}
		}
		if parts != nil {
			parts.Append(w.keys[sl.key].part)
		}
		starts.Append(arrow.Timestamp(sl.start))
		ends.Append(arrow.Timestamp(sl.end))
		for i, a := range w.accs {
			a.put(b.Field(nk+2+i), s)
		}
	}
	return b.NewRecordBatch(), nil
}

// keyCmp orders keys column by column, nulls first.
func (w *Window) keyCmp(a, b int32) int {
	if c := w.keyValCmp(a, b); c != 0 || !w.cfg.PerPartition {
		return c
	}
	return strings.Compare(w.keys[a].part, w.keys[b].part)
}

func (w *Window) keyValCmp(a, b int32) int {
	if w.strKey {
		x, y := &w.keys[a], &w.keys[b]
		switch {
		case x.null || y.null:
			return cmp.Compare(btoi(!x.null), btoi(!y.null))
		}
		return strings.Compare(x.str, y.str)
	}
	x, y := w.keys[a].vals, w.keys[b].vals
	for i := range x {
		if c := compareAny(x[i], y[i]); c != 0 {
			return c
		}
	}
	return 0
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func compareAny(x, y any) int {
	switch {
	case x == nil && y == nil:
		return 0
	case x == nil:
		return -1
	case y == nil:
		return 1
	}
	switch a := x.(type) {
	case string:
		return cmp.Compare(a, y.(string))
	case int:
		return cmp.Compare(a, y.(int))
	case float64:
		return cmp.Compare(a, y.(float64))
	case time.Time:
		return a.Compare(y.(time.Time))
	case bool:
		if a == y.(bool) {
			return 0
		}
		if !a {
			return -1
		}
		return 1
	}
	return cmp.Compare(fmt.Sprint(x), fmt.Sprint(y))
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
	for k, u := range w.units {
		if u.group != g {
			continue
		}
		for _, a := range u.acks {
			a.Done(err)
		}
		for _, s := range u.slots {
			delete(w.bySK, skey{w.slots[s].start, w.slots[s].key})
			w.freeSlot(s)
		}
		delete(w.units, k)
		if w.last == u {
			w.last = nil
		}
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
	w.units, w.last = map[ukey]*unit{}, nil
	w.bySK, w.sess, w.ends = map[skey]int32{}, map[int32][]int32{}, nil
	w.slots, w.free, w.live = nil, nil, 0
	w.keyIDs, w.keys, w.freeKeys, w.keyBytes = map[string]int32{}, nil, nil, 0
	for i := range w.cfg.Aggs {
		w.accs[i] = newAcc(&w.cfg.Aggs[i])
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

type endHeap []endEntry

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i].end < h[j].end }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(endEntry)) }
func (h *endHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
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
