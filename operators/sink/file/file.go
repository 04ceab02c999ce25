// Package file is the "file" sink: it writes its input to one file as JSON
// lines or Parquet. JSON lines are buffered and acknowledged when the buffer
// is flushed to the file (on Flush and Close); a Parquet file is only
// readable once its footer is written, so its batches are acknowledged on
// Close.
package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/codec/jsonenc"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sinks,
	Spec: spec.Spec{
		Name:    "file",
		Summary: "Write rows to a JSON-lines or Parquet file.",
		Doc: `Writes every input row to path, creating parent directories. The format
comes from the extension (.jsonl, .ndjson, .json → json; .parquet → parquet)
unless set. json writes one object per line (fields in schema order,
timestamps in RFC 3339 UTC); it is flushed and acknowledged periodically and
at the end. parquet writes row groups of row_group_rows rows with the chosen
compression; the file is complete, and its rows acknowledged, when the
pipeline ends. The file is truncated at start unless append is true (json
only).`,
		Example: `sinks:
  out:
    from: clean
    file: {path: "${OUT}/pins.parquet", compression: zstd}`,
		Config: spec.Obj(
			spec.F("path", spec.String, "The file to write.").Req().Ex("out/pins.jsonl"),
			spec.F("format", spec.Enum, "File format; default from the extension.").OneOf("json", "parquet"),
			spec.F("compression", spec.Enum, "parquet: page compression.").OneOf("snappy", "zstd", "none").Def("snappy"),
			spec.F("row_group_rows", spec.Int, "parquet: rows per row group.").Def(int64(128*1024)),
			spec.F("append", spec.Bool, "json: append to an existing file instead of truncating it.").Def(false),
		),
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

// Config is the decoded configuration.
type Config struct {
	Path         string
	Format       string // json or parquet
	Compression  string // snappy, zstd or none
	RowGroupRows int64
	Append       bool
	// Schema is the input schema; when nil the first batch's is used.
	Schema *arrow.Schema
}

// FormatOf infers a format from a path's extension, or returns "".
func FormatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
		return "json"
	case ".parquet", ".pq":
		return "parquet"
	}
	return ""
}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	v := c.Config
	cfg := Config{
		Path: v.String("path"), Format: v.String("format"), Compression: v.String("compression"),
		RowGroupRows: v.Int64("row_group_rows"), Append: v.Boolean("append"), Schema: c.In(),
	}
	ok := true
	if cfg.Format == "" && cfg.Path != "" {
		if cfg.Format = FormatOf(cfg.Path); cfg.Format == "" {
			e := c.Errorf(v.PosOf("path"), "cannot tell the format of %q from its extension", cfg.Path)
			e.Hint = "set format: json or parquet"
			ok = false
		}
	}
	if cfg.RowGroupRows <= 0 {
		c.Errorf(v.PosOf("row_group_rows"), "'row_group_rows' must be positive")
		ok = false
	}
	if cfg.Format == "parquet" && cfg.Append {
		c.Errorf(v.PosOf("append"), "'append' is not possible with parquet: a parquet file cannot be extended")
		ok = false
	}
	if !ok {
		return nil, nil
	}
	return nil, func(r op.Resources) (any, error) { return New(r, cfg) }
}

// Sink writes one file.
type Sink struct {
	cfg   Config
	alloc memory.Allocator

	mu      sync.Mutex
	f       *os.File
	bw      *bufio.Writer
	enc     *jsonenc.Encoder
	encFor  *arrow.Schema
	line    []byte
	pw      *pqarrow.FileWriter
	pending []*batch.Ack
	closed  bool
	err     error // first write error; later calls fail with it
}

