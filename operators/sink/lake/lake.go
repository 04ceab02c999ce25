// Package lake is the "lake" sink: it writes its input as Parquet files
// (arrow-go's pqarrow) into a Hive-style partitioned lake on a local folder
// or an S3-compatible store (operators/lakeio), one open file per partition
// and source partition, rolled by rows, size and age. A file is written
// under a temporary name and committed whole (renamed, or copied into place
// on S3); the batches it holds are acknowledged when it is committed, so a
// Kafka source commits its offsets while the pipeline runs.
//
// Replay safety: a file holding rows of one source partition is named after
// the offsets it covers (topic-pN-first-last.parquet) and lists, in its
// footer, the offset range of every batch in it; a file of batches with
// several positions (merged-RUN-SEQ.parquet) lists every batch's positions.
// Before a file is committed its name and positions go into a commit record
// under _flowrun/<node>/. When a source partition is (re)read from offset C
// — after a crash, a restart or a rebalance — the sink first removes the
// rows of every committed batch holding an offset ≥ C of it (deleting or
// rewriting the files), so the replay stores every row exactly once. Rows
// without positions (part-RUN-SEQ.parquet) are stored at least once.
package lake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/codec/jsonenc"
	"github.com/flowrun/flowrun/operators/lakeio"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sinks,
	Spec: spec.Spec{
		Name:    "lake",
		Summary: "Write rows as Parquet files into a Hive-partitioned lake on a folder or S3.",
		Doc: `Writes every input row into a Parquet file under path (a folder, or
s3://bucket/prefix), in folders named by partition_by: each entry is a
folder level name: expression, e.g. dt: ingested_at.Format("2006-01-02")
gives dt=2026-11-25/ (null gives __HIVE_DEFAULT_PARTITION__). One file is
open per partition folder and source partition; it is committed when it
reaches file_rows rows or file_size bytes, when it is file_age old, when
more than max_open_files are open (the oldest first), and at the end.

A file is written under a temporary name and committed whole (a rename, or
on S3 an upload copied into place): a reader never sees a partial file. A
batch is acknowledged when every file holding its rows is committed, so a
Kafka source commits its offsets as the lake grows.

Files holding rows of one Kafka partition are named
topic-pN-FIRST-LAST.parquet after the offsets they cover; rows of batches
that carry several positions (an aggregate's result over several
partitions or sources) go to merged-RUN-SEQ.parquet files whose commit
record and footer list every batch's positions. When a partition is read
again from an offset (after a crash or a restart) the files holding rows
of that replay are removed or cut back first, so every message is stored
exactly once (see docs/lake.md for the conditions).

Rows that carry no source positions (window results, file, generate and
http sources) go to part-RUN-SEQ.parquet and are stored at least once: a
run that reads the same input again, or a replay after a crash, adds them
again.`,
		Example: `sinks:
  lake:
    from: posts
    lake:
      path: "${LAKE}"
      partition_by:
        dt: 'ingested_at.Format("2006-01-02")'
        hour: 'ingested_at.Format("15")'`,
		Config: spec.Obj(
			spec.F("path", spec.String, "The lake's root: a folder or s3://bucket/prefix.").Req().Ex("out/lake"),
			spec.F("partition_by", spec.ExprMap, "Partition folder levels: name → expression over the row."),
			spec.F("compression", spec.Enum, "Page compression.").OneOf("zstd", "snappy", "gzip", "none").Def("zstd"),
			spec.F("row_group_rows", spec.Int, "Rows per Parquet row group.").Def(int64(128*1024)),
			spec.F("file_rows", spec.Int, "Commit a file when it holds this many rows.").Def(int64(1_000_000)),
			spec.F("file_size", spec.Size, "Commit a file when this many bytes are written (compressed row groups: a file may pass it by up to one row group).").Def(int64(128<<20)),
			spec.F("file_age", spec.Duration, "Commit a file this long after it was opened.").Def(time.Minute),
			spec.F("max_open_files", spec.Int, "Most files open at once; opening one more commits the oldest.").Def(int64(16)),
			spec.F("max_held_bytes", spec.Size, "Most bytes (of the Arrow batches) held unacknowledged in open files; beyond it the oldest file is committed. Keep it below the source's in-flight limit (kafka: max_in_flight_bytes, 256MiB).").Def(int64(64<<20)),
			lakeio.S3Field(),
		),
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

// PartExpr is one partition folder level.
type PartExpr struct {
	Name string
	Prog *exprc.Program
	// Time formatting fast path: the expression is col.Format("layout")
	// (or col == nil ? nil : col.Format("layout")) over a timestamp column;
	// rows in the same span (hour, day) share one formatted value.
	Col    string
	Layout string
	Span   int64 // microseconds; 0: no fast path
	// NilGuard: the expression maps a null time to null (else a null
	// goes through the expression, which fails on it).
	NilGuard bool
}

var formatRE = regexp.MustCompile(`^\s*(?:(\w+)\s*==\s*nil\s*\?\s*nil\s*:\s*)?(\w+)\.Format\("([^"\\]+)"\)\s*$`)

// timeFast recognises the time-formatting idiom and the span one value of
// layout covers, when every unit below the span is absent from it.
func timeFast(src string, in *arrow.Schema) (col, layout string, span int64, guard bool) {
	m := formatRE.FindStringSubmatch(src)
	if m == nil || (m[1] != "" && m[1] != m[2]) {
		return "", "", 0, false
	}
	guard = m[1] != ""
	idx := in.FieldIndices(m[2])
	if len(idx) == 0 {
		return "", "", 0, false
	}
	ts, ok := in.Field(idx[0]).Type.(*arrow.TimestampType)
	if !ok || ts.Unit != arrow.Microsecond || (ts.TimeZone != "" && ts.TimeZone != "UTC") {
		return "", "", 0, false
	}
	l := m[3]
	// The largest span (day, then hour) in which every time formats as
	// its span's start, checked on sample times.
	for _, sp := range []time.Duration{24 * time.Hour, time.Hour} {
		ok := true
		for k := int64(0); k < 64 && ok; k++ {
			t := time.Unix(1_700_000_000+k*7_919_173, k*1_234_567).UTC()
			ok = t.Format(l) == t.Truncate(sp).Format(l)
		}
		if ok {
			return m[2], l, int64(sp / time.Microsecond), guard
		}
	}
	return "", "", 0, false
}

// Config is the decoded configuration.
type Config struct {
	Path         string
	S3           lakeio.S3Options
	PartitionBy  []PartExpr
	Compression  string
	RowGroupRows int64
	FileRows     int64
	FileBytes    int64
	FileAge      time.Duration
	MaxOpen      int
	MaxHeld      int64
	// Schema is the input schema; nil means the first batch's.
	Schema *arrow.Schema
}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	v := c.Config
	cfg := Config{
		Path: v.String("path"), S3: lakeio.DecodeS3(v.Get("s3")), Compression: v.String("compression"),
		RowGroupRows: v.Int64("row_group_rows"), FileRows: v.Int64("file_rows"), FileBytes: v.Int64("file_size"),
		FileAge: v.Duration("file_age"), MaxOpen: int(v.Int64("max_open_files")), MaxHeld: v.Int64("max_held_bytes"), Schema: c.In(),
	}
	ok := true
	for _, f := range []string{"row_group_rows", "file_rows", "file_size", "max_open_files", "max_held_bytes"} {
		if v.Int64(f) <= 0 {
			c.Errorf(v.PosOf(f), "'%s' must be positive", f)
			ok = false
		}
	}
	if cfg.FileAge <= 0 {
		c.Errorf(v.PosOf("file_age"), "'file_age' must be positive")
		ok = false
	}
	if strings.Contains(cfg.Path, "://") && !strings.HasPrefix(cfg.Path, "s3://") {
		e := c.Errorf(v.PosOf("path"), "'path' %q: only a folder or s3://bucket/prefix is supported", cfg.Path)
		e.Hint = "write a local folder (out/lake) or s3://bucket/prefix"
		ok = false
	}
	if pb := v.Get("partition_by"); pb != nil && c.In() != nil {
		for _, e := range pb.Entries {
			if e.Key == "" || strings.ContainsAny(e.Key, "/=") {
				c.Errorf(e.KeyPos, "partition name %q must not be empty or contain / or =", e.Key)
				ok = false
				continue
			}
			prog, errs := exprc.Compile(e.Value.Expr, c.In())
			c.Errs.Append(errs)
			if prog == nil {
				ok = false
				continue
			}
			pe := PartExpr{Name: e.Key, Prog: prog}
			pe.Col, pe.Layout, pe.Span, pe.NilGuard = timeFast(e.Value.Expr.Src, c.In())
			cfg.PartitionBy = append(cfg.PartitionBy, pe)
		}
	}
	if !ok {
		return nil, nil
	}
	return nil, func(r op.Resources) (any, error) { return New(context.Background(), r, cfg) }
}

