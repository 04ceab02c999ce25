// Package lake is the "lake" source: it reads the Parquet files of a
// Hive-partitioned lake (written by the lake sink or any engine) from a
// folder or an S3-compatible store, straight into Arrow batches. Partition
// folders outside the requested range are never listed (pruning), only the
// requested columns are read (projection), and the run ends when every
// selected file is read. Long reads log a progress line.
package lake

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/lakeio"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sources,
	Spec: spec.Spec{
		Name:    "lake",
		Summary: "Read a range of partitions of a Parquet lake on a folder or S3.",
		Doc: `Reads the Parquet files under path (a folder or s3://bucket/prefix) whose
Hive-style partition folders (dt=2026-11-25/hour=13/) fall in [from, to),
in folder and file order, and ends when all are read. from and to are dates
(2026-11-25) or RFC 3339 times; a scheduled run passes its interval as
${INTERVAL_START} and ${INTERVAL_END}. Folder levels named in
time_partitions are read as times with the given Go layout (default dt:
2006-01-02 and hour: 15); a folder is listed only if its time span meets the
range, so a day's read lists one day. Without from and to every partition
is read, including the folders of rows without a time
(__HIVE_DEFAULT_PARTITION__), which a range excludes.

Only the declared schema's columns are read from the files (projection), and
widened where safe as in the file source. Without schema the first file's
schema is used (local folders only; declare it for s3://). Files whose name
starts with . or _ (uploads in progress, the sink's records) are skipped.
Every progress_every a line reports files, rows and bytes read of the total.

In a sharded run (flowrun run --shard I/N) the source reads, with shard:
files, only the files whose path hashes to shard I: N runs read every file
once. A pipeline that dedupes, aggregates or windows needs whole groups,
which a share of the files does not hold; validation refuses it with
shard: files. With shard: none every shard run reads every file, and the
pipeline keeps its share of the keys after its grouping nodes with
filter: 'bucket(KEY, ${SHARD_COUNT}) == ${SHARD_INDEX} - 1'.`,
		Example: `sources:
  posts:
    lake:
      path: "${LAKE}"
      from: "${INTERVAL_START}"
      to: "${INTERVAL_END}"
      schema: post`,
		Config: spec.Obj(
			spec.F("path", spec.String, "The lake's root: a folder or s3://bucket/prefix.").Req().Ex("out/lake"),
			spec.F("schema", spec.SchemaRef, "Columns to read (projection): a declared schema's name or an inline mapping."),
			spec.F("from", spec.String, "First time or date to read (inclusive).").Ex("2026-11-25"),
			spec.F("to", spec.String, "End of the range (exclusive).").Ex("2026-11-26"),
			spec.F("time_partitions", spec.StringMap, "Partition folder levels holding times: name → Go time layout (UTC). Default dt: 2006-01-02, hour: 15."),
			spec.F("progress_every", spec.Duration, "How often a long read logs its progress.").Def(5*time.Second),
			spec.F("shard", spec.Enum, "In a sharded run (--shard I/N): files reads the files whose path hashes to I; none reads every file (the pipeline splits its rows by key).").OneOf("files", "none").Def("files"),
			lakeio.S3Field(),
		),
	},
	Prepare: prepare,
	Flow: func(cfg *spec.Value, once bool) validate.Flow {
		return validate.Flow{SplitByShard: cfg.String("shard") != "none"}
	},
}

func init() { op.MustRegister(Plugin) }

// Config is the decoded configuration.
type Config struct {
	Path     string
	S3       lakeio.S3Options
	Schema   *arrow.Schema
	From, To time.Time // zero: unbounded
	Layouts  map[string]string
	Progress time.Duration
	// WholeInput (shard: none): a sharded run reads every file.
	WholeInput bool
}

// ParseTime reads a range bound: RFC 3339, a date, or a date and hour.
func ParseTime(s string) (time.Time, error) {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02T15", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date (2006-01-02) or an RFC 3339 time", s)
}

