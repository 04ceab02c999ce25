package win_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/window/internal/win"
	"github.com/flowrun/flowrun/operators/window/session"
	"github.com/flowrun/flowrun/operators/window/sliding"
	"github.com/flowrun/flowrun/operators/window/tumbling"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

var (
	t0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	schema = arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: types.Timestamp, Nullable: true},
		{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "followers", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "title", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
)

// prepare decodes config against p's spec and runs Prepare on schema.
func prepare(t testing.TB, p *op.Plugin, config string) (op.Constructor, source.Errors) {
	t.Helper()
	return prepareOn(t, p, config, schema)
}

func prepareOn(t testing.TB, p *op.Plugin, config string, schema *arrow.Schema) (op.Constructor, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(config), &doc); err != nil {
		t.Fatal(err)
	}
	n := doc.Content[0]
	f := source.NewFile("p.yaml", []byte(config))
	var errs source.Errors
	v := spec.Decode(f, n, p.Spec.Config, &errs)
	c := &validate.Check{
		Pipeline: &ast.Pipeline{File: f},
		Node:     &ast.Node{Name: "w", Section: p.Section, Type: p.Spec.Name, Config: n, TypePos: source.Pos{File: f, Line: 1, Column: 1}},
		Config:   v,
		Inputs:   []validate.Input{{Name: "in", Schema: schema}},
		Errs:     &errs,
	}
	_, ctor := p.Prepare(c)
	errs.Sort()
	return ctor, errs
}

func build(t testing.TB, p *op.Plugin, config string, clock op.Clock) *win.Window {
	t.Helper()
	ctor, errs := prepare(t, p, config)
	if len(errs) > 0 {
		t.Fatalf("config errors:\n%s", errs.Render())
	}
	n, err := ctor(op.Resources{Node: "w", Alloc: memory.NewGoAllocator(), BatchRows: 1024, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return n.(*win.Window)
}

// ev is one input row: seconds after t0, category, followers.
type ev struct {
	sec  float64
	cat  string
	foll int64
}

func record(t testing.TB, evs []ev) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	defer b.Release()
	for _, e := range evs {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(t0.Add(time.Duration(e.sec * float64(time.Second))).UnixMicro()))
		b.Field(1).(*array.StringBuilder).Append(e.cat)
		b.Field(2).(*array.Int64Builder).Append(e.foll)
		b.Field(3).(*array.Float64Builder).Append(float64(e.foll) / 2)
		b.Field(4).(*array.StringBuilder).Append(fmt.Sprintf("t%d", e.foll))
	}
	return b.NewRecordBatch()
}

// out is an op.Output and op.LateOutput that keeps what the window writes.
type out struct {
	mu      sync.Mutex
	rows    [][]any
	batches []int // rows per emitted batch
	acks    []*batch.Ack
	late    []string
	rejects []string
}

func (o *out) Schema() *arrow.Schema { return nil }
func (o *out) Emit(_ context.Context, b batch.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	gs := make([]arrowx.Getter, b.Rec.NumCols())
	for i := range gs {
		gs[i] = arrowx.NewGetter(b.Rec.Column(i))
	}
	for r := range b.Rows() {
		row := make([]any, len(gs))
		for i, g := range gs {
			row[i] = g(r)
			if tm, ok := row[i].(time.Time); ok {
				row[i] = tm.Sub(t0).String()
			}
		}
		o.rows = append(o.rows, row)
	}
	o.batches = append(o.batches, b.Rows())
	b.Rec.Release()
	o.acks = append(o.acks, b.Ack)
	return nil
}
func (o *out) Reject(record, reason string) error {
	o.rejects = append(o.rejects, reason+" "+record)
	return nil
}
func (o *out) Late(record, reason string) error {
	o.late = append(o.late, reason)
	return nil
}

// take returns and clears the rows emitted so far, finishing their acks
// (the sink stored them).
func (o *out) take() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var lines []string
	for _, r := range o.rows {
		lines = append(lines, fmt.Sprint(r))
	}
	for _, a := range o.acks {
		a.Done(nil)
	}
	o.rows, o.acks, o.batches = nil, nil, nil
	return strings.Join(lines, "\n")
}

// tracked is an input ack whose outcome the test reads.
type tracked struct {
	mu   sync.Mutex
	done int
	err  error
}

func (tr *tracked) state() (int, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.done, tr.err
}

func feed(t testing.TB, w *win.Window, o *out, evs ...ev) *tracked {
	t.Helper()
	tr := &tracked{}
	ack := batch.NewAck(func(err error) {
		tr.mu.Lock()
		tr.done++
		tr.err = err
		tr.mu.Unlock()
	})
	if err := w.Process(context.Background(), batch.Batch{Rec: record(t, evs), Ack: ack}, o); err != nil {
		t.Fatal(err)
	}
	return tr
}

func expect(t *testing.T, o *out, want string) {
	t.Helper()
	if got := o.take(); got != strings.TrimSpace(want) {
		t.Errorf("emitted:\n%s\nwant:\n%s", got, strings.TrimSpace(want))
	}
}

const counts = `{size: 1m, key: [category], event_time: ts, allowed_lateness: %s, aggregate: {n: count(), total: sum(followers)}}`

