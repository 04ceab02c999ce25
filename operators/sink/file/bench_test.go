package file

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// noSyncFile is an os.File whose Sync does nothing: the sink as it was
// before acknowledging meant fsynced, for the cost comparison.
type noSyncFile struct{ *os.File }

func (noSyncFile) Sync() error { return nil }

// BenchmarkJSONSync measures what fsync costs the JSON-lines sink: batches
// of 1024 rows, a Flush (write + fsync + ack) every `every` batches, with
// and without the fsync. The runtime flushes once per flush interval (1s),
// which at this sink's speed is every few hundred batches.
//
//	go test ./operators/sink/file -run '^$' -bench JSONSync -benchtime 2000x
func BenchmarkJSONSync(b *testing.B) {
	mem := memory.NewGoAllocator()
	rows := make([]string, 1024)
	for i := range rows {
		rows[i] = lines[i%len(lines)]
	}
	rec := records(b, mem, rows...)
	defer rec.Release()
	for _, sync := range []bool{true, false} {
		for _, every := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("sync=%v/every=%d", sync, every), func(b *testing.B) {
				if !sync {
					old := openFile
					defer func() { openFile = old }()
					openFile = func(name string, flag int, perm fs.FileMode) (handle, error) {
						f, err := os.OpenFile(name, flag, perm)
						return noSyncFile{f}, err
					}
				}
				path := filepath.Join(b.TempDir(), "out.jsonl")
				s, err := New(op.Resources{Alloc: mem}, Config{Path: path, Format: "json"})
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					rec.Retain()
					if err := s.Write(ctx, batch.Batch{Rec: rec, Ack: batch.NewAck(nil)}); err != nil {
						b.Fatal(err)
					}
					if (i+1)%every == 0 {
						if err := s.Flush(ctx); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := s.Close(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}