// RecordRetention is how long a committed file stays in the commit
// records during a run; RecordsCompactAt is how many record objects
// trigger a compaction (a start compacts too).
var (
	RecordRetention  = time.Hour
	RecordsCompactAt = 256
)

// pkey is one partition of one topic read by one source node.
type pkey struct {
	source, topic string
	partition     int32
}

func keyOf(p batch.Position) pkey { return pkey{p.Source, p.Topic, p.Partition} }

// matches reports whether position r is of partition k (a record written
// before sources were recorded has no source: it matches any).
func (k pkey) matches(r batch.Position) bool {
	return r.Topic == k.topic && r.Partition == k.partition && (r.Source == "" || r.Source == k.source)
}

// wkind is what a file's name and footer say about where its rows came
// from.
type wkind uint8

const (
	kindPart   wkind = iota // rows without positions: part-RUN-SEQ.parquet
	kindOne                 // rows of one source partition: topic-pN-FIRST-LAST.parquet
	kindMerged              // rows of batches with several positions: merged-RUN-SEQ.parquet
)

// wkey identifies an open file: its partition folder, its kind and, for
// kindOne, the source partition its rows come from.
type wkey struct {
	dir  string
	kind wkind
	src  pkey
}

// seg is the rows one batch (one ack) put in a file, with its positions.
type seg struct {
	rows int64
	ack  *batch.Ack
	pos  []batch.Position
}