func TestTumblingInOrder(t *testing.T) {
	w := build(t, tumbling.Plugin, fmt.Sprintf(counts, "0s"), op.NewManualClock(t0))
	o := &out{}
	a1 := feed(t, w, o, ev{0, "a", 1}, ev{10, "b", 2}, ev{50, "a", 3})
	expect(t, o, "")
	if n, _ := a1.state(); n != 0 {
		t.Fatal("input acknowledged while its window is open: a restart would lose it")
	}
	a2 := feed(t, w, o, ev{61, "a", 4})
	expect(t, o, `
[a 0s 1m0s 2 4]
[b 0s 1m0s 1 2]`)
	if n, err := a1.state(); n != 1 || err != nil {
		t.Fatalf("first batch ack: %d %v, want done once after the window was stored", n, err)
	}
	if n, _ := a2.state(); n != 0 {
		t.Fatal("second batch acknowledged while its window is open")
	}
	if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
		t.Fatal(err)
	}
	expect(t, o, `[a 1m0s 2m0s 1 4]`)
	if n, err := a2.state(); n != 1 || err != nil {
		t.Fatalf("second batch ack: %d %v", n, err)
	}
	if w.StateRows() != 0 || w.StateBytes() != 0 {
		t.Errorf("state left after the end: %d rows, %d bytes", w.StateRows(), w.StateBytes())
	}
}

func TestTumblingOutOfOrderAndLate(t *testing.T) {
	w := build(t, tumbling.Plugin, fmt.Sprintf(counts, "30s"), op.NewManualClock(t0))
	o := &out{}
	feed(t, w, o, ev{10, "a", 1}, ev{70, "a", 2}, ev{40, "a", 3}) // 40s is out of order, within lateness
	expect(t, o, "")
	feed(t, w, o, ev{89, "a", 4}) // watermark 59s: [0,1m) still open
	expect(t, o, "")
	feed(t, w, o, ev{20, "b", 5}, ev{95, "a", 6}) // 20s counts (before 95s in the batch), then watermark 65s
	expect(t, o, `
[a 0s 1m0s 2 4]
[b 0s 1m0s 1 5]`)
	late := feed(t, w, o, ev{30, "a", 7}, ev{100, "a", 8})
	if len(o.late) != 1 || !strings.Contains(o.late[0], "late: event_time 2026-01-01T00:00:30Z is behind the watermark 2026-01-01T00:01:05Z; tumbling window [2026-01-01T00:00:00Z, 2026-01-01T00:01:00Z) was already emitted") {
		t.Fatalf("late output: %q", o.late)
	}
	if w.LateCount() != 1 {
		t.Errorf("late count %d", w.LateCount())
	}
	if wm, _ := w.Watermark(); wm != t0.Add(70*time.Second) {
		t.Errorf("watermark %s", wm)
	}
	if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
		t.Fatal(err)
	}
	expect(t, o, `[a 1m0s 2m0s 4 20]`)
	if n, err := late.state(); n != 1 || err != nil {
		t.Fatalf("ack of the batch with a late row: %d %v", n, err)
	}
}

func TestSliding(t *testing.T) {
	w := build(t, sliding.Plugin, `{size: 2m, every: 1m, key: [category], event_time: ts, aggregate: {n: count()}}`, op.NewManualClock(t0))
	o := &out{}
	feed(t, w, o, ev{30, "a", 1}, ev{90, "a", 2}, ev{150, "b", 3})
	// watermark 150s closes [-1m,1m) and [0,2m)
	expect(t, o, `
[a -1m0s 1m0s 1]
[a 0s 2m0s 2]`)
	feed(t, w, o, ev{100, "a", 4}) // in [0,2m) (emitted) and [1m,3m) (open)
	if len(o.late) != 1 || !strings.Contains(o.late[0], "sliding window [2026-01-01T00:00:00Z, 2026-01-01T00:02:00Z) was already emitted") {
		t.Fatalf("late: %q", o.late)
	}
	if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
		t.Fatal(err)
	}
	expect(t, o, `
[a 1m0s 3m0s 2]
[b 1m0s 3m0s 1]
[b 2m0s 4m0s 1]`)
}

func TestSession(t *testing.T) {
	w := build(t, session.Plugin, `{gap: 30s, key: [category], event_time: ts, allowed_lateness: 2m, aggregate: {n: count(), first: first(followers), last: last(followers)}}`, op.NewManualClock(t0))
	o := &out{}
	feed(t, w, o, ev{0, "a", 1}, ev{20, "a", 2}, ev{100, "a", 3}, ev{0, "b", 4}, ev{60, "b", 5})
	expect(t, o, "")              // watermark -20s: nothing ended
	feed(t, w, o, ev{30, "b", 6}) // bridges b's [0,30) and [60,90)
	feed(t, w, o, ev{250, "c", 7})
	// watermark 130s: a's [0,50), b's merged [0,90) and a's [100,130) end
	expect(t, o, `
[a 0s 50s 2 1 2]
[b 0s 1m30s 3 4 5]
[a 1m40s 2m10s 1 3 3]`)
	feed(t, w, o, ev{10, "b", 8}) // would open [10s,40s): ended before the watermark
	if len(o.late) != 1 || !strings.Contains(o.late[0], "session window [2026-01-01T00:00:10Z, 2026-01-01T00:00:40Z)") {
		t.Fatalf("late: %q", o.late)
	}
	if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
		t.Fatal(err)
	}
	expect(t, o, `[c 4m10s 4m40s 1 7 7]`)
}

func TestAggregates(t *testing.T) {
	cfg := `{size: 1m, event_time: ts, aggregate: {n: count(), sum: sum(followers), fsum: sum(score), lo: min(title), hi: max(followers),
	  avg: avg(followers), distinct: count_distinct(category), first: first(title), last: last(title), med: median(followers), p90: "quantile(followers, 0.9)", hits: count(title)}}`
	w := build(t, tumbling.Plugin, cfg, op.NewManualClock(t0))
	o := &out{}
	feed(t, w, o, ev{5, "a", 10}, ev{1, "b", 40}, ev{9, "a", 20})
	feed(t, w, o, ev{3, "c", 30}, ev{2, "a", 50})
	if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
		t.Fatal(err)
	}
	// first/last by event time: 1s → t40, 9s → t20; median of 10..50 = 30;
	// p90 = 40 + 0.6·10.
	expect(t, o, `[0s 1m0s 5 150 75 t10 50 30 3 t40 t20 30 46 5]`)
}

