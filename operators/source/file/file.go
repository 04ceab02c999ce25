// Package file is the "file" source: it reads JSON-lines, CSV or Parquet
// files matching a glob, in sorted order, and emits them as record batches of
// the declared schema. It is bounded: Run returns when every file is read.
// Records that do not decode go to the node's dead-letter output with their
// file and line.
package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/codec/jsondec"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sources,
	Spec: spec.Spec{
		Name:    "file",
		Summary: "Read JSON-lines, CSV or Parquet files matching a glob.",
		Doc: `Reads every file matching path (a glob such as data/*.jsonl), in sorted
order, and ends when all are read. The format comes from the extension
(.jsonl, .ndjson, .json → json; .csv → csv; .parquet → parquet) unless set.

json: one JSON object per line, decoded against the schema: unknown keys are
ignored, missing keys and null become null, numbers are accepted in string
columns and numeric strings in number columns, RFC 3339 strings in timestamp
columns. A line that does not decode goes to the dead-letter output with
"file:line: reason".

csv: columns are matched to the schema by the header row's names (or by
position with header: false); empty cells are null except in string columns.

parquet: the declared columns are read by name (others are skipped) and
widened where safe (int32 → int64, any timestamp unit → timestamp); without a
schema the first file's schema is used.`,
		Example: `sources:
  posts:
    file: {path: "data/posts-*.jsonl", schema: pin}
    dead_letter: bad`,
		Config: spec.Obj(
			spec.F("path", spec.String, "File path or glob (*, ?, [...]); matching files are read in sorted order.").Req().Ex("data/*.jsonl"),
			spec.F("format", spec.Enum, "File format; default from the extension.").OneOf("json", "csv", "parquet"),
			spec.F("schema", spec.SchemaRef, "Columns to read: a declared schema's name or an inline mapping. Required for json and csv."),
			spec.F("header", spec.Bool, "csv: the first row holds column names.").Def(true),
			spec.F("delimiter", spec.String, "csv: the field separator, one character.").Def(","),
		),
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

// Config is the decoded configuration.
type Config struct {
	Path      string
	Format    string // json, csv or parquet
	Schema    *arrow.Schema
	Header    bool
	Delimiter rune
}

// FormatOf infers a format from a path's extension, or returns "".
func FormatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
		return "json"
	case ".csv":
		return "csv"
	case ".parquet", ".pq":
		return "parquet"
	}
	return ""
}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	v := c.Config
	cfg := Config{Path: v.String("path"), Format: v.String("format"), Header: v.Boolean("header")}
	ok := true
	if _, err := filepath.Match(cfg.Path, ""); err != nil {
		c.Errorf(v.PosOf("path"), "'path': bad glob %q: %v", cfg.Path, err)
		ok = false
	}
	if cfg.Format == "" && cfg.Path != "" {
		cfg.Format = FormatOf(cfg.Path)
		if cfg.Format == "" {
			e := c.Errorf(v.PosOf("path"), "cannot tell the format of %q from its extension", cfg.Path)
			e.Hint = "set format: json, csv or parquet"
			ok = false
		}
	}
	d := v.String("delimiter")
	if utf8.RuneCountInString(d) != 1 || d == "\n" || d == "\r" || d == `"` {
		c.Errorf(v.PosOf("delimiter"), "'delimiter' must be one character other than a quote or newline, not %q", d)
		ok = false
	} else {
		cfg.Delimiter, _ = utf8.DecodeRuneInString(d)
	}
	if v.Has("schema") {
		cfg.Schema = c.Schema(v.Get("schema"))
		if cfg.Schema == nil {
			ok = false
		}
	}
	if cfg.Schema == nil && ok {
		switch cfg.Format {
		case "json", "csv":
			e := c.Errorf(v.PosOf("schema"), "the %s format needs a schema", cfg.Format)
			e.Hint = "add schema: <name of a declared schema> or an inline mapping {column: type}"
			ok = false
		case "parquet":
			s, err := parquetSchema(cfg.Path)
			if err != nil {
				e := c.Errorf(v.PosOf("path"), "%v", err)
				e.Hint = "declare the columns with schema: so the pipeline validates without the data"
				ok = false
			}
			cfg.Schema = s
		}
	}
	if cfg.Schema != nil && cfg.Format != "parquet" {
		for _, f := range cfg.Schema.Fields() {
			if !decodable(f.Type) {
				c.Errorf(v.PosOf("schema"), "column '%s': type %s cannot be read from %s", f.Name, types.Name(f.Type), cfg.Format)
				ok = false
			}
		}
	}
	if !ok {
		return cfg.Schema, nil
	}
	return cfg.Schema, func(r op.Resources) (any, error) { return New(r, cfg), nil }
}