type writer struct {
	key    wkey
	up     lakeio.Upload
	pw     *pqarrow.FileWriter
	opened time.Time
	rows   int64
	held   int64 // Arrow bytes of the batch rows whose acks it holds
	segs   []seg
	acks   []*batch.Ack
}

// Sink writes a lake.
type Sink struct {
	cfg   Config
	res   op.Resources
	alloc memory.Allocator
	store lakeio.Store
	recs  *lakeio.Records
	run   string

	mu        sync.Mutex
	writers   map[wkey]*writer
	seen      map[pkey]int64      // last offset received per source partition
	lastAck   map[pkey]*batch.Ack // the ack of that batch (its pieces are no replay)
	cleaned   map[string]bool     // folders whose crash leftovers were removed
	started   time.Time
	lastSweep time.Time
	files     []lakeio.RecordFile
	evs       []*exprc.Evaluator
	seq       int
	held      int64 // sum of the open writers' held
	closed    bool
	err       error
	enc       *jsonenc.Encoder
	memo      []memo

	mFiles, mRows, mBytes op.Counter
	mOpen                 op.Gauge

	// Stats, for tests and the benchmark.
	Committed int // files committed
}

// New opens the lake and reads the sink's commit records.
func New(ctx context.Context, r op.Resources, cfg Config) (*Sink, error) {
	if r.Alloc == nil {
		r.Alloc = memory.DefaultAllocator
	}
	if r.Clock == nil {
		r.Clock = op.SystemClock{}
	}
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = 16
	}
	if cfg.FileRows <= 0 {
		cfg.FileRows = 1_000_000
	}
	if cfg.FileBytes <= 0 {
		cfg.FileBytes = 128 << 20
	}
	if cfg.FileAge <= 0 {
		cfg.FileAge = time.Minute
	}
	store, err := lakeio.Open(ctx, cfg.Path, cfg.S3)
	if err != nil {
		return nil, err
	}
	node := r.Node
	if node == "" {
		node = "lake"
	}
	recs, err := lakeio.LoadRecords(ctx, store, lakeio.RecordsDir(node))
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("lake %s: %w", store.URL(), err)
	}
	s := &Sink{cfg: cfg, res: r, alloc: r.Alloc, store: store, recs: recs,
		run:     fmt.Sprintf("%x", time.Now().UnixNano()),
		writers: map[wkey]*writer{}, seen: map[pkey]int64{}, lastAck: map[pkey]*batch.Ack{}, files: recs.Files,
		cleaned: map[string]bool{}, started: time.Now(), lastSweep: time.Now()}
	for _, p := range cfg.PartitionBy {
		s.evs = append(s.evs, p.Prog.NewEvaluator())
	}
	if cfg.MaxHeld <= 0 {
		s.cfg.MaxHeld = 64 << 20
	}
	m := r.MetricsOrNop()
	s.mFiles = m.Counter("flowrun_lake_files_committed_total", "Parquet files the lake sink committed.")
	s.mRows = m.Counter("flowrun_lake_rows_committed_total", "Rows in the files the lake sink committed.")
	s.mBytes = m.Counter("flowrun_lake_bytes_committed_total", "Bytes of the files the lake sink committed.")
	s.mOpen = m.Gauge("flowrun_lake_open_files", "Files the lake sink is writing.")
	return s, nil
}

// Store is the sink's storage (tests read back through it).
func (s *Sink) Store() lakeio.Store { return s.store }

func (s *Sink) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	return err
}

// Write implements op.Sink.
func (s *Sink) Write(ctx context.Context, b batch.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Rec == nil {
		b.Ack.Done(s.err)
		return s.err
	}
	err := s.write(ctx, b)
	if err != nil {
		return s.fail(fmt.Errorf("lake %s: %w", s.store.URL(), err))
	}
	return nil
}