func TestIdlePartition(t *testing.T) {
	clock := op.NewManualClock(t0)
	w := build(t, tumbling.Plugin, `{size: 1m, key: [category], event_time: ts, idle_timeout: 30s, aggregate: {n: count()}}`, clock)
	o := &out{}
	offset := map[string]int64{}
	send := func(p string, evs ...ev) {
		part := int32(0)
		if p == "p1" {
			part = 1
		}
		ack := batch.NewAck(nil).WithPositions(batch.Position{Source: "posts", Topic: "pins", Partition: part, First: offset[p], Last: offset[p] + int64(len(evs)) - 1})
		offset[p] += int64(len(evs))
		if err := w.Process(context.Background(), batch.Batch{Rec: record(t, evs), Ack: ack}, o); err != nil {
			t.Fatal(err)
		}
	}
	send("p0", ev{10, "a", 1})
	send("p1", ev{5, "a", 2})
	clock.Advance(20 * time.Second)
	send("p0", ev{70, "a", 3})
	expect(t, o, "") // p1 (at 5s) holds the watermark back
	at, ok := w.NextTimer()
	if !ok || !at.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("next timer %v %v, want when p1 turns idle (30s)", at, ok)
	}
	clock.Advance(10 * time.Second)
	if err := w.OnTimer(context.Background(), clock.Now(), o); err != nil {
		t.Fatal(err)
	}
	expect(t, o, `[a 0s 1m0s 2]`)
	// p1 wakes up with old data: late, reported, not counted.
	send("p1", ev{8, "a", 4})
	if len(o.late) != 1 {
		t.Fatalf("late: %q", o.late)
	}
}

func TestGracefulStopDoesNotFinalise(t *testing.T) {
	w := build(t, tumbling.Plugin, fmt.Sprintf(counts, "0s"), op.NewManualClock(t0))
	o := &out{}
	a := feed(t, w, o, ev{1, "a", 1}, ev{2, "b", 1})
	if err := w.End(context.Background(), op.Stop, o); err != nil {
		t.Fatal(err)
	}
	expect(t, o, "")
	if n, err := a.state(); n != 1 || !errors.Is(err, batch.ErrDropped) {
		t.Fatalf("held ack after stop: %d %v, want finished with ErrDropped (not committed, replayed)", n, err)
	}
	b := feed(t, w, o, ev{3, "a", 1})
	if n, err := b.state(); n != 1 || !errors.Is(err, batch.ErrDropped) {
		t.Fatalf("ack of a batch arriving after the stop: %d %v", n, err)
	}
	if w.StateRows() != 0 {
		t.Fatal("state kept after stop")
	}
}

func TestStateBound(t *testing.T) {
	w := build(t, tumbling.Plugin, `{size: 1m, key: [category], event_time: ts, max_state_rows: 2, aggregate: {n: count()}}`, op.NewManualClock(t0))
	o := &out{}
	a := feed(t, w, o, ev{1, "a", 1}, ev{2, "b", 1})
	tr := &tracked{}
	ack := batch.NewAck(func(err error) { tr.err = err; tr.done++ })
	err := w.Process(context.Background(), batch.Batch{Rec: record(t, []ev{{3, "c", 1}}), Ack: ack}, o)
	if err == nil || !strings.Contains(err.Error(), "window state bound reached: 3 open (window, key) groups, over max_state_rows 2") {
		t.Fatalf("error %v", err)
	}
	for _, x := range []*tracked{a, tr} {
		if n, err := x.state(); n != 1 || err == nil {
			t.Errorf("held ack after the bound: %d %v, want failed", n, err)
		}
	}
	w2 := build(t, tumbling.Plugin, `{size: 1m, key: [title], event_time: ts, max_state_bytes: 2KiB, aggregate: {n: count_distinct(followers)}}`, op.NewManualClock(t0))
	var evs []ev
	for i := range 100 {
		evs = append(evs, ev{1, "a", int64(i)})
	}
	ack2 := batch.NewAck(nil)
	err = w2.Process(context.Background(), batch.Batch{Rec: record(t, evs), Ack: ack2}, o)
	if err == nil || !strings.Contains(err.Error(), "over max_state_bytes 2048") {
		t.Fatalf("byte bound: %v", err)
	}
}

func TestProcessingTime(t *testing.T) {
	clock := op.NewManualClock(t0.Add(5 * time.Second))
	w := build(t, tumbling.Plugin, `{size: 1m, processing_time: true, aggregate: {n: count()}}`, clock)
	o := &out{}
	feed(t, w, o, ev{9999, "a", 1}, ev{-9999, "b", 1}) // event times ignored
	at, ok := w.NextTimer()
	if !ok || !at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("timer %v %v", at, ok)
	}
	clock.Advance(55 * time.Second)
	if err := w.OnTimer(context.Background(), clock.Now(), o); err != nil {
		t.Fatal(err)
	}
	expect(t, o, `[0s 1m0s 2]`)
}

func TestNullEventTimeRejected(t *testing.T) {
	w := build(t, tumbling.Plugin, fmt.Sprintf(counts, "0s"), op.NewManualClock(t0))
	o := &out{}
	b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	b.Field(0).AppendNull()
	b.Field(1).(*array.StringBuilder).Append("a")
	b.Field(2).AppendNull()
	b.Field(3).AppendNull()
	b.Field(4).AppendNull()
	rec := b.NewRecordBatch()
	b.Release()
	if err := w.Process(context.Background(), batch.Batch{Rec: rec, Ack: batch.NewAck(nil)}, o); err != nil {
		t.Fatal(err)
	}
	if len(o.rejects) != 1 || !strings.HasPrefix(o.rejects[0], "window: event_time is null") {
		t.Fatalf("rejects %q", o.rejects)
	}
}

