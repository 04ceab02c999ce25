package mapop

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/operators/codec/jsondec"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// pinterestClean is the map of pipelines/include/pinterest_cleaning.yaml.
const pinterestClean = `{
  title: 'nullif(title, "No Title Data Available", "", "null")',
  description: 'nullif(description, "No description available Story format", "No description available", "", "null")',
  poster_name: 'nullif(poster_name, "User Info Error", "", "null")',
  follower_count: 'parse_count(nullif(follower_count, "User Info Error", "", "null"))',
  tag_list: 'split(nullif(tag_list, "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e", "", "null"), ",")',
  is_image_or_video: 'is_image_or_video == "multi-video(story page format)" ? "story" : nullif(is_image_or_video, "", "null")',
  image_src: 'nullif(image_src, "Image src error.", "", "null")',
  downloaded: 'to_bool(downloaded)',
  save_location: 'trimPrefix(save_location, "Local save in ")',
  unique_id: 'nullif(unique_id, "", "null")',
  category: 'nullif(category, "", "null")'
}`

// discard acks and drops what the map emits.
type discard struct{ xftest.Collector }

func (d *discard) Emit(_ context.Context, b batch.Batch) error { b.Release(nil); return nil }
func (d *discard) Reject(string, string) error                 { return nil }

// BenchmarkPinterestClean measures the cleaning map alone on 1024-row
// batches of generated posts (ns/op is per batch; see rows/s). Every column
// of the map has a columnar kernel.
func BenchmarkPinterestClean(b *testing.B) { benchClean(b, false) }

// BenchmarkPinterestCleanRows is BenchmarkPinterestClean on the expr VM,
// row by row, as before the columnar kernels.
func BenchmarkPinterestCleanRows(b *testing.B) { benchClean(b, true) }

func benchClean(b *testing.B, rows bool) {
	rowPath = rows
	defer func() { rowPath = false }()
	mem := memory.NewGoAllocator()
	schema := posts.Schema()
	dec := jsondec.NewDecoder(schema, mem, jsondec.Options{})
	defer dec.Release()
	g := posts.New(1)
	var p posts.Post
	var line []byte
	for range 1024 {
		g.Next(&p)
		line = posts.AppendJSON(line[:0], &p)
		if err := dec.Append(line); err != nil {
			b.Fatal(err)
		}
	}
	rec := dec.Flush()
	defer rec.Release()
	tr, _ := xftest.Build(b, Plugin, pinterestClean, schema, mem)
	out := &discard{}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rec.Retain()
		if err := tr.Process(ctx, batch.Batch{Rec: rec}, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/row")
	if c, ok := tr.(op.Closer); ok {
		c.Close(ctx)
	}
}