func (s *Sink) write(ctx context.Context, b batch.Batch) error {
	rec := b.Rec
	if s.err != nil || s.closed {
		err := s.err
		if err == nil {
			err = errors.New("write after close")
		}
		b.Release(err)
		return err
	}
	if rec.NumRows() == 0 {
		b.Release(nil)
		return nil
	}
	if s.cfg.Schema == nil {
		s.cfg.Schema = rec.Schema()
	}
	var src pkey
	ps := b.Ack.Positions()
	kind := kindPart
	switch {
	case len(ps) == 1:
		kind, src = kindOne, keyOf(ps[0])
	case len(ps) > 1:
		kind = kindMerged
	}
	if len(ps) > 0 {
		if err := s.noteReplay(ctx, b.Ack, ps); err != nil {
			b.Release(err)
			return err
		}
	}
	runs, rejects, err := s.partitionRuns(rec)
	if err != nil {
		b.Release(err)
		return err
	}
	batchBytes := b.Bytes()
	// The ack keeps one reference per file the batch's rows go to (and
	// per dead letter); the caller's reference goes at the end. A file
	// reaching file_rows or file_size is committed at once. Files without
	// offsets in their names are cut in the middle of a batch too, so a
	// large batch (an aggregate's whole result) still makes files of
	// file_rows rows; a file of one partition may pass file_rows by one
	// batch (two files of a batch would have one name).
	fail := func(err error) error {
		// The rows written so far are in files that can no longer be
		// trusted: abort them all, failing their acks.
		rec.Release()
		b.Ack.Done(err)
		s.abortAll(err)
		return err
	}
	var touched []*writer
	for _, r := range runs {
		k := wkey{dir: r.dir, kind: kind, src: src}
		for from := int64(r.from); from < int64(r.to); {
			w, err := s.writer(ctx, k)
			if err != nil {
				return fail(err)
			}
			if l := len(w.acks); l == 0 || w.acks[l-1] != b.Ack {
				b.Ack.Retain(1)
				w.acks = append(w.acks, b.Ack)
			}
			to := int64(r.to)
			if kind != kindOne {
				to = min(to, from+max(1, s.cfg.FileRows-w.rows))
			}
			sl := rec.NewSlice(from, to)
			err = w.pw.WriteBuffered(sl)
			sl.Release()
			if err != nil {
				return fail(err)
			}
			n := to - from
			from = to
			w.rows += n
			share := batchBytes * n / rec.NumRows()
			w.held += share
			s.held += share
			s.res.Memory.Charge(share)
			if kind != kindPart {
				if l := len(w.segs); l > 0 && w.segs[l-1].ack == b.Ack {
					w.segs[l-1].rows += n
				} else {
					w.segs = append(w.segs, seg{rows: n, ack: b.Ack, pos: ps})
				}
			}
			if kind == kindOne {
				touched = append(touched, w) // committed once the batch is written
			} else if s.full(w) {
				if err := s.commit(ctx, w); err != nil {
					rec.Release()
					b.Ack.Done(err)
					return err
				}
			}
		}
	}
	for _, w := range touched {
		if s.writers[w.key] == w && s.full(w) {
			if err := s.commit(ctx, w); err != nil {
				rec.Release()
				b.Ack.Done(err)
				return err
			}
		}
	}
	b.Ack.Retain(len(rejects))
	for i, rj := range rejects {
		if s.enc == nil {
			s.enc = jsonenc.NewEncoder(rec.Schema())
		}
		row := string(s.enc.AppendRow(nil, rec, rj.row))
		if err := s.res.DeadLetters.Reject(b.Ack, row, rj.reason); err != nil {
			// The references kept for the dead letters not sent go too.
			for range rejects[i+1:] {
				b.Ack.Done(err)
			}
			rec.Release()
			b.Ack.Done(err)
			return err
		}
	}
	rec.Release()
	b.Ack.Done(nil)
	for len(s.writers) > s.cfg.MaxOpen || (len(s.writers) > 0 && (s.held > s.cfg.MaxHeld || s.overBudget())) {
		if err := s.commit(ctx, s.oldest()); err != nil {
			return err
		}
	}
	s.mOpen.Set(float64(len(s.writers)))
	return nil
}

// full reports whether w reached file_rows or file_size.
func (s *Sink) full(w *writer) bool {
	return w.rows >= s.cfg.FileRows || w.up.Written()+w.pw.RowGroupTotalCompressedBytes() >= s.cfg.FileBytes
}

// overBudget reports whether the pipeline's memory budget is exceeded:
// committing the oldest file frees what this sink holds.
func (s *Sink) overBudget() bool {
	m := s.res.Memory
	return m != nil && m.InUse() > m.Limit()
}

type reject struct {
	row    int
	reason string
}

// memo is the last formatted value of a time partition level.
type memo struct {
	ok     bool
	bucket int64
	text   string
}

type run struct {
	dir      string
	from, to int
}