func TestPrepareErrors(t *testing.T) {
	for _, c := range []struct {
		p    *op.Plugin
		cfg  string
		want string
	}{
		{tumbling.Plugin, `{size: 1m, event_time: ts, aggregate: {s: sum(title)}}`, "aggregate 's': sum needs a numeric column; 'title' is string"},
		{tumbling.Plugin, `{size: 1m, event_time: title, aggregate: {n: count()}}`, "event_time: column 'title' is string; it must be a timestamp"},
		{tumbling.Plugin, `{size: 1m, event_time: followers + 1, aggregate: {n: count()}}`, "event_time must be of type timestamp, got int64"},
		{tumbling.Plugin, `{size: 1m, aggregate: {n: count()}}`, "needs 'event_time:'"},
		{tumbling.Plugin, `{size: 1m, event_time: ts, aggregate: {n: cnt()}}`, "unknown function cnt()"},
		{tumbling.Plugin, `{size: 1m, event_time: ts, aggregate: {q: "quantile(followers, 2)"}}`, "quantile needs a column and a fraction between 0 and 1"},
		{tumbling.Plugin, `{size: 1m, event_time: ts, key: [category], aggregate: {category: count()}}`, "the output already has a column 'category'"},
		{sliding.Plugin, `{size: 10m, every: 3m, event_time: ts, aggregate: {n: count()}}`, "'every' (3m0s) must divide 'size' (10m0s)"},
		{session.Plugin, `{gap: 0s, event_time: ts, aggregate: {n: count()}}`, "'gap' must be at least 1ms"},
		{tumbling.Plugin, `{size: 1m, processing_time: true, event_time: ts, aggregate: {n: count()}}`, "choose event_time or processing_time"},
	} {
		_, errs := prepare(t, c.p, c.cfg)
		if !strings.Contains(errs.Error(), c.want) {
			t.Errorf("%s: errors %q, want %q", c.cfg, errs.Error(), c.want)
		}
	}
}

// TestDifferential runs random event streams through the windows and
// through a straightforward reference, record by record: the same rows,
// the same late records, whatever the batch boundaries.
func TestDifferential(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		kind := []string{"tumbling", "sliding", "session"}[seed%3]
		size, every, gap, late := int64(60), int64(20), int64(25), int64(rng.IntN(40))
		var evs []ev
		now := 0.0
		keys := 4
		if seed%4 == 3 {
			keys = 150 // most groups hold a row or two
		}
		for range 300 + rng.IntN(300) {
			now += rng.Float64() * 3
			sec := float64(int64(now - rng.Float64()*rng.Float64()*90)) // out of order, some late
			evs = append(evs, ev{sec, fmt.Sprint("k", rng.IntN(keys)), int64(rng.IntN(100))})
		}
		var p *op.Plugin
		var cfg string
		switch kind {
		case "tumbling":
			p, cfg = tumbling.Plugin, fmt.Sprintf("{size: %ds", size)
		case "sliding":
			p, cfg = sliding.Plugin, fmt.Sprintf("{size: %ds, every: %ds", size, every)
		case "session":
			p, cfg = session.Plugin, fmt.Sprintf("{gap: %ds", gap)
		}
		cfg += fmt.Sprintf(", key: [category], event_time: ts, allowed_lateness: %ds, aggregate: {n: count(), s: sum(followers), hi: max(followers), lo: min(followers), fs: sum(score), av: avg(score), fhi: max(score)}}", late)
		w := build(t, p, cfg, op.NewManualClock(t0))
		if seed%5 == 4 {
			win.SetKeyHash(w, func(maphash.Seed, []byte) uint64 { return 42 }) // every key collides
		}
		o := &out{}
		for i := 0; i < len(evs); {
			j := min(len(evs), i+1+rng.IntN(40))
			feed(t, w, o, evs[i:j]...)
			i = j
		}
		if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range o.rows {
			got = append(got, fmt.Sprint(r))
		}
		// Each batch is sorted by window start, then key.
		at := 0
		for _, n := range o.batches {
			rows := o.rows[at : at+n]
			at += n
			if !slices.IsSortedFunc(rows, func(a, b []any) int {
				sa, _ := time.ParseDuration(a[1].(string))
				sb, _ := time.ParseDuration(b[1].(string))
				return cmp.Or(cmp.Compare(sa, sb), cmp.Compare(a[0].(string), b[0].(string)))
			}) {
				t.Fatalf("seed %d (%s): batch not sorted by window start and key: %v", seed, kind, rows)
			}
		}
		o.take()
		want, wantLate := reference(kind, evs, size, every, gap, late)
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d (%s): rows differ\n got %d: %v\nwant %d: %v", seed, kind, len(got), got, len(want), want)
		}
		if int(w.LateCount()) != wantLate {
			t.Fatalf("seed %d (%s): %d late, want %d", seed, kind, w.LateCount(), wantLate)
		}
	}
}