func decodable(t arrow.DataType) bool {
	if lt, ok := t.(*arrow.ListType); ok {
		t = lt.Elem()
	}
	switch t.ID() {
	case arrow.STRING, arrow.BINARY, arrow.INT64, arrow.INT32, arrow.FLOAT64, arrow.BOOL, arrow.TIMESTAMP:
		return true
	}
	return false
}

// parquetSchema reads the Arrow schema of the first file matching glob.
func parquetSchema(glob string) (*arrow.Schema, error) {
	files, _ := filepath.Glob(glob)
	if len(files) == 0 {
		return nil, fmt.Errorf("no parquet file matches %q to read the schema from", glob)
	}
	sort.Strings(files)
	pf, err := pqfile.OpenParquetFile(files[0], false)
	if err != nil {
		return nil, fmt.Errorf("reading the schema of %s: %v", files[0], err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("reading the schema of %s: %v", files[0], err)
	}
	s, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("reading the schema of %s: %v", files[0], err)
	}
	return arrow.NewSchema(s.Fields(), nil), nil
}

// Source reads the files.
type Source struct {
	res op.Resources
	cfg Config
}

// New returns a file source.
func New(r op.Resources, cfg Config) *Source {
	if r.BatchRows <= 0 {
		r.BatchRows = 1024
	}
	if r.Alloc == nil {
		r.Alloc = memory.DefaultAllocator
	}
	if cfg.Delimiter == 0 {
		cfg.Delimiter = ','
	}
	return &Source{res: r, cfg: cfg}
}

// maxBatchBytes caps a batch's input size whatever BatchRows says.
const maxBatchBytes = 16 << 20

// Run implements op.Source.
func (s *Source) Run(ctx context.Context, out op.Output) error {
	files, err := filepath.Glob(s.cfg.Path)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no file matches %q", s.cfg.Path)
	}
	sort.Strings(files)
	if s.cfg.Format == "parquet" {
		for _, f := range files {
			if err := s.readParquet(ctx, f, out); err != nil {
				return err
			}
		}
		return nil
	}
	dec := jsondec.NewDecoder(s.cfg.Schema, s.res.Alloc, jsondec.Options{})
	defer dec.Release()
	for _, f := range files {
		var err error
		if s.cfg.Format == "csv" {
			err = s.readCSV(ctx, f, dec, out)
		} else {
			err = s.readJSON(ctx, f, dec, out)
		}
		if err != nil {
			return err
		}
	}
	if dec.Rows() > 0 {
		return s.emit(ctx, dec.Flush(), out)
	}
	return nil
}

func (s *Source) emit(ctx context.Context, rec arrow.RecordBatch, out op.Output) error {
	return out.Emit(ctx, batch.Batch{Rec: rec})
}

func (s *Source) maybeEmit(ctx context.Context, dec *jsondec.Decoder, out op.Output) error {
	if dec.Rows() >= s.res.BatchRows || dec.Bytes() >= maxBatchBytes {
		return s.emit(ctx, dec.Flush(), out)
	}
	return nil
}

