package lakeio

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// WriterOptions are a data file's Parquet settings.
type WriterOptions struct {
	Compression  string // zstd (default), snappy, gzip, none
	RowGroupRows int64
	Alloc        memory.Allocator
}

// NewWriter returns a Parquet writer of schema onto w.
func NewWriter(schema *arrow.Schema, w io.Writer, o WriterOptions) (*pqarrow.FileWriter, error) {
	codec := compress.Codecs.Zstd
	switch o.Compression {
	case "snappy":
		codec = compress.Codecs.Snappy
	case "gzip":
		codec = compress.Codecs.Gzip
	case "none":
		codec = compress.Codecs.Uncompressed
	}
	if o.RowGroupRows <= 0 {
		o.RowGroupRows = 128 * 1024
	}
	if o.Alloc == nil {
		o.Alloc = memory.DefaultAllocator
	}
	props := parquet.NewWriterProperties(
		parquet.WithAllocator(o.Alloc),
		parquet.WithCompression(codec),
		parquet.WithMaxRowGroupLength(o.RowGroupRows),
		parquet.WithCreatedBy("flowrun lake"),
	)
	return pqarrow.NewFileWriter(schema, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(o.Alloc)))
}

// Reader is an open data file.
type Reader struct {
	f    File
	pf   *pqfile.Reader
	FR   *pqarrow.FileReader
	Rows int64
}

// OpenReader opens key for reading batches of batchRows rows.
func OpenReader(ctx context.Context, s Store, key string, batchRows int, alloc memory.Allocator) (*Reader, error) {
	f, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	pf, err := pqfile.NewParquetReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(batchRows), Parallel: false}, alloc)
	if err != nil {
		pf.Close()
		f.Close()
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &Reader{f: f, pf: pf, FR: fr, Rows: pf.NumRows()}, nil
}

// Segments returns the file's segments (nil when it has none).
func (r *Reader) Segments() ([]Segment, error) {
	v := r.pf.MetaData().KeyValueMetadata().FindValue(SegmentsKey)
	if v == nil {
		return nil, nil
	}
	return ParseSegments(*v)
}

// MergedSegments returns a merged file's segments (nil when it has none).
func (r *Reader) MergedSegments() ([]MergedSegment, error) {
	v := r.pf.MetaData().KeyValueMetadata().FindValue(PositionsKey)
	if v == nil {
		return nil, nil
	}
	return ParseMergedSegments(*v)
}

// Schema is the file's Arrow schema.
func (r *Reader) Schema() (*arrow.Schema, error) { return r.FR.Schema() }

// Records reads the columns cols (indices in Schema; nil: all) batch by
// batch; fn owns each batch it is given. Reading stops at fn's first error.
func (r *Reader) Records(ctx context.Context, cols []int, fn func(arrow.RecordBatch) error) error {
	if r.Rows == 0 {
		return nil
	}
	var leaves []int
	if cols != nil {
		var err error
		if leaves, err = r.FR.Manifest.GetFieldIndices(cols); err != nil {
			return err
		}
	}
	rr, err := r.FR.GetRecordReader(ctx, leaves, nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	for {
		rec, err := rr.Read()
		if errors.Is(err, io.EOF) || (err == nil && rec == nil) {
			return nil
		}
		if err != nil {
			return err
		}
		rec.Retain()
		if err := fn(rec); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Close releases the file.
func (r *Reader) Close() error {
	r.pf.Close()
	return r.f.Close()
}