// reference computes window results record by record with a running
// watermark, the way the semantics are written in docs/windows.md.
func reference(kind string, evs []ev, size, every, gap, lateness int64) ([]string, int) {
	type agg struct{ n, s, hi, lo int64 }
	type key struct {
		cat        string
		start, end int64
	}
	fold := func(a *agg, e ev) {
		a.n++
		a.s += e.foll
		if a.n == 1 || e.foll > a.hi {
			a.hi = e.foll
		}
		if a.n == 1 || e.foll < a.lo {
			a.lo = e.foll
		}
	}
	done := map[key]agg{}
	open := map[key]*agg{}
	var sessions = map[string][]key{}
	maxT, wm := int64(-1<<62), int64(-1<<62)
	lateN := 0
	closeUpTo := func(w int64) {
		for k, a := range open {
			if k.end <= w {
				done[k] = *a
				delete(open, k)
				if kind == "session" {
					sessions[k.cat] = slices.DeleteFunc(sessions[k.cat], func(x key) bool { return x == k })
				}
			}
		}
	}
	floor := func(a, b int64) int64 {
		q := a / b
		if a%b != 0 && a < 0 {
			q--
		}
		return q * b
	}
	for _, e := range evs {
		t := int64(e.sec)
		maxT = max(maxT, t)
		wm = max(wm, maxT-lateness)
		switch kind {
		case "tumbling", "sliding":
			step := size
			if kind == "sliding" {
				step = every
			}
			missed := false
			for st := floor(t, step); st > t-size; st -= step {
				k := key{e.cat, st, st + size}
				if k.end <= wm {
					missed = true
					continue
				}
				if open[k] == nil {
					open[k] = &agg{}
				}
				fold(open[k], e)
			}
			if missed {
				lateN++
			}
		case "session":
			lo, hi := t, t+gap
			var hit []key
			for _, k := range sessions[e.cat] {
				if k.start <= hi && k.end >= lo {
					hit = append(hit, k)
				}
			}
			if len(hit) == 0 && hi <= wm {
				lateN++
				break
			}
			nk := key{e.cat, lo, hi}
			na := &agg{}
			for _, k := range hit {
				nk.start, nk.end = min(nk.start, k.start), max(nk.end, k.end)
				a := open[k]
				if na.n == 0 || a.hi > na.hi {
					na.hi = a.hi
				}
				if na.n == 0 || a.lo < na.lo {
					na.lo = a.lo
				}
				na.n += a.n
				na.s += a.s
				delete(open, k)
				sessions[e.cat] = slices.DeleteFunc(sessions[e.cat], func(x key) bool { return x == k })
			}
			fold(na, e)
			open[nk] = na
			sessions[e.cat] = append(sessions[e.cat], nk)
		}
		closeUpTo(wm)
	}
	closeUpTo(1 << 62)
	var out []string
	for k, a := range done {
		d := func(s int64) string { return (time.Duration(s) * time.Second).String() }
		// score is followers/2: sums of halves are exact in any order.
		out = append(out, fmt.Sprint([]any{k.cat, d(k.start), d(k.end), a.n, a.s, a.hi, a.lo, float64(a.s) / 2, float64(a.s) / 2 / float64(a.n), float64(a.hi) / 2}))
	}
	sort.Strings(out)
	return out, lateN
}

// TestPerPartitionSameResultsWhoeverReadsWhat: with per_partition, the rows
// do not depend on how partitions are spread over processes, nor on how the
// partitions interleave or where batches start: one window reading three
// partitions, three windows reading one each, and two windows splitting
// them all write the same rows.
func TestPerPartitionSameResultsWhoeverReadsWhat(t *testing.T) {
	for seed := range uint64(10) {
		rng := rand.New(rand.NewPCG(seed, 11))
		const nparts = 3
		keys := 3
		if seed%2 == 1 {
			keys = 80 // keys come and go: dead keys revived, swept, per partition
		}
		evs := make([][]ev, nparts)
		for p := range evs {
			now := 0.0
			for range 200 + rng.IntN(200) {
				now += rng.Float64() * 2
				evs[p] = append(evs[p], ev{float64(int64(now - rng.Float64()*rng.Float64()*60)), fmt.Sprint("k", rng.IntN(keys)), int64(rng.IntN(100))})
			}
		}
		kind := []*op.Plugin{tumbling.Plugin, sliding.Plugin, session.Plugin}[seed%3]
		cfg := map[*op.Plugin]string{tumbling.Plugin: "{size: 30s", sliding.Plugin: "{size: 30s, every: 10s", session.Plugin: "{gap: 15s"}[kind] +
			", key: [category], event_time: ts, per_partition: true, allowed_lateness: 5s, aggregate: {n: count(), s: sum(followers)}}"
		// run feeds the given partitions, interleaved at random in batches
		// of random sizes, into one window; it returns the sorted rows.
		run := func(parts []int) ([]string, int64) {
			w := build(t, kind, cfg, op.NewManualClock(t0))
			o := &out{}
			next := make([]int, nparts)
			offset := make([]int64, nparts)
			for {
				var live []int
				for _, p := range parts {
					if next[p] < len(evs[p]) {
						live = append(live, p)
					}
				}
				if len(live) == 0 {
					break
				}
				p := live[rng.IntN(len(live))]
				j := min(len(evs[p]), next[p]+1+rng.IntN(30))
				chunk := evs[p][next[p]:j]
				ack := batch.NewAck(nil).WithPositions(batch.Position{Source: "posts", Topic: "pins", Partition: int32(p), First: offset[p], Last: offset[p] + int64(len(chunk)) - 1})
				if err := w.Process(context.Background(), batch.Batch{Rec: record(t, chunk), Ack: ack}, o); err != nil {
					t.Fatal(err)
				}
				next[p], offset[p] = j, offset[p]+int64(len(chunk))
			}
			if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
				t.Fatal(err)
			}
			var rows []string
			for _, r := range o.rows {
				rows = append(rows, fmt.Sprint(r))
			}
			o.take()
			return rows, w.LateCount()
		}
		var spreads [][][]int = [][][]int{{{0, 1, 2}}, {{0}, {1}, {2}}, {{2, 0}, {1}}}
		var want []string
		var wantLate int64
		for i, spread := range spreads {
			var rows []string
			var late int64
			for _, parts := range spread {
				r, l := run(parts)
				rows, late = append(rows, r...), late+l
			}
			sort.Strings(rows)
			if i == 0 {
				want, wantLate = rows, late
				if len(want) == 0 || !strings.Contains(want[0], "posts/pins/") {
					t.Fatalf("rows %v", want)
				}
				continue
			}
			if !slices.Equal(rows, want) || late != wantLate {
				t.Fatalf("seed %d: partitions spread as %v give %d rows (%d late), one reader %d rows (%d late)", seed, spread, len(rows), late, len(want), wantLate)
			}
		}
	}
}