// DefaultLayouts are the time partition levels the sink's examples write.
var DefaultLayouts = map[string]string{"dt": "2006-01-02", "hour": "15"}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	v := c.Config
	cfg := Config{Path: v.String("path"), S3: lakeio.DecodeS3(v.Get("s3")), Progress: v.Duration("progress_every"), Layouts: DefaultLayouts,
		WholeInput: v.String("shard") == "none"}
	ok := true
	for _, k := range []string{"from", "to"} {
		s := strings.TrimSpace(v.String(k))
		if s == "" {
			continue
		}
		t, err := ParseTime(s)
		if err != nil {
			e := c.Errorf(v.PosOf(k), "'%s': %v", k, err)
			e.Hint = "write 2026-11-25 or 2026-11-25T13:00:00Z"
			ok = false
			continue
		}
		if k == "from" {
			cfg.From = t
		} else {
			cfg.To = t
		}
	}
	if ok && !cfg.From.IsZero() && !cfg.To.IsZero() && !cfg.From.Before(cfg.To) {
		c.Errorf(v.PosOf("to"), "'to' (%s) must be after 'from' (%s)", cfg.To.Format(time.RFC3339), cfg.From.Format(time.RFC3339))
		ok = false
	}
	if tp := v.Get("time_partitions"); tp != nil && tp.Set {
		cfg.Layouts = map[string]string{}
		for _, e := range tp.Entries {
			cfg.Layouts[e.Key] = e.Value.Str
			if _, err := time.Parse(e.Value.Str, time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC).Format(e.Value.Str)); err != nil || spanOf(e.Value.Str) == 0 {
				c.Errorf(e.Value.Pos, "time_partitions %s: %q is not a usable Go time layout", e.Key, e.Value.Str)
				ok = false
			}
		}
	}
	if strings.Contains(cfg.Path, "://") && !strings.HasPrefix(cfg.Path, "s3://") {
		c.Errorf(v.PosOf("path"), "'path' %q: only a folder or s3://bucket/prefix is supported", cfg.Path)
		ok = false
	}
	if v.Has("schema") {
		if cfg.Schema = c.Schema(v.Get("schema")); cfg.Schema == nil {
			ok = false
		}
	} else if ok {
		if strings.HasPrefix(cfg.Path, "s3://") {
			e := c.Errorf(v.PosOf("path"), "reading %s needs a declared schema", cfg.Path)
			e.Hint = "add schema: <name of a declared schema> (validation does not connect to S3)"
			ok = false
		} else if s, err := firstSchema(context.Background(), cfg); err != nil {
			e := c.Errorf(v.PosOf("path"), "%v", err)
			e.Hint = "declare the columns with schema: so the pipeline validates without the data"
			ok = false
		} else {
			cfg.Schema = s
		}
	}
	if !ok {
		return cfg.Schema, nil
	}
	return cfg.Schema, func(r op.Resources) (any, error) { return New(r, cfg), nil }
}

// spanOf is the length of time one folder value of layout covers.
func spanOf(layout string) time.Duration {
	switch {
	case strings.Contains(layout, "05"):
		return time.Second
	case strings.Contains(layout, "04"):
		return time.Minute
	case strings.Contains(layout, "15"):
		return time.Hour
	case strings.Contains(layout, "02") || strings.Contains(layout, "_2"):
		return 24 * time.Hour
	case strings.Contains(layout, "01") || strings.Contains(layout, "Jan"):
		return 31 * 24 * time.Hour // a month at most: pruning stays safe
	case strings.Contains(layout, "2006"):
		return 366 * 24 * time.Hour
	}
	return 0
}

// firstSchema reads the schema of the first file in the selected range.
func firstSchema(ctx context.Context, cfg Config) (*arrow.Schema, error) {
	st, err := lakeio.Open(ctx, cfg.Path, cfg.S3)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	files, err := Plan(ctx, st, cfg)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no parquet file in %s to read the schema from", cfg.Path)
	}
	r, err := lakeio.OpenReader(ctx, st, files[0].Key, 1024, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	s, err := r.Schema()
	if err != nil {
		return nil, err
	}
	return arrow.NewSchema(s.Fields(), nil), nil
}

// folderTime is a partition folder's time prefix so far.
type folderTime struct {
	t     time.Time // combined value of the time levels seen
	known bool
	span  time.Duration
}