// partitionRuns splits rec into runs of consecutive rows with the same
// partition folder. A row whose partition expression fails goes to the
// dead letters (or, without a dead-letter output, fails the write).
func (s *Sink) partitionRuns(rec arrow.RecordBatch) ([]run, []reject, error) {
	n := int(rec.NumRows())
	if len(s.cfg.PartitionBy) == 0 {
		return []run{{dir: "", from: 0, to: n}}, nil, nil
	}
	for _, ev := range s.evs {
		ev.Bind(rec)
	}
	fast := make([]*array.Timestamp, len(s.cfg.PartitionBy))
	for j, p := range s.cfg.PartitionBy {
		if p.Span > 0 {
			if idx := rec.Schema().FieldIndices(p.Col); len(idx) > 0 {
				fast[j], _ = rec.Column(idx[0]).(*array.Timestamp)
			}
		}
	}
	if len(s.memo) != len(fast) {
		s.memo = make([]memo, len(fast))
	}
	var runs []run
	var rejects []reject
	var sb strings.Builder
rows:
	for i := 0; i < n; i++ {
		sb.Reset()
		for j, p := range s.cfg.PartitionBy {
			if col := fast[j]; col != nil && (p.NilGuard || !col.IsNull(i)) {
				sb.WriteString(p.Name)
				sb.WriteByte('=')
				if col.IsNull(i) {
					sb.WriteString(lakeio.NullPartition)
				} else {
					v := int64(col.Value(i))
					b := v / p.Span
					if v < 0 && v%p.Span != 0 {
						b--
					}
					m := &s.memo[j]
					if !m.ok || m.bucket != b {
						m.ok, m.bucket = true, b
						m.text = lakeio.EscapeValue(time.UnixMicro(v).UTC().Format(p.Layout))
					}
					sb.WriteString(m.text)
				}
				sb.WriteByte('/')
				continue
			}
			v, err := s.evs[j].Eval(i)
			if err != nil {
				reason := fmt.Sprintf("lake: partition %s: %v", p.Name, err)
				if s.res.DeadLetters == nil {
					return nil, nil, fmt.Errorf("row %d: %s", i, reason)
				}
				rejects = append(rejects, reject{row: i, reason: reason})
				continue rows
			}
			sb.WriteString(p.Name)
			sb.WriteByte('=')
			if t, ok := arrowx.Text(v); ok && v != nil {
				if t == "" {
					t = lakeio.NullPartition
				}
				sb.WriteString(lakeio.EscapeValue(t))
			} else {
				sb.WriteString(lakeio.NullPartition)
			}
			sb.WriteByte('/')
		}
		d := sb.String()
		if l := len(runs); l > 0 && runs[l-1].dir == d && runs[l-1].to == i {
			runs[l-1].to = i + 1
			continue
		}
		runs = append(runs, run{dir: d, from: i, to: i + 1})
	}
	return runs, rejects, nil
}

func (s *Sink) writer(ctx context.Context, k wkey) (*writer, error) {
	if w := s.writers[k]; w != nil {
		return w, nil
	}
	if !s.cleaned[k.dir] {
		s.cleaned[k.dir] = true
		s.cleanUploads(ctx, k.dir)
	}
	// max_open_files is enforced once the batch is written (the oldest
	// file may be one this batch is writing to).
	up, err := s.store.Create(ctx, k.dir)
	if err != nil {
		return nil, err
	}
	pw, err := lakeio.NewWriter(s.cfg.Schema, up, lakeio.WriterOptions{Compression: s.cfg.Compression, RowGroupRows: s.cfg.RowGroupRows, Alloc: s.alloc})
	if err != nil {
		up.Abort()
		return nil, err
	}
	w := &writer{key: k, up: up, pw: pw, opened: s.res.Clock.Now()}
	s.writers[k] = w
	return w, nil
}

func (s *Sink) oldest() *writer {
	var o *writer
	for _, w := range s.writers {
		if o == nil || w.opened.Before(o.opened) {
			o = w
		}
	}
	return o
}

