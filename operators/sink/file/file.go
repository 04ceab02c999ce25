// Package file is the "file" sink: it writes its input to a file as JSON
// lines or Parquet, and acknowledges rows only once they are durable.
//
// JSON lines are buffered, then written and fsynced (with the directory
// entry, when the run created the file) on every Flush the runtime calls
// (once per flush interval) and on Close; every batch that one sync covers
// is acknowledged after it. By default an existing file is appended to, so
// a restart never destroys what an earlier run acknowledged; a partial last
// line a crash left behind (never acknowledged) is cut off first.
//
// A Parquet file is only readable once its footer is written, so its
// batches are acknowledged on Close. It is written to a hidden temporary
// file in the same directory, synced, and published under its name only
// when complete. By default an existing file is never replaced: the run
// publishes name-1.parquet, name-2.parquet, ... beside it instead.
package file

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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
unless set. Rows are acknowledged only once they are on disk (fsync).

json writes one object per line (fields in schema order, timestamps in
RFC 3339 UTC); it is written, synced and acknowledged once per flush interval
and at the end. An existing file is appended to.

parquet writes row groups of row_group_rows rows with the chosen compression
to a hidden temporary file; when the pipeline ends the file is synced,
published under its name and its rows acknowledged. A run killed before that
leaves only the hidden .name.*.tmp file, never a half-written name.parquet.
Because rows are acknowledged only at the end, a parquet file sink behind an
unbounded source (kafka, http) is refused unless the run uses --once; the
lake sink writes Parquet behind a stream. An existing file is kept: the run
writes name-1.parquet, name-2.parquet, ... beside it.