// New opens (creating or truncating) the file.
func New(r op.Resources, cfg Config) (*Sink, error) {
	if cfg.Format == "" {
		cfg.Format = FormatOf(cfg.Path)
	}
	if cfg.Format != "json" && cfg.Format != "parquet" {
		return nil, fmt.Errorf("file sink: unknown format %q", cfg.Format)
	}
	if cfg.RowGroupRows <= 0 {
		cfg.RowGroupRows = 128 * 1024
	}
	if r.Alloc == nil {
		r.Alloc = memory.DefaultAllocator
	}
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if cfg.Append && cfg.Format == "json" {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(cfg.Path, flags, 0o644)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, alloc: r.Alloc, f: f}
	if cfg.Format == "json" {
		s.bw = bufio.NewWriterSize(f, 1<<20)
	}
	return s, nil
}

func (s *Sink) parquetWriter(schema *arrow.Schema) (*pqarrow.FileWriter, error) {
	codec := compress.Codecs.Snappy
	switch s.cfg.Compression {
	case "zstd":
		codec = compress.Codecs.Zstd
	case "none":
		codec = compress.Codecs.Uncompressed
	}
	props := parquet.NewWriterProperties(
		parquet.WithAllocator(s.alloc),
		parquet.WithCompression(codec),
		parquet.WithMaxRowGroupLength(s.cfg.RowGroupRows),
	)
	return pqarrow.NewFileWriter(schema, s.f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(s.alloc)))
}

// Write implements op.Sink: the rows are buffered, their ack kept until
// they reach the file.
func (s *Sink) Write(ctx context.Context, b batch.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.write(b.Rec)
	if b.Rec != nil {
		b.Rec.Release()
	}
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		b.Ack.Done(err)
		return err
	}
	if b.Ack != nil {
		s.pending = append(s.pending, b.Ack)
	}
	return nil
}

func (s *Sink) write(rec arrow.RecordBatch) error {
	switch {
	case s.err != nil:
		return s.err
	case s.closed:
		return errors.New("file sink: write after close")
	case rec == nil || rec.NumRows() == 0:
		return nil
	}
	if s.cfg.Format == "parquet" {
		if s.pw == nil {
			schema := s.cfg.Schema
			if schema == nil {
				schema = rec.Schema()
			}
			pw, err := s.parquetWriter(schema)
			if err != nil {
				return err
			}
			s.pw = pw
		}
		return s.pw.WriteBuffered(rec)
	}
	if s.enc == nil || s.encFor != rec.Schema() {
		s.enc, s.encFor = jsonenc.NewEncoder(rec.Schema()), rec.Schema()
	}
	for i := 0; i < int(rec.NumRows()); i++ {
		s.line = s.enc.AppendRow(s.line[:0], rec, i)
		s.line = append(s.line, '\n')
		if _, err := s.bw.Write(s.line); err != nil {
			return err
		}
	}
	return nil
}

// Flush implements op.SinkFlusher: JSON lines are written to the file and
// acknowledged. Parquet rows wait for Close.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Format == "parquet" || s.closed {
		return s.err
	}
	var err error
	if s.err == nil {
		err = s.bw.Flush()
		if err != nil {
			s.err = err
		}
	}
	s.ackAll(s.err)
	return err
}

func (s *Sink) ackAll(err error) {
	for _, a := range s.pending {
		a.Done(err)
	}
	s.pending = s.pending[:0]
}

// Close implements op.Closer: flushes, completes the file and acknowledges
// every pending batch. It is safe to call twice.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.bw != nil && s.err == nil {
		errs = append(errs, s.bw.Flush())
	}
	if s.cfg.Format == "parquet" && s.err == nil {
		if s.pw == nil && s.cfg.Schema != nil {
			// An empty input still makes a valid, empty file.
			pw, err := s.parquetWriter(s.cfg.Schema)
			errs = append(errs, err)
			s.pw = pw
		}
		if s.pw != nil {
			errs = append(errs, s.pw.Close()) // closes s.f too
			s.f = nil
		}
	}
	if s.f != nil {
		errs = append(errs, s.f.Close())
	}
	err := errors.Join(errs...)
	if s.err == nil {
		s.err = err
	}
	s.ackAll(s.err)
	if err != nil {
		return fmt.Errorf("file sink %s: %w", s.cfg.Path, err)
	}
	return nil
}
