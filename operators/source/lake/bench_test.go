package lake

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

type discard struct{ schema *arrow.Schema }

func (d discard) Schema() *arrow.Schema { return d.schema }
func (d discard) Emit(_ context.Context, b batch.Batch) error {
	b.Release(nil)
	return nil
}
func (d discard) Reject(string, string) error { return errors.New("reject") }

// BenchmarkRead compares the lake source (listing with pruning, projection
// to two of three columns, casting) with pqarrow reading the same files'
// columns alone.
func BenchmarkRead(b *testing.B) {
	const n = 200_000
	dir := filepath.Join(b.TempDir(), "lake")
	writeLakeStep(b, dir, "", n, 20*time.Millisecond) // about an hour: two folders
	files, _ := filepath.Glob(filepath.Join(dir, "dt=*", "hour=*", "*.parquet"))
	b.Run("lake-source", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			schema, ctor, errs := prep(b, `{path: "`+dir+`", schema: slim}`)
			if len(errs) > 0 {
				b.Fatal(errs.Error())
			}
			src, _ := ctor(op.Resources{BatchRows: 64 * 1024})
			if err := src.(op.Source).Run(context.Background(), discard{schema}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("pqarrow", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			for _, f := range files {
				pf, err := pqfile.OpenParquetFile(f, false)
				if err != nil {
					b.Fatal(err)
				}
				fr, _ := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 * 1024}, memory.DefaultAllocator)
				rr, err := fr.GetRecordReader(context.Background(), []int{0, 1}, nil)
				if err != nil {
					b.Fatal(err)
				}
				for {
					rec, err := rr.Read()
					if errors.Is(err, io.EOF) || (err == nil && rec == nil) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				rr.Release()
				pf.Close()
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