// commit closes w's file, records it, publishes it under its final name
// and acknowledges its batches.
func (s *Sink) commit(ctx context.Context, w *writer) error {
	delete(s.writers, w.key)
	var key string
	var rf lakeio.RecordFile
	positioned := w.key.kind != kindPart
	if positioned {
		var err error
		if rf, err = s.describe(w.key.dir, w.key.kind, w.segs, w.pw); err != nil {
			return s.abort(w, err)
		}
		key = rf.Key
	} else {
		s.seq++
		key = fmt.Sprintf("%spart-%s-%06d.parquet", w.key.dir, s.run, s.seq)
	}
	if err := w.pw.Close(); err != nil {
		return s.abort(w, err)
	}
	if positioned {
		// The record goes first: a crash after the file appears must
		// still find it.
		if err := s.recs.Append(ctx, []lakeio.RecordFile{rf}); err != nil {
			return s.abort(w, fmt.Errorf("writing the commit record of %s: %w", key, err))
		}
	}
	if err := w.up.Commit(ctx, key); err != nil {
		return s.abort(w, fmt.Errorf("committing %s: %w", key, err))
	}
	if positioned {
		s.files = append(s.files, rf)
	}
	s.Committed++
	s.held -= w.held
	s.res.Memory.Release(w.held)
	s.mFiles.Add(1)
	s.mRows.Add(float64(w.rows))
	s.mBytes.Add(float64(w.up.Written()))
	for _, a := range w.acks {
		a.Done(nil)
	}
	w.acks = nil
	s.res.Log.Debug("lake file committed", "key", key, "rows", w.rows, "bytes", w.up.Written())
	return nil
}

func (s *Sink) abort(w *writer, err error) error {
	delete(s.writers, w.key)
	s.held -= w.held
	s.res.Memory.Release(w.held)
	w.held = 0
	w.up.Abort()
	for _, a := range w.acks {
		a.Done(err)
	}
	w.acks = nil
	return s.fail(err)
}

func (s *Sink) abortAll(err error) {
	for _, w := range s.writers {
		w.pw.Close()
		s.abort(w, err)
	}
}

// describe names a positioned file from its segments and writes them
// into its footer: a file of one source partition is named after its
// offsets, a merged file gets a fresh merged-RUN-SEQ name; the record
// lists what it covers either way.
func (s *Sink) describe(dir string, kind wkind, segs []seg, pw *pqarrow.FileWriter) (lakeio.RecordFile, error) {
	rf := lakeio.RecordFile{At: time.Now().Unix()}
	if kind == kindOne {
		p := segs[0].pos[0]
		rf.Name = lakeio.Name{Topic: p.Topic, Partition: p.Partition, First: p.First, Last: segs[len(segs)-1].pos[0].Last}
		rf.Source = p.Source
		rf.Key = dir + rf.Name.String()
		one := make([]lakeio.Segment, len(segs))
		for i, sg := range segs {
			one[i] = lakeio.Segment{First: sg.pos[0].First, Last: sg.pos[0].Last, Rows: sg.rows}
		}
		return rf, pw.AppendKeyValueMetadata(lakeio.SegmentsKey, lakeio.FormatSegments(one))
	}
	s.seq++
	rf.Key = fmt.Sprintf("%smerged-%s-%06d.parquet", dir, s.run, s.seq)
	ms := make([]lakeio.MergedSegment, len(segs))
	var all []batch.Position
	for i, sg := range segs {
		ms[i] = lakeio.MergedSegment{Rows: sg.rows, Pos: sg.pos}
		all = append(all, sg.pos...)
	}
	rf.Ranges = batch.MergePositions(all)
	return rf, pw.AppendKeyValueMetadata(lakeio.PositionsKey, lakeio.FormatMergedSegments(ms))
}

// replay is a source partition read (again) from an offset.
type replay struct {
	k    pkey
	from int64
}

type replays []replay

// from returns the offset r's partition is read again from.
func (rs replays) from(r batch.Position) (int64, bool) {
	for _, rp := range rs {
		if rp.k.matches(r) {
			return rp.from, true
		}
	}
	return 0, false
}

func replayedPart(rs replays, r batch.Position) bool {
	_, ok := rs.from(r)
	return ok
}

// hit reports whether rows that came from ps are read again: one of them
// is at or after its partition's replay offset.
func (rs replays) hit(ps []batch.Position) bool {
	for _, r := range ps {
		if from, ok := rs.from(r); ok && r.Last >= from {
			return true
		}
	}
	return false
}

// noteReplay finds the source partitions of ps that this batch reads from
// an offset the sink may already hold — the first batch of the partition
// in this run, or an offset at or before the last one received (a
// rebalance gave it back) — and prepares the lake for them (replayFrom).
// Pieces of one ack (a transform emitted several batches for one input)
// are not a replay.
func (s *Sink) noteReplay(ctx context.Context, ack *batch.Ack, ps []batch.Position) error {
	var rs replays
	var ks []pkey
	var lasts []int64
	for _, p := range ps {
		k := keyOf(p)
		i := slices.Index(ks, k)
		if i < 0 {
			ks = append(ks, k)
			lasts = append(lasts, p.Last)
			rs = append(rs, replay{k, p.First})
			continue
		}
		rs[i].from = min(rs[i].from, p.First)
		lasts[i] = max(lasts[i], p.Last)
	}
	var todo replays
	for i, k := range ks {
		if last, seen := s.seen[k]; !seen || (rs[i].from <= last && s.lastAck[k] != ack) {
			todo = append(todo, rs[i])
		}
		s.seen[k], s.lastAck[k] = lasts[i], ack
	}
	if len(todo) == 0 {
		return nil
	}
	return s.replayFrom(ctx, todo, ps)
}

