package mapop

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/operators/codec/jsondec"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// cleanMixed mixes columnar and VM-only columns, with failures in both
// (parse_count, to_int) and a row-path column after columnar ones.
const cleanMixed = `{
  follower_count: 'parse_count(nullif(follower_count, "User Info Error", "", "null"))',
  n_len: 'len(title) + to_int(downloaded)',
  title: 'nullif(title, "No Title Data Available", "", "null")',
  dl: 'poster_name in ["abc", "12", ",", "6M"] ? to_int(poster_name) > 0 : true',
  tag_list: 'split(nullif(tag_list, "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e", "", "null"), ",")',
  cat_ok: 'category == "art" || category in ["travel", "diy-and-crafts"]',
  cat_n: 'category == "abc" || category == "1.2k" ? parse_count(category) : 0'
}`

// genPosts decodes n generated posts, 1 in 8 with an edge-case follower
// count, poster name or category, in batches of 1024 rows.
func genPosts(t testing.TB, mem memory.Allocator, n int) []arrow.RecordBatch {
	dec := jsondec.NewDecoder(posts.Schema(), mem, jsondec.Options{})
	defer dec.Release()
	g := posts.New(3)
	r := rand.New(rand.NewPCG(3, 3))
	odd := []string{"", "null", "abc", "1.2k", "6M", "12", " 7 ", "User Info Error", "ünïcode", ",", "-3"}
	var p posts.Post
	var line []byte
	var out []arrow.RecordBatch
	for i := range n {
		g.Next(&p)
		for _, s := range []*string{&p.FollowerCount, &p.PosterName, &p.Category, &p.Title} {
			if r.IntN(8) == 0 {
				*s = odd[r.IntN(len(odd))]
			}
		}
		line = posts.AppendJSON(line[:0], &p)
		if err := dec.Append(line); err != nil {
			t.Fatal(err)
		}
		if (i+1)%1024 == 0 || i == n-1 {
			out = append(out, dec.Flush())
		}
	}
	return out
}

func runMap(t *testing.T, config string, recs []arrow.RecordBatch, mem memory.Allocator, vm bool) ([][]any, []xftest.Reject) {
	rowPath = vm
	defer func() { rowPath = false }()
	tr, outS := xftest.Build(t, Plugin, config, posts.Schema(), mem)
	defer tr.(op.Closer).Close(context.Background())
	out := &xftest.Collector{Out: outS}
	for _, rec := range recs {
		rec.Retain()
		if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out); err != nil {
			t.Fatal(err)
		}
	}
	rows := out.Rows()
	out.Release()
	return rows, out.Rejects
}

// TestColumnarSameAsRows runs maps over 20,000 generated posts with the
// columnar kernels and on the VM row path, and compares rows and dead
// letters.
func TestColumnarSameAsRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	recs := genPosts(t, mem, 20_000)
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for _, config := range []string{pinterestClean, cleanMixed} {
		wantRows, wantRej := runMap(t, config, recs, mem, true)
		gotRows, gotRej := runMap(t, config, recs, mem, false)
		if len(gotRows) != len(wantRows) {
			t.Fatalf("%d rows, want %d", len(gotRows), len(wantRows))
		}
		for i := range wantRows {
			if !reflect.DeepEqual(gotRows[i], wantRows[i]) {
				t.Fatalf("row %d:\n got %v\nwant %v", i, gotRows[i], wantRows[i])
			}
		}
		if !reflect.DeepEqual(gotRej, wantRej) {
			t.Fatalf("%d rejects, want %d; first got %v want %v", len(gotRej), len(wantRej), gotRej[:min(1, len(gotRej))], wantRej[:min(1, len(wantRej))])
		}
		if len(wantRej) == 0 || len(wantRows) == 0 {
			t.Errorf("%d rows, %d rejects: the test exercises nothing", len(wantRows), len(wantRej))
		}
		t.Logf("%d rows, %d rejects, e.g. %q", len(wantRows), len(wantRej), wantRej[0].Reason)
	}
}