// combine adds the time level value v (layout l) to ft.
func combine(ft folderTime, l, v string) (folderTime, bool) {
	// Parse the value against a reference that keeps what earlier levels
	// fixed: "15" alone parses as 0000-01-01T13, so add the hour to the day.
	t, err := time.ParseInLocation(l, v, time.UTC)
	if err != nil {
		return ft, false
	}
	sp := spanOf(l)
	if !ft.known {
		return folderTime{t: t, known: true, span: sp}, true
	}
	if t.Year() == 0 { // a level without a date: an offset within the day
		off := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second
		return folderTime{t: ft.t.Add(off), known: true, span: sp}, true
	}
	return folderTime{t: t, known: true, span: sp}, true
}

// Plan lists the files to read, pruning partition folders outside the range.
func Plan(ctx context.Context, st lakeio.Store, cfg Config) ([]lakeio.Entry, error) {
	var out []lakeio.Entry
	var walk func(prefix string, ft folderTime) error
	walk = func(prefix string, ft folderTime) error {
		ents, err := st.List(ctx, prefix)
		if err != nil {
			return fmt.Errorf("listing %s/%s: %w", st.URL(), prefix, err)
		}
		for _, e := range ents {
			base := lakeio.Base(e.Key)
			if lakeio.IsTemp(base) {
				continue
			}
			if !e.Dir {
				if strings.HasSuffix(base, ".parquet") {
					out = append(out, e)
				}
				continue
			}
			k, v, isPart := lakeio.SplitPartition(base)
			nft := ft
			if l, timed := cfg.Layouts[k]; isPart && timed && v == lakeio.NullPartition {
				// Rows without a time belong to no interval: only an
				// unbounded read includes them.
				if !cfg.From.IsZero() || !cfg.To.IsZero() {
					continue
				}
			} else if isPart && timed {
				var good bool
				if nft, good = combine(ft, l, v); good && !overlaps(nft, cfg.From, cfg.To) {
					continue
				}
			}
			if err := walk(e.Key, nft); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("", folderTime{}); err != nil {
		return nil, err
	}
	return out, nil
}

func overlaps(ft folderTime, from, to time.Time) bool {
	end := ft.t.Add(ft.span)
	if !from.IsZero() && !end.After(from) {
		return false
	}
	if !to.IsZero() && !ft.t.Before(to) {
		return false
	}
	return true
}

// ShardFiles keeps the files of shard sh: those whose key relative to the
// lake's root sh.Owns (a stable hash of the path, mod N).
func ShardFiles(files []lakeio.Entry, sh op.Shard) []lakeio.Entry {
	var out []lakeio.Entry
	for _, f := range files {
		if sh.Owns(f.Key) {
			out = append(out, f)
		}
	}
	return out
}

// Source reads a lake.
type Source struct {
	res op.Resources
	cfg Config
	// progress for op.Progresser, updated once per file and per batch.
	files, totalFiles, rows, bytes, totalBytes atomic.Int64
}

// Progress implements op.Progresser.
func (s *Source) Progress() op.Progress {
	return op.Progress{Files: s.files.Load(), TotalFiles: s.totalFiles.Load(), Rows: s.rows.Load(),
		Bytes: s.bytes.Load(), TotalBytes: s.totalBytes.Load()}
}

// New returns a lake source.
func New(r op.Resources, cfg Config) *Source {
	if r.BatchRows <= 0 {
		r.BatchRows = 64 * 1024
	}
	if r.Alloc == nil {
		r.Alloc = memory.DefaultAllocator
	}
	if cfg.Progress <= 0 {
		cfg.Progress = 5 * time.Second
	}
	return &Source{res: r, cfg: cfg}
}

// Stats is what a read covered.
type Stats struct {
	Files, TotalFiles int
	Rows, TotalRows   int64
	Bytes, TotalBytes int64
}

// Run implements op.Source.
func (s *Source) Run(ctx context.Context, out op.Output) error {
	st, err := lakeio.Open(ctx, s.cfg.Path, s.cfg.S3)
	if err != nil {
		return err
	}
	defer st.Close()
	files, err := Plan(ctx, st, s.cfg)
	if err != nil {
		return err
	}
	if sh := s.res.Shard; sh.Sharded() && !s.cfg.WholeInput {
		all := len(files)
		files = ShardFiles(files, sh)
		if s.res.Log != nil {
			s.res.Log.Info("lake shard", "files", len(files), "of", all)
		}
	}
	var stats Stats
	stats.TotalFiles = len(files)
	for _, f := range files {
		stats.TotalBytes += f.Size
	}
	s.totalBytes.Store(stats.TotalBytes)
	s.totalFiles.Store(int64(stats.TotalFiles))
	last := time.Now()
	progress := func(force bool) {
		if s.res.Log == nil || (!force && time.Since(last) < s.cfg.Progress) {
			return
		}
		last = time.Now()
		s.res.Log.Info("lake read progress", "node", s.res.Node, "files", fmt.Sprintf("%d/%d", stats.Files, stats.TotalFiles),
			"rows", stats.Rows, "bytes", fmt.Sprintf("%d/%d", stats.Bytes, stats.TotalBytes))
	}
	for _, f := range files {
		if err := s.readFile(ctx, st, f, out, &stats); err != nil {
			return err
		}
		stats.Files++
		stats.Bytes += f.Size
		s.files.Add(1)
		s.bytes.Add(f.Size)
		progress(false)
	}
	if stats.TotalFiles > 0 {
		progress(true)
	}
	return nil
}

func (s *Source) readFile(ctx context.Context, st lakeio.Store, f lakeio.Entry, out op.Output, stats *Stats) error {
	r, err := lakeio.OpenReader(ctx, st, f.Key, s.res.BatchRows, s.res.Alloc)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Key, err)
	}
	defer r.Close()
	fs, err := r.Schema()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Key, err)
	}
	want := s.cfg.Schema
	var cols []int
	for _, wf := range want.Fields() {
		idx := fs.FieldIndices(wf.Name)
		if len(idx) == 0 {
			return fmt.Errorf("%s: has no column '%s'", f.Key, wf.Name)
		}
		if !castable(fs.Field(idx[0]).Type, wf.Type) {
			return fmt.Errorf("%s: column '%s' is %s, declared %s", f.Key, wf.Name, types.Name(fs.Field(idx[0]).Type), types.Name(wf.Type))
		}
		cols = append(cols, idx[0])
	}
	cctx := compute.WithAllocator(ctx, s.res.Alloc)
	return r.Records(ctx, cols, func(rec arrow.RecordBatch) error {
		proj, err := project(cctx, rec, want)
		rec.Release()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Key, err)
		}
		stats.Rows += proj.NumRows()
		s.rows.Add(proj.NumRows())
		return out.Emit(ctx, batch.Batch{Rec: proj})
	})
}