// replayFrom prepares for the source partitions of rs being read from
// their offsets: open files holding rows of those offsets are dropped
// (their acks fail: the source reads them again), committed files holding
// only such rows are deleted, and a committed file holding some is
// rewritten without them. cur is the positions of the batch that started
// the replay.
func (s *Sink) replayFrom(ctx context.Context, rs replays, cur []batch.Position) error {
	for k, w := range s.writers {
		if k.kind == kindPart || !slices.ContainsFunc(w.segs, func(sg seg) bool { return rs.hit(sg.pos) }) {
			continue
		}
		w.pw.Close()
		delete(s.writers, k)
		s.held -= w.held
		s.res.Memory.Release(w.held)
		w.up.Abort()
		for _, a := range w.acks {
			a.Done(batch.ErrDropped)
		}
	}
	var keep []lakeio.RecordFile
	changed := false
	for _, f := range s.files {
		cover := f.Cover()
		if len(cover) == 0 || !rs.hit(cover) {
			if len(cover) > 0 && !f.Merged() && replayedPart(rs, cover[0]) {
				// A file of a replayed partition wholly before its
				// replay offset: those offsets are never read again (a
				// source commits forwards), the record can go.
				changed = true
				continue
			}
			keep = append(keep, f)
			continue
		}
		changed = true
		if from, _ := rs.from(cover[0]); !f.Merged() && f.First >= from {
			if err := s.store.Delete(ctx, f.Key); err != nil {
				return fmt.Errorf("removing %s before its offsets are read again: %w", f.Key, err)
			}
			s.res.Log.Warn("lake: removed a file its replay rewrites", "key", f.Key, "from", from)
			continue
		}
		nf, err := s.cut(ctx, f, rs, cur)
		if err != nil {
			return fmt.Errorf("cutting %s back before the offsets read again: %w", f.Key, err)
		}
		if nf != nil {
			keep = append(keep, *nf)
		}
	}
	if changed || s.recs.Count() > 1 {
		if err := s.recs.Compact(ctx, keep); err != nil {
			return fmt.Errorf("compacting the commit records: %w", err)
		}
	}
	s.files = keep
	return nil
}

// cut rewrites committed file f without the rows of its batches that the
// replays rs read again (a batch is read again whole when one of its
// positions is at or after its partition's replay offset: a source resumes
// at a batch boundary), under a name for what it then covers; a file left
// with no rows is deleted. It returns the file's new record, nil if none.
func (s *Sink) cut(ctx context.Context, f lakeio.RecordFile, rs replays, cur []batch.Position) (*lakeio.RecordFile, error) {
	exists, err := s.store.Exists(ctx, f.Key)
	if err != nil || !exists {
		return nil, err // recorded but never committed: nothing to cut
	}
	r, err := lakeio.OpenReader(ctx, s.store, f.Key, 64*1024, s.alloc)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var segs []seg
	if f.Merged() {
		ms, err := r.MergedSegments()
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			segs = append(segs, seg{rows: m.Rows, pos: m.Pos})
		}
	} else {
		os, err := r.Segments()
		if err != nil {
			return nil, err
		}
		for _, o := range os {
			segs = append(segs, seg{rows: o.Rows, pos: []batch.Position{{Source: f.Source, Topic: f.Topic, Partition: f.Partition, First: o.First, Last: o.Last}}})
		}
	}
	// Row ranges to keep, in row order.
	type span struct{ from, to int64 }
	var spans []span
	var kept []seg
	var at int64
	for _, sg := range segs {
		if !rs.hit(sg.pos) {
			kept = append(kept, sg)
			if l := len(spans); l > 0 && spans[l-1].to == at {
				spans[l-1].to += sg.rows
			} else {
				spans = append(spans, span{at, at + sg.rows})
			}
		} else if f.Merged() {
			// Its rows go; the replay brings them back only if it reads
			// every position they came from again.
			for _, p := range sg.pos {
				if from, ok := rs.from(p); !ok || from > p.First {
					s.res.Log.Warn("lake: a replay removes rows of a merged batch that also came from input it may not read again",
						"key", f.Key, "position", fmt.Sprintf("%s/%s/%d:%d-%d", p.Source, p.Topic, p.Partition, p.First, p.Last),
						"replay", fmt.Sprint(cur))
					break
				}
			}
		}
		at += sg.rows
	}
	dir := f.Key[:len(f.Key)-len(lakeio.Base(f.Key))]
	if len(kept) == 0 {
		if err := s.store.Delete(ctx, f.Key); err != nil {
			return nil, err
		}
		s.res.Log.Warn("lake: removed a file its replay rewrites", "key", f.Key)
		return nil, nil
	}
	schema, err := r.Schema()
	if err != nil {
		return nil, err
	}
	up, err := s.store.Create(ctx, dir)
	if err != nil {
		return nil, err
	}
	pw, err := lakeio.NewWriter(schema, up, lakeio.WriterOptions{Compression: s.cfg.Compression, RowGroupRows: s.cfg.RowGroupRows, Alloc: s.alloc})
	if err != nil {
		up.Abort()
		return nil, err
	}
	var row int64
	err = r.Records(ctx, nil, func(rec arrow.RecordBatch) error {
		defer rec.Release()
		lo, hi := row, row+rec.NumRows()
		row = hi
		for _, sp := range spans {
			a, b := max(sp.from, lo), min(sp.to, hi)
			if a >= b {
				continue
			}
			sl := rec.NewSlice(a-lo, b-lo)
			err := pw.WriteBuffered(sl)
			sl.Release()
			if err != nil {
				return err
			}
		}
		return nil
	})
	kind := kindOne
	if f.Merged() {
		kind = kindMerged
	}
	var nf lakeio.RecordFile
	if err == nil {
		nf, err = s.describe(dir, kind, kept, pw)
	}
	if cerr := pw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		up.Abort()
		return nil, err
	}
	if err := s.recs.Append(ctx, []lakeio.RecordFile{nf}); err != nil {
		up.Abort()
		return nil, err
	}
	if err := up.Commit(ctx, nf.Key); err != nil {
		return nil, err
	}
	if nf.Key != f.Key {
		if err := s.store.Delete(ctx, f.Key); err != nil {
			return nil, err
		}
	}
	s.res.Log.Warn("lake: cut a file back before its replayed offsets", "key", f.Key, "now", nf.Key)
	return &nf, nil
}

