package lakeio

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/flowrun/flowrun/runtime/batch"
)

func TestNames(t *testing.T) {
	tests := []struct {
		n    Name
		base string
	}{
		{Name{"pinterest.posts", 3, 0, 41}, "pinterest.posts-p3-0000000000000000000-0000000000000000041.parquet"},
		{Name{"a-p1-b", 12, 9_000_000_000_000_000_000, 9_223_372_036_854_775_807}, "a-p1-b-p12-9000000000000000000-9223372036854775807.parquet"},
	}
	for _, tt := range tests {
		if got := tt.n.String(); got != tt.base {
			t.Errorf("%+v: %s, want %s", tt.n, got, tt.base)
		}
		if got, ok := ParseName(tt.base); !ok || got != tt.n {
			t.Errorf("ParseName(%s) = %+v %v", tt.base, got, ok)
		}
	}
	for _, bad := range []string{"part-1-000001.parquet", "t-p1-1-2.parquet", "t-p1-0000000000000000001-0000000000000000002.parquet.tmp", ".x"} {
		if n, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) = %+v, want no match", bad, n)
		}
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ in, out string }{
		{"2026-11-25", "2026-11-25"},
		{"a/b=c%d", "a%2Fb%3Dc%25d"},
		{"new\nline", "new%0Aline"},
		{"é ok", "é ok"},
	}
	for _, tt := range tests {
		if got := EscapeValue(tt.in); got != tt.out {
			t.Errorf("EscapeValue(%q) = %q, want %q", tt.in, got, tt.out)
		}
		if got := UnescapeValue(tt.out); got != tt.in {
			t.Errorf("UnescapeValue(%q) = %q, want %q", tt.out, got, tt.in)
		}
	}
	if k, v, ok := SplitPartition("dt=a%2Fb/"); !ok || k != "dt" || v != "a/b" {
		t.Errorf("SplitPartition: %q %q %v", k, v, ok)
	}
}

func TestSegments(t *testing.T) {
	segs := []Segment{{0, 9, 4}, {10, 19, 10}}
	got, err := ParseSegments(FormatSegments(segs))
	if err != nil || len(got) != 2 || got[0] != segs[0] || got[1] != segs[1] {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"1:2", "a:1:2", "1:2:3,", "1:2:3:4"} {
		if _, err := ParseSegments(bad); err == nil {
			t.Errorf("ParseSegments(%q) accepted", bad)
		}
	}
}

func TestRecords(t *testing.T) {
	ctx := context.Background()
	st, _ := Open(ctx, filepath.Join(t.TempDir(), "lake"), S3Options{})
	r, err := LoadRecords(ctx, st, RecordsDir("lake"))
	if err != nil || len(r.Files) != 0 {
		t.Fatalf("empty: %v %v", r.Files, err)
	}
	a := RecordFile{Key: "dt=1/x.parquet", Name: Name{"t", 0, 0, 9}, At: 5}
	b := RecordFile{Key: "dt=1/y.parquet", Name: Name{"t", 0, 10, 19}, Source: "posts", At: 6}
	m := RecordFile{Key: "dt=1/merged-1-000001.parquet", At: 7, Ranges: []batch.Position{
		{Source: "posts", Topic: "t", Partition: 0, First: 20, Last: 29}, {Source: "posts", Topic: "t", Partition: 1, First: 0, Last: 4}}}
	if err := r.Append(ctx, []RecordFile{a}); err != nil {
		t.Fatal(err)
	}
	if err := r.Append(ctx, []RecordFile{b, m}); err != nil {
		t.Fatal(err)
	}
	r2, err := LoadRecords(ctx, st, RecordsDir("lake"))
	if err != nil || len(r2.Files) != 3 || !reflect.DeepEqual(r2.Files, []RecordFile{a, b, m}) || r2.Count() != 2 {
		t.Fatalf("reloaded: %+v %v", r2.Files, err)
	}
	if err := r2.Compact(ctx, []RecordFile{b}); err != nil {
		t.Fatal(err)
	}
	r3, _ := LoadRecords(ctx, st, RecordsDir("lake"))
	if len(r3.Files) != 1 || !reflect.DeepEqual(r3.Files[0], b) || r3.Count() != 1 {
		t.Fatalf("compacted: %+v, %d records", r3.Files, r3.Count())
	}
}

func FuzzParseName(f *testing.F) {
	f.Add("pinterest.posts-p3-0000000000000000000-0000000000000000041.parquet")
	f.Add("x-p-1-2.parquet")
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := ParseName(s)
		if ok && n.String() != s {
			t.Fatalf("ParseName(%q) = %+v, which prints as %q", s, n, n.String())
		}
	})
}

func FuzzSegments(f *testing.F) {
	f.Add("0:9:4,10:19:10")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		segs, err := ParseSegments(s)
		if err != nil {
			return
		}
		again, err := ParseSegments(FormatSegments(segs))
		if err != nil || len(again) != len(segs) {
			t.Fatalf("%q: round trip %v %v", s, again, err)
		}
	})
}

func FuzzEscape(f *testing.F) {
	f.Add("a/b=c%d")
	f.Fuzz(func(t *testing.T, s string) {
		if got := UnescapeValue(EscapeValue(s)); got != s {
			t.Fatalf("%q → %q → %q", s, EscapeValue(s), got)
		}
	})
}

func TestCover(t *testing.T) {
	one := RecordFile{Key: "x", Name: Name{"t", 2, 5, 9}, Source: "posts"}
	if got := one.Cover(); !reflect.DeepEqual(got, []batch.Position{{Source: "posts", Topic: "t", Partition: 2, First: 5, Last: 9}}) || one.Merged() {
		t.Fatalf("one partition: %+v", got)
	}
	if got := (RecordFile{Key: "part-1.parquet"}).Cover(); got != nil {
		t.Fatalf("no positions: %+v", got)
	}
}

func TestMergedSegments(t *testing.T) {
	segs := []MergedSegment{
		{Rows: 3, Pos: []batch.Position{{Source: "a", Topic: "t", Partition: 0, First: 0, Last: 9}, {Source: "b", Topic: "u", Partition: 4, First: 7, Last: 7}}},
		{Rows: 0, Pos: []batch.Position{{Topic: "t", Partition: 1, First: 1, Last: 2}}},
	}
	got, err := ParseMergedSegments(FormatMergedSegments(segs))
	if err != nil || !reflect.DeepEqual(got, segs) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "[", `[{"rows":-1}]`, `{"rows":1}`} {
		if _, err := ParseMergedSegments(bad); err == nil {
			t.Errorf("ParseMergedSegments(%q) accepted", bad)
		}
	}
}