// TestPerPartitionReplayAfterRebalance: a partition read again from an
// earlier offset (a rebalance took it away and gave it back; the source
// replays from its committed offset) is rebuilt, not counted twice: the
// first row written for each window, which the sink keeps (on_conflict:
// ignore), is what a single pass gives, and the acks of the dropped state
// finish as dropped, not done.
func TestPerPartitionReplayAfterRebalance(t *testing.T) {
	cfg := `{size: 1m, key: [category], event_time: ts, per_partition: true, aggregate: {n: count(), s: sum(followers)}}`
	var evs []ev
	for i := range 40 {
		evs = append(evs, ev{float64(i * 5), string(rune('a' + i%2)), int64(i)})
	}
	feedRange := func(w *win.Window, o *out, from, to int) []*tracked {
		var trs []*tracked
		for i := from; i < to; i += 5 {
			tr := &tracked{}
			ack := batch.NewAck(func(err error) { tr.mu.Lock(); tr.done++; tr.err = err; tr.mu.Unlock() }).
				WithPositions(batch.Position{Source: "posts", Topic: "pins", Partition: 0, First: int64(i), Last: int64(i + 4)})
			if err := w.Process(context.Background(), batch.Batch{Rec: record(t, evs[i:i+5]), Ack: ack}, o); err != nil {
				t.Fatal(err)
			}
			trs = append(trs, tr)
		}
		return trs
	}
	firsts := func(o *out) []string {
		seen := map[string]bool{}
		var rows []string
		for _, r := range o.rows {
			k := fmt.Sprint(r[:3])
			if !seen[k] {
				seen[k] = true
				rows = append(rows, fmt.Sprint(r))
			}
		}
		o.take()
		return rows
	}
	one := build(t, tumbling.Plugin, cfg, op.NewManualClock(t0))
	o1 := &out{}
	feedRange(one, o1, 0, 40)
	if err := one.End(context.Background(), op.EndOfInput, o1); err != nil {
		t.Fatal(err)
	}
	want := firsts(o1)

	two := build(t, tumbling.Plugin, cfg, op.NewManualClock(t0))
	o2 := &out{}
	first := feedRange(two, o2, 0, 30) // up to 145s: [0,1m) and [1m,2m) written, [2m,3m) open
	feedRange(two, o2, 20, 40)         // the partition comes back from offset 20 (100s)
	if err := two.End(context.Background(), op.EndOfInput, o2); err != nil {
		t.Fatal(err)
	}
	if got := firsts(o2); !slices.Equal(got, want) {
		t.Fatalf("after the replay, first rows per window:\n%v\nwant (one pass):\n%v", got, want)
	}
	if n, err := first[5].state(); n != 1 || !errors.Is(err, batch.ErrDropped) {
		t.Fatalf("ack of a batch held in the dropped open window: %d %v, want dropped", n, err)
	}
}

