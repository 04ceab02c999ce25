package lake

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/operators/codec/jsondec"
	"github.com/flowrun/flowrun/operators/lakeio"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// postSchema is pipelines/pinterest_lake.yaml's post.
var postSchema = arrow.NewSchema([]arrow.Field{
	{Name: "index", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "unique_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "title", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "description", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "poster_name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "follower_count", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "tag_list", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "is_image_or_video", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "image_src", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "downloaded", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "save_location", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ingested_at", Type: types.Timestamp, Nullable: true},
}, nil)

// postBatches decodes n generated posts (stamped 40ms apart: 100,000 posts span two hour folders) into
// batches of size rows, as the Kafka source would emit them.
func postBatches(b *testing.B, n, size int) (recs []arrow.RecordBatch, jsonBytes int64) {
	b.Helper()
	gen := posts.New(42)
	var p posts.Post
	d := jsondec.NewDecoder(postSchema, memory.DefaultAllocator, jsondec.Options{})
	defer d.Release()
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	var line []byte
	for i := 0; i < n; i++ {
		gen.Next(&p)
		line = posts.AppendJSON(line[:0], &p)
		line = append(line[:len(line)-1], `,"ingested_at":"`+t0.Add(time.Duration(i)*40*time.Millisecond).Format(time.RFC3339)+`"}`...)
		jsonBytes += int64(len(line))
		if err := d.Append(line); err != nil {
			b.Fatal(err)
		}
		if (i+1)%size == 0 || i == n-1 {
			recs = append(recs, d.Flush())
		}
	}
	return recs, jsonBytes
}

const benchPosts = 100_000

// BenchmarkWrite compares the lake sink (partitioned by day and hour,
// zstd, acks on commit) with arrow-go's pqarrow writing the same batches
// to one zstd file: the lake's overhead is partitioning, file rolls and
// commits.
func BenchmarkWrite(b *testing.B) {
	recs, jsonBytes := postBatches(b, benchPosts, 8192)
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	report := func(b *testing.B, out int64) {
		s := b.Elapsed().Seconds() / float64(b.N)
		b.ReportMetric(benchPosts/s, "rows/s")
		b.ReportMetric(float64(jsonBytes)/1e6/s, "inputMB/s")
		b.ReportMetric(float64(out)/1e6, "outMB")
	}
	b.Run("lake", func(b *testing.B) {
		b.ReportAllocs()
		var out int64
		for i := 0; i < b.N; i++ {
			dir := filepath.Join(b.TempDir(), "lake")
			ctor, errs := prepWith(b, `{path: "`+dir+`", partition_by: {dt: 'ingested_at.Format("2006-01-02")', hour: 'ingested_at.Format("15")'}}`, postSchema)
			if len(errs) > 0 {
				b.Fatal(errs.Error())
			}
			si, err := ctor(op.Resources{Node: "lake"})
			if err != nil {
				b.Fatal(err)
			}
			s := si.(*Sink)
			for j, r := range recs {
				r.Retain()
				ack := batch.NewAck(nil).WithPositions(batch.Position{Topic: "posts", Partition: 0, First: int64(j * 8192), Last: int64(j*8192 + int(r.NumRows()) - 1)})
				if err := s.Write(context.Background(), batch.Batch{Rec: r, Ack: ack}); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			out = dirBytes(b, dir)
		}
		report(b, out)
	})
	b.Run("pqarrow", func(b *testing.B) {
		b.ReportAllocs()
		var out int64
		for i := 0; i < b.N; i++ {
			st, _ := lakeio.Open(context.Background(), b.TempDir(), lakeio.S3Options{})
			up, err := st.Create(context.Background(), "")
			if err != nil {
				b.Fatal(err)
			}
			pw, err := lakeio.NewWriter(postSchema, up, lakeio.WriterOptions{Compression: "zstd"})
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range recs {
				if err := pw.WriteBuffered(r); err != nil {
					b.Fatal(err)
				}
			}
			if err := pw.Close(); err != nil {
				b.Fatal(err)
			}
			out = up.Written()
			if err := up.Commit(context.Background(), "all.parquet"); err != nil {
				b.Fatal(err)
			}
		}
		report(b, out)
	})
}

func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}