// staleUpload is how long an upload must have been left unwritten before
// it counts as abandoned by a crashed run: a live writer (of this or
// another process) writes every batch and commits within file_age.
func (s *Sink) staleUpload() time.Duration { return s.cfg.FileAge + 10*time.Second }

// cleanUploads removes uploads a crashed run left in folder dir (hidden
// from readers, but taking space).
func (s *Sink) cleanUploads(ctx context.Context, dir string) {
	n, err := s.store.CleanUploads(ctx, dir, time.Now().Add(-s.staleUpload()))
	if err != nil {
		s.res.Log.Warn("lake: removing uploads left by a crash", "folder", dir, "err", err)
	} else if n > 0 {
		s.res.Log.Info("lake: removed uploads left by a crash", "folder", dir, "count", n)
	}
}

// Flush implements op.SinkFlusher: files older than file_age are committed,
// and now and then the open files' folders are swept for uploads a crash
// left.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.closed {
		return s.err
	}
	if time.Since(s.lastSweep) > s.staleUpload() {
		s.lastSweep = time.Now()
		for k := range s.writers {
			s.cleanUploads(ctx, k.dir)
		}
	}
	if s.recs.Count() > RecordsCompactAt {
		// Files committed RecordRetention ago hold offsets the source has
		// long committed: a replay never starts inside them.
		cut := time.Now().Add(-RecordRetention).Unix()
		var keep []lakeio.RecordFile
		for _, f := range s.files {
			if f.At == 0 || f.At >= cut {
				keep = append(keep, f)
			}
		}
		if err := s.recs.Compact(ctx, keep); err != nil {
			s.res.Log.Warn("lake: compacting the commit records", "err", err)
		} else {
			s.files = keep
		}
	}
	now := s.res.Clock.Now()
	var old []*writer
	for _, w := range s.writers {
		if now.Sub(w.opened) >= s.cfg.FileAge {
			old = append(old, w)
		}
	}
	sort.Slice(old, func(i, j int) bool { return old[i].opened.Before(old[j].opened) })
	for _, w := range old {
		if err := s.commit(ctx, w); err != nil {
			return fmt.Errorf("lake %s: %w", s.store.URL(), err)
		}
	}
	return nil
}

// Close implements op.Closer: every open file is committed (or, after a
// failure, aborted with its acks failed).
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.err != nil {
		s.abortAll(s.err)
		errs = append(errs, s.err)
	} else {
		ws := make([]*writer, 0, len(s.writers))
		for _, w := range s.writers {
			ws = append(ws, w)
		}
		sort.Slice(ws, func(i, j int) bool { return ws[i].opened.Before(ws[j].opened) })
		for _, w := range ws {
			if err := s.commit(ctx, w); err != nil {
				errs = append(errs, err)
				s.abortAll(err)
				break
			}
		}
	}
	errs = append(errs, s.store.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lake %s: %w", s.store.URL(), err)
	}
	return nil
}