func (s *Source) readJSON(ctx context.Context, path string, dec *jsondec.Decoder, out op.Output) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var long []byte
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", path, err)
		}
		if n&1023 == 0 {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			if derr := dec.Append(t); derr != nil {
				if rerr := out.Reject(string(t), fmt.Sprintf("%s:%d: %v", path, n, derr)); rerr != nil {
					return rerr
				}
			} else if eerr := s.maybeEmit(ctx, dec, out); eerr != nil {
				return eerr
			}
		}
		if err != nil { // io.EOF
			return nil
		}
	}
}

func (s *Source) readCSV(ctx context.Context, path string, dec *jsondec.Decoder, out op.Output) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.Comma = s.cfg.Delimiter
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	var cols []int
	if s.cfg.Header {
		h, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: header: %w", path, err)
		}
		index := map[string]int{}
		for i, fld := range s.cfg.Schema.Fields() {
			index[fld.Name] = i
		}
		for k, name := range h {
			if k == 0 {
				name = strings.TrimPrefix(name, "\ufeff")
			}
			c, ok := index[strings.TrimSpace(name)]
			if !ok {
				c = -1
			}
			cols = append(cols, c)
		}
	} else {
		for i := range s.cfg.Schema.Fields() {
			cols = append(cols, i)
		}
	}
	for n := 0; ; n++ {
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			if rerr := out.Reject(strings.Join(rec, string(s.cfg.Delimiter)), fmt.Sprintf("%s:%d: %v", path, pe.StartLine, pe.Err)); rerr != nil {
				return rerr
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) > len(cols) && !s.cfg.Header {
			// Extra cells without a header have no column; ignore them.
			rec = rec[:len(cols)]
		}
		if derr := dec.AppendText(cols, rec); derr != nil {
			if rerr := out.Reject(strings.Join(rec, string(s.cfg.Delimiter)), fmt.Sprintf("%s:%d: %v", path, line, derr)); rerr != nil {
				return rerr
			}
			continue
		}
		if err := s.maybeEmit(ctx, dec, out); err != nil {
			return err
		}
	}
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
	case arrow.INT32:
		switch from.ID() {
		case arrow.INT8, arrow.INT16, arrow.UINT8, arrow.UINT16:
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
	case arrow.BINARY:
		return from.ID() == arrow.LARGE_BINARY
	case arrow.LIST:
		var fe arrow.DataType
		switch ft := from.(type) {
		case *arrow.ListType:
			fe = ft.Elem()
		case *arrow.LargeListType:
			fe = ft.Elem()
		default:
			return false
		}
		return castable(fe, to.(*arrow.ListType).Elem())
	}
	return false
}

func (s *Source) readParquet(ctx context.Context, path string, out op.Output) error {
	pf, err := pqfile.OpenParquetFile(path, false)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(s.res.BatchRows)}, s.res.Alloc)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fs, err := fr.Schema()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	want := s.cfg.Schema
	var fields []int
	for _, f := range want.Fields() {
		idx := fs.FieldIndices(f.Name)
		if len(idx) == 0 {
			return fmt.Errorf("%s: has no column '%s'", path, f.Name)
		}
		ft := fs.Field(idx[0]).Type
		if !castable(ft, f.Type) {
			return fmt.Errorf("%s: column '%s' is %s, declared %s", path, f.Name, types.Name(ft), types.Name(f.Type))
		}
		fields = append(fields, idx[0])
	}
	leaves, err := fr.Manifest.GetFieldIndices(fields)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if pf.NumRows() == 0 {
		return nil
	}
	rr, err := fr.GetRecordReader(ctx, leaves, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer rr.Release()
	cctx := compute.WithAllocator(ctx, s.res.Alloc)
	for {
		rec, err := rr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if rec == nil {
			return nil
		}
		proj, err := project(cctx, rec, want)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := s.emit(ctx, proj, out); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// project returns rec's columns named by want, in want's order and types.
// rec stays owned by the caller.
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