append: false replaces the file instead. It is refused behind a source that
commits what the sinks acknowledged (kafka with a group, http): a restart
would destroy rows that will never be read again.`,
		Example: `sinks:
  out:
    from: clean
    file: {path: "${OUT}/pins.parquet", compression: zstd}`,
		Config: spec.Obj(
			spec.F("path", spec.String, "The file to write.").Req().Ex("out/pins.jsonl"),
			spec.F("format", spec.Enum, "File format; default from the extension.").OneOf("json", "parquet"),
			spec.F("compression", spec.Enum, "parquet: page compression.").OneOf("snappy", "zstd", "none").Def("snappy"),
			spec.F("row_group_rows", spec.Int, "parquet: rows per row group.").Def(int64(128*1024)),
			spec.F("append", spec.Bool, "Keep an existing file: json appends to it, parquet writes a new numbered file beside it. false replaces it (refused behind kafka or http).").Def(true),
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
	// Replace replaces an existing file instead of keeping it (append: false).
	Replace bool
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
		RowGroupRows: v.Int64("row_group_rows"), Replace: !v.Boolean("append"), Schema: c.In(),
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
	if u := c.Committing(); cfg.Replace && u != nil {
		e := c.Errorf(v.PosOf("append"), "'append: false' replaces %s at every start, but the %s commits what this sink acknowledged: a restart would destroy rows that are never read again", cfg.Path, u)
		e.Code = "truncate"
		e.Hint = "remove 'append: false': json lines are then appended, parquet gets a new file beside the old one"
		ok = false
	}
	if cfg.Format == "parquet" && !c.RequireBounded("the parquet file sink acknowledges only when the run ends",
		"use the lake sink, which commits file by file, or JSON lines to a .jsonl path; or run with --once") {
		ok = false
	}
	if !ok {
		return nil, nil
	}
	return nil, func(r op.Resources) (any, error) { return New(r, cfg) }
}

// handle is the file the sink writes; tests inject failing ones.
type handle interface {
	io.Writer
	Sync() error
	Close() error
}

// Hooks for tests: how files are opened, linked and directories synced.
var (
	openFile = func(name string, flag int, perm fs.FileMode) (handle, error) {
		return os.OpenFile(name, flag, perm)
	}
	linkFile   = os.Link
	createTemp = func(dir, pattern string) (handle, string, error) {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, "", err
		}
		return f, f.Name(), nil
	}
)

// Sink writes one file.
type Sink struct {
	cfg   Config
	alloc memory.Allocator

	mu      sync.Mutex
	f       handle
	tmp     string // parquet: the temporary file being written
	created bool   // json: the run created the file; its directory entry is not synced yet
	dirty   bool   // json: bytes written to f since the last sync
	rows    int64  // rows written
	bw      *bufio.Writer
	enc     *jsonenc.Encoder
	encFor  *arrow.Schema
	line    []byte
	pw      *pqarrow.FileWriter
	pending []*batch.Ack
	closed  bool
	err     error // first write error; later calls fail with it
}

// New opens the file: JSON lines are appended to it (or it is truncated
// with cfg.Replace); Parquet goes to a temporary file beside it.
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
	dir := filepath.Dir(cfg.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	s := &Sink{cfg: cfg, alloc: r.Alloc}
	if cfg.Format == "parquet" {
		f, tmp, err := createTemp(dir, "."+filepath.Base(cfg.Path)+".*.tmp")
		if err != nil {
			return nil, fmt.Errorf("file sink: %w", err)
		}
		s.f, s.tmp = f, tmp
		return s, nil
	}
	_, statErr := os.Stat(cfg.Path)
	s.created = errors.Is(statErr, fs.ErrNotExist)
	flags := os.O_CREATE | os.O_RDWR | os.O_APPEND
	if cfg.Replace {
		flags |= os.O_TRUNC
	} else if !s.created {
		if err := trimPartialLine(cfg.Path); err != nil {
			return nil, fmt.Errorf("file sink: %w", err)
		}
	}
	f, err := openFile(cfg.Path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	s.f = f
	s.bw = bufio.NewWriterSize(f, 1<<20)
	return s, nil
}

// trimPartialLine cuts a regular file after its last newline. Bytes after
// it are the start of a line a crash interrupted: it was never synced
// whole, so never acknowledged, and will be written again.
func trimPartialLine(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
		return err
	}
	size := st.Size()
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(0, end-int64(len(buf)))
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			keep := start + int64(i) + 1
			if keep == size {
				return nil
			}
			return truncate(f, keep)
		}
		end = start
	}
	return truncate(f, 0)
}

func truncate(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// writerOnly hides the file's Close from the Parquet writer, which would
// otherwise close it before it is synced.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

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
	return pqarrow.NewFileWriter(schema, writerOnly{s.f}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(s.alloc)))
}

// Write implements op.Sink: the rows are buffered, their ack kept until
// they are synced to the file.
func (s *Sink) Write(ctx context.Context, b batch.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.write(b.Rec)
	if b.Rec != nil {
		b.Rec.Release()
	}
	if err != nil {
		s.fail(err)
		b.Ack.Done(s.err)
		return s.err
	}
	if b.Ack != nil {
		s.pending = append(s.pending, b.Ack)
	}
	return nil
}

func (s *Sink) fail(err error) {
	if s.err == nil {
		s.err = fmt.Errorf("file sink %s: %w", s.cfg.Path, err)
	}
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
	s.rows += rec.NumRows()
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
	s.dirty = true
	for i := 0; i < int(rec.NumRows()); i++ {
		s.line = s.enc.AppendRow(s.line[:0], rec, i)
		s.line = append(s.line, '\n')
		if _, err := s.bw.Write(s.line); err != nil {
			return err
		}
	}
	return nil
}

// Flush implements op.SinkFlusher: JSON lines are written to the file,
// synced, and every batch they hold acknowledged. Parquet rows wait for
// Close.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Format == "parquet" || s.closed {
		return s.err
	}
	if s.err == nil {
		if err := s.syncJSON(); err != nil {
			s.fail(err)
		}
	}
	s.ackAll(s.err)
	return s.err
}

// syncJSON writes the buffer and makes everything written durable: the
// file's data and, once, the directory entry of a file the run created.
func (s *Sink) syncJSON() error {
	if !s.dirty && !s.created {
		return nil
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.dirty = false
	if s.created {
		if err := syncDir(filepath.Dir(s.cfg.Path)); err != nil {
			return err
		}
		s.created = false
	}
	return nil
}

var syncDir = func(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Sink) ackAll(err error) {
	for _, a := range s.pending {
		a.Done(err)
	}
	s.pending = s.pending[:0]
}

// Close implements op.Closer: writes and syncs what is buffered, completes
// and publishes a Parquet file, and acknowledges every pending batch (with
// the error if any step failed). It is safe to call twice.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.err == nil {
		var err error
		if s.cfg.Format == "parquet" {
			err = s.finishParquet()
		} else {
			err = s.syncJSON()
		}
		if err != nil {
			s.fail(err)
		}
	}
	if s.pw != nil {
		s.pw.Close() // after a failure: releases its buffers; the file is abandoned
	}
	if s.f != nil {
		if err := s.f.Close(); err != nil {
			s.fail(err)
		}
		s.f = nil
	}
	if s.tmp != "" {
		os.Remove(s.tmp) // published by now, or abandoned
	}
	s.ackAll(s.err)
	return s.err
}

// finishParquet writes the footer, syncs the temporary file and publishes
// it under its name.
func (s *Sink) finishParquet() error {
	if s.pw == nil && s.cfg.Schema != nil {
		// An empty input still makes a valid, empty file.
		pw, err := s.parquetWriter(s.cfg.Schema)
		if err != nil {
			return err
		}
		s.pw = pw
	}
	if s.pw == nil {
		return nil // no schema, no rows: nothing to write
	}
	if err := s.pw.Close(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	s.f = nil
	if err := s.publish(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(s.cfg.Path))
}

// publish gives the temporary file its name: replacing the file with
// Replace, otherwise the first of path, name-1.ext, name-2.ext, ... that
// does not exist. A run without rows adds no numbered file.
func (s *Sink) publish() error {
	if s.cfg.Replace {
		return os.Rename(s.tmp, s.cfg.Path)
	}
	ext := filepath.Ext(s.cfg.Path)
	stem := strings.TrimSuffix(s.cfg.Path, ext)
	for n := 0; ; n++ {
		name := s.cfg.Path
		if n > 0 {
			if s.rows == 0 {
				return nil
			}
			name = stem + "-" + strconv.Itoa(n) + ext
		}
		// A hard link fails when the name exists, so two runs never
		// publish over each other.
		err := linkFile(s.tmp, name)
		if err == nil {
			return nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		// A file system without hard links: rename to a name that is free
		// now (another run publishing the same name at this instant could
		// still lose; one writer per path is the supported setup).
		if _, serr := os.Lstat(name); serr == nil {
			continue
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return err
		}
		return os.Rename(s.tmp, name)
	}
}