// castable reports whether a file column of type from can be read as to.
func castable(from, to arrow.DataType) bool {
	if arrow.TypeEqual(from, to) {
		return true
	}
	switch to.ID() {
	case arrow.INT64:
		switch from.ID() {
		case arrow.INT8, arrow.INT16, arrow.INT32, arrow.UINT8, arrow.UINT16, arrow.UINT32:
			return true
		}
	case arrow.FLOAT64:
		switch from.ID() {
		case arrow.FLOAT32, arrow.INT8, arrow.INT16, arrow.INT32, arrow.UINT8, arrow.UINT16, arrow.UINT32:
			return true
		}
	case arrow.TIMESTAMP:
		return from.ID() == arrow.TIMESTAMP
	case arrow.STRING:
		return from.ID() == arrow.LARGE_STRING
	case arrow.LIST:
		if ft, ok := from.(*arrow.ListType); ok {
			return castable(ft.Elem(), to.(*arrow.ListType).Elem())
		}
	}
	return false
}

// project returns rec's columns named by want, in want's order and types.
func project(ctx context.Context, rec arrow.RecordBatch, want *arrow.Schema) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, 0, want.NumFields())
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	for _, f := range want.Fields() {
		idx := rec.Schema().FieldIndices(f.Name)
		if len(idx) == 0 {
			return nil, fmt.Errorf("column '%s' missing from the batch read", f.Name)
		}
		col := rec.Column(idx[0])
		if arrow.TypeEqual(col.DataType(), f.Type) {
			col.Retain()
			cols = append(cols, col)
			continue
		}
		cast, err := compute.CastArray(ctx, col, compute.SafeCastOptions(f.Type))
		if err != nil {
			return nil, fmt.Errorf("column '%s': %w", f.Name, err)
		}
		cols = append(cols, cast)
	}
	return array.NewRecordBatch(want, cols, rec.NumRows()), nil
}
