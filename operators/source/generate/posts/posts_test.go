package posts

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestDeterministic(t *testing.T) {
	a, b := New(42), New(42)
	var pa, pb Post
	var ja, jb []byte
	for range 2000 {
		a.Next(&pa)
		b.Next(&pb)
		ja = AppendJSON(ja[:0], &pa)
		jb = AppendJSON(jb[:0], &pb)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("same seed, different posts:\n%s\n%s", ja, jb)
		}
	}
	c := New(43)
	var pc Post
	c.Next(&pc)
	New(42).Next(&pa)
	if pa.UniqueID == pc.UniqueID {
		t.Fatal("different seeds gave the same first id")
	}
}

func TestShapesAndRates(t *testing.T) {
	const n = 20000
	g := New(1)
	var p Post
	var buf []byte
	total := 0
	counts := map[string]int{}
	ids := map[string]bool{}
	cats := map[string]bool{}
	for range n {
		g.Next(&p)
		buf = AppendJSON(buf[:0], &p)
		total += len(buf)
		var m map[string]any
		if err := json.Unmarshal(buf, &m); err != nil {
			t.Fatalf("invalid JSON %s: %v", buf, err)
		}
		if _, ok := m["index"]; !ok {
			t.Fatalf("no index: %s", buf)
		}
		dirty := false
		for _, ph := range []string{NoTitle, NoDescriptionStory, UserInfoError, NoTags, MultiVideo, ImageSrcError} {
			if bytes.Contains(buf, []byte(ph)) {
				counts[ph]++
				dirty = true
			}
		}
		if dirty {
			counts["dirty"]++
		}
		if p.ImageSrc == ImageSrcError && p.Downloaded != 0 {
			t.Fatal("image src error must have downloaded 0")
		}
		if strings.HasSuffix(p.Description, "…\u00a0") {
			counts["cut"]++
		}
		if p.MissingUniqueID || p.MissingCategory {
			counts["missing"]++
			if _, ok := m["unique_id"]; ok && p.MissingUniqueID {
				t.Fatal("missing unique_id written")
			}
		} else {
			if ids[p.UniqueID] {
				counts["dup"]++
			}
			ids[p.UniqueID] = true
			cats[p.Category] = true
			if p.SaveLocation != "Local save in /data/"+p.Category {
				t.Fatalf("save_location %q", p.SaveLocation)
			}
		}
		if p.ExtraKey != "" {
			counts["extra"]++
		}
		if p.Order != [NumCols]uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11} {
			counts["reordered"]++
		}
	}
	avg := total / n
	t.Logf("avg %d bytes, counts %v", avg, counts)
	if avg < 600 || avg > 900 {
		t.Errorf("average record size %d, want ~740", avg)
	}
	within := func(k string, lo, hi float64) {
		r := float64(counts[k]) / n
		if r < lo || r > hi {
			t.Errorf("%s rate %.4f not in [%v, %v]", k, r, lo, hi)
		}
	}
	within("dirty", 0.05, 0.10)
	within("cut", 0.28, 0.38)
	within("dup", 0.005, 0.02)
	within("missing", 0.002, 0.01)
	within("extra", 0.003, 0.02)
	within("reordered", 0.2, 0.4)
	if len(cats) != len(Categories) {
		t.Errorf("categories seen %d", len(cats))
	}
}

func TestAppendTo(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewRecordBuilder(mem, Schema())
	defer b.Release()
	g := New(7)
	for range 3000 {
		g.AppendTo(b)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	if rec.NumRows() != 3000 || rec.NumCols() != NumCols {
		t.Fatalf("got %d rows %d cols", rec.NumRows(), rec.NumCols())
	}
	nulls := rec.Column(ColUniqueID).NullN() + rec.Column(ColCategory).NullN()
	if nulls == 0 {
		t.Error("expected some null unique_id/category")
	}
	// Same seed gives the same Arrow rows as the JSON path.
	g2 := New(7)
	var p Post
	g2.Next(&p)
	if got := rec.Column(ColTitle).(*array.String).Value(0); got != p.Title {
		t.Errorf("title %q, want %q", got, p.Title)
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	b.ReportAllocs()
	g := New(1)
	var p Post
	var buf []byte
	for b.Loop() {
		g.Next(&p)
		buf = AppendJSON(buf[:0], &p)
	}
	b.SetBytes(int64(len(buf)))
}