// TestPiecesOfOneInputAreNotAReplay: a transform may emit one input as
// several batches under the same ack (same positions); that is not a
// partition read again, and nothing is dropped.
func TestPiecesOfOneInputAreNotAReplay(t *testing.T) {
	w := build(t, tumbling.Plugin, `{size: 1m, key: [category], event_time: ts, per_partition: true, aggregate: {n: count()}}`, op.NewManualClock(t0))
	o := &out{}
	ack := batch.NewAck(nil).WithPositions(batch.Position{Source: "posts", Topic: "pins", Partition: 0, First: 0, Last: 9})
	ack.Retain(1)
	for _, evs := range [][]ev{{{1, "a", 1}, {2, "a", 1}}, {{3, "a", 1}}} {
		if err := w.Process(context.Background(), batch.Batch{Rec: record(t, evs), Ack: ack}, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
		t.Fatal(err)
	}
	expect(t, o, `[a posts/pins/0 0s 1m0s 3]`)
}

// TestRevokedPartition: op.Revoked drops a partition's open windows in
// per_partition mode (their acks finish as dropped, for its next owner to
// read again) while the other partition's stay; without per_partition the
// revoked partition just stops holding the watermark back.
func TestRevokedPartition(t *testing.T) {
	send := func(w *win.Window, o *out, part int32, evs ...ev) *tracked {
		tr := &tracked{}
		ack := batch.NewAck(func(err error) { tr.mu.Lock(); tr.done++; tr.err = err; tr.mu.Unlock() }).
			WithPositions(batch.Position{Source: "posts", Topic: "pins", Partition: part, First: 0, Last: int64(len(evs) - 1)})
		if err := w.Process(context.Background(), batch.Batch{Rec: record(t, evs), Ack: ack}, o); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	revoke := func(w *win.Window, o *out, part int32) {
		c := op.Control{Kind: op.Revoked, Partition: batch.Position{Source: "posts", Topic: "pins", Partition: part}}
		if err := w.OnControl(context.Background(), c, o); err != nil {
			t.Fatal(err)
		}
	}
	w := build(t, tumbling.Plugin, `{size: 1m, key: [category], event_time: ts, per_partition: true, aggregate: {n: count()}}`, op.NewManualClock(t0))
	o := &out{}
	a0 := send(w, o, 0, ev{1, "a", 1})
	a1 := send(w, o, 1, ev{2, "a", 1})
	revoke(w, o, 0)
	if n, err := a0.state(); n != 1 || !errors.Is(err, batch.ErrDropped) {
		t.Fatalf("revoked partition's held ack: %d %v", n, err)
	}
	if n, _ := a1.state(); n != 0 {
		t.Fatal("the other partition's ack was finished")
	}
	if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
		t.Fatal(err)
	}
	expect(t, o, `[a posts/pins/1 0s 1m0s 1]`)

	g := build(t, tumbling.Plugin, `{size: 1m, key: [category], event_time: ts, aggregate: {n: count()}}`, op.NewManualClock(t0))
	send(g, o, 0, ev{5, "a", 1})
	send(g, o, 1, ev{70, "a", 1}) // partition 0 (at 5s) holds the watermark at 5s
	expect(t, o, "")
	revoke(g, o, 0)
	expect(t, o, `[a 0s 1m0s 1]`) // the watermark is now partition 1's: 70s
}

// TestUnionOfUnpositionedInputs: batches without source positions (files)
// from two inputs of a union keep one watermark per input, so the slower
// input's rows are not late because the other ran ahead.
func TestUnionOfUnpositionedInputs(t *testing.T) {
	w := build(t, tumbling.Plugin, fmt.Sprintf(counts, "0s"), op.NewManualClock(t0))
	o := &out{}
	w.Inputs([]string{"file_a", "file_b"})
	w.Input("file_a")
	feed(t, w, o, ev{70, "a", 1})
	w.Input("file_b")
	feed(t, w, o, ev{10, "a", 2}) // behind file_a, not behind file_b
	if len(o.late) != 0 {
		t.Fatalf("late: %q", o.late)
	}
	w.Input("file_b")
	feed(t, w, o, ev{75, "a", 3})
	expect(t, o, `[a 0s 1m0s 1 2]`)
}

// TestKeysOfEveryKind: a key of several columns of every kind, with nulls,
// NaN, signed zeros and strings holding zero bytes, gives one row per
// distinct key, in key order (nulls first, NaN before numbers), with the
// key values as they came in; also when every key's hash collides.
func TestKeysOfEveryKind(t *testing.T) {
	ks := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: types.Timestamp, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "at", Type: types.Timestamp, Nullable: true},
	}, nil)
	strs := []any{nil, "", "a", "a\x00", "a\x00b", "ab", "b"}
	ints := []any{nil, int64(math.MinInt64), int64(-3), int64(0), int64(7)}
	i32s := []any{nil, int64(math.MinInt32), int64(-3), int64(0), int64(math.MaxInt32)}
	ats := []any{nil, int64(-86400e6), int64(-3), int64(0), int64(7)} // µs after t0
	floats := []any{nil, math.NaN(), math.Inf(-1), -2.5, math.Copysign(0, -1), 0.0, 1.5}
	bools := []any{nil, false, true}
	for _, collide := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(5, 6))
		type row = [6]any
		var rows []row
		for range 3000 {
			rows = append(rows, row{strs[rng.IntN(len(strs))], ints[rng.IntN(len(ints))], i32s[rng.IntN(len(i32s))],
				floats[rng.IntN(len(floats))], bools[rng.IntN(len(bools))], ats[rng.IntN(len(ats))]})
		}
		w := func() *win.Window {
			ctor, errs := prepareOn(t, tumbling.Plugin, `{size: 1h, key: [s, i, i32, f, b, at], event_time: ts, aggregate: {n: count()}}`, ks)
			if len(errs) > 0 {
				t.Fatal(errs.Render())
			}
			n, err := ctor(op.Resources{Node: "w", Alloc: memory.NewGoAllocator(), BatchRows: 100, Clock: op.NewManualClock(t0)})
			if err != nil {
				t.Fatal(err)
			}
			return n.(*win.Window)
		}()
		if collide {
			win.SetKeyHash(w, func(maphash.Seed, []byte) uint64 { return 1 })
		}
		o := &out{}
		for i := 0; i < len(rows); i += 500 {
			b := array.NewRecordBuilder(memory.NewGoAllocator(), ks)
			for _, r := range rows[i : i+500] {
				b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(t0.UnixMicro()))
				for c, v := range r {
					fb := b.Field(c + 1)
					if v == nil {
						fb.AppendNull()
						continue
					}
					switch x := fb.(type) {
					case *array.StringBuilder:
						x.Append(v.(string))
					case *array.Int64Builder:
						x.Append(v.(int64))
					case *array.Int32Builder:
						x.Append(int32(v.(int64)))
					case *array.Float64Builder:
						x.Append(v.(float64))
					case *array.BooleanBuilder:
						x.Append(v.(bool))
					case *array.TimestampBuilder:
						x.Append(arrow.Timestamp(t0.UnixMicro() + v.(int64)))
					}
				}
			}
			rec := b.NewRecordBatch()
			b.Release()
			if err := w.Process(context.Background(), batch.Batch{Rec: rec, Ack: batch.NewAck(nil)}, o); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
			t.Fatal(err)
		}
		// The reference: count per distinct key (floats by bits), sorted.
		counts := map[string]int{}
		first := map[string]row{}
		id := func(r row) string {
			f := "null"
			if r[3] != nil {
				f = fmt.Sprint(math.Float64bits(r[3].(float64)))
			}
			return fmt.Sprintf("%q %v %v %s %v %v", r[0], r[1], r[2], f, r[4], r[5])
		}
		for _, r := range rows {
			counts[id(r)]++
			if _, ok := first[id(r)]; !ok {
				first[id(r)] = r
			}
		}
		var keys []row
		for _, r := range first {
			keys = append(keys, r)
		}
		nilFirst := func(x, y any, c func() int) int {
			switch {
			case x == nil && y == nil:
				return 0
			case x == nil:
				return -1
			case y == nil:
				return 1
			}
			return c()
		}
		slices.SortFunc(keys, func(a, b row) int {
			return cmp.Or(
				nilFirst(a[0], b[0], func() int { return cmp.Compare(a[0].(string), b[0].(string)) }),
				nilFirst(a[1], b[1], func() int { return cmp.Compare(a[1].(int64), b[1].(int64)) }),
				nilFirst(a[2], b[2], func() int { return cmp.Compare(a[2].(int64), b[2].(int64)) }),
				nilFirst(a[3], b[3], func() int {
					x, y := a[3].(float64), b[3].(float64)
					return cmp.Or(cmp.Compare(x, y), cmp.Compare(btoi(!math.Signbit(x)), btoi(!math.Signbit(y))))
				}),
				nilFirst(a[4], b[4], func() int { return cmp.Compare(btoi(a[4].(bool)), btoi(b[4].(bool))) }),
				nilFirst(a[5], b[5], func() int { return cmp.Compare(a[5].(int64), b[5].(int64)) }))
		})
		var want []string
		for _, k := range keys {
			r := []any{k[0], nil, nil, k[3], k[4], nil, "0s", "1h0m0s", counts[id(k)]}
			for _, c := range []int{1, 2} {
				if k[c] != nil {
					r[c] = int(k[c].(int64))
				}
			}
			if k[5] != nil {
				r[5] = (time.Duration(k[5].(int64)) * time.Microsecond).String()
			}
			want = append(want, fmt.Sprint(r))
		}
		var got []string
		for _, r := range o.rows {
			got = append(got, fmt.Sprint(r))
		}
		o.take()
		if !slices.Equal(got, want) {
			t.Fatalf("collide %v: got %d rows, want %d\n got %q\nwant %q", collide, len(got), len(want), got, want)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestNullsAndReusedSlots: numbers over only nulls are null (count(x) 0),
// and a slot reused by a later window starts from nothing: no count, sum,
// min or max of the window before leaks into it.
func TestNullsAndReusedSlots(t *testing.T) {
	w := build(t, tumbling.Plugin, `{size: 10s, key: [category], event_time: ts, aggregate: {n: count(), nf: count(followers), s: sum(followers), lo: min(followers), hi: max(score), fs: sum(score), av: avg(score)}}`, op.NewManualClock(t0))
	o := &out{}
	type row struct {
		sec  int
		cat  string
		foll any // nil: null followers and score
	}
	send := func(rows ...row) {
		b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
		defer b.Release()
		for _, r := range rows {
			b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(t0.Add(time.Duration(r.sec) * time.Second).UnixMicro()))
			b.Field(1).(*array.StringBuilder).Append(r.cat)
			if r.foll == nil {
				b.Field(2).AppendNull()
				b.Field(3).AppendNull()
			} else {
				b.Field(2).(*array.Int64Builder).Append(int64(r.foll.(int)))
				b.Field(3).(*array.Float64Builder).Append(float64(r.foll.(int)) / 2)
			}
			b.Field(4).AppendNull()
		}
		if err := w.Process(context.Background(), batch.Batch{Rec: b.NewRecordBatch(), Ack: batch.NewAck(nil)}, o); err != nil {
			t.Fatal(err)
		}
	}
	send(row{1, "a", nil}, row{2, "b", 7}, row{3, "a", nil}, row{4, "b", -3})
	send(row{11, "b", nil}, row{12, "c", 5}) // window 0 closes; its slots are reused
	expect(t, o, `
[a 0s 10s 2 0 <nil> <nil> <nil> <nil> <nil>]
[b 0s 10s 2 2 4 -3 3.5 2 1]`)
	send(row{21, "a", 1})
	expect(t, o, `
[b 10s 20s 1 0 <nil> <nil> <nil> <nil> <nil>]
[c 10s 20s 1 1 5 5 2.5 2.5 2.5]`)
	if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
		t.Fatal(err)
	}
	expect(t, o, `[a 20s 30s 1 1 1 1 0.5 0.5 0.5]`)
}

// TestUnitSeqWrap: when the window numbers wrap around, keys' cached
// groups are forgotten: results are those of a window that never wrapped.
// Key a goes to the first windows (numbered 1–3) at the start and comes
// back after the wrap, when those numbers name other windows.
func TestUnitSeqWrap(t *testing.T) {
	for _, c := range []struct {
		p        *op.Plugin
		cfg      string
		at, want string
	}{
		{sliding.Plugin, `{size: 30s, every: 10s`, "95", "[a 1m10s 1m40s 1 4]"},
		{tumbling.Plugin, `{size: 10s`, "75", "[a 1m10s 1m20s 1 4]"},
	} {
		at, _ := strconv.Atoi(c.at)
		run := func(jump bool) string {
			w := build(t, c.p, c.cfg+`, key: [category], event_time: ts, allowed_lateness: 5s, aggregate: {n: count(), s: sum(followers)}}`, op.NewManualClock(t0))
			o := &out{}
			feed(t, w, o, ev{0, "b", 1}, ev{1, "a", 2})
			for sec := 2; sec < 120; sec++ {
				if jump && sec == 60 {
					// The next windows are numbered 2^32-1, then 1, 2, 3 again.
					win.SetUnitSeq(w, math.MaxUint32-1)
				}
				feed(t, w, o, ev{float64(sec), "b", 1})
				if sec == at {
					feed(t, w, o, ev{float64(at), "a", 4})
				}
			}
			if err := w.End(context.Background(), op.EndOfInput, o); err != nil {
				t.Fatal(err)
			}
			return o.take()
		}
		want := run(false)
		if got := run(true); got != want || !strings.Contains(want, c.want) {
			t.Fatalf("%s after the wrap:\n%s\nwant:\n%s", c.p.Spec.Name, got, want)
		}
	}
}
