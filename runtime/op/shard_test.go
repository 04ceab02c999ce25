package op

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/spec"
)

func TestParseShard(t *testing.T) {
	tests := []struct {
		in   string
		want Shard
		err  bool
	}{
		{"2/4", Shard{2, 4}, false},
		{" 1/1 ", Shard{1, 1}, false},
		{"0/4", Shard{}, true},
		{"5/4", Shard{}, true},
		{"2", Shard{}, true},
		{"a/b", Shard{}, true},
		{"1/0", Shard{}, true},
	}
	for _, tt := range tests {
		got, err := ParseShard(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestShardOwnsExactlyOnce(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 16} {
		count := make([]int, n)
		for k := 0; k < 1000; k++ {
			key := fmt.Sprintf("dt=2026-11-%02d/hour=%02d/pins-p%d-%d.parquet", k%30, k%24, k%7, k)
			owners := 0
			for i := 1; i <= n; i++ {
				if (Shard{Index: i, Count: n}).Owns(key) {
					owners++
					count[i-1]++
				}
			}
			if owners != 1 {
				t.Fatalf("N=%d: %s owned by %d shards", n, key, owners)
			}
		}
		for i, c := range count {
			if c < 1000/n/2 {
				t.Errorf("N=%d: shard %d owns %d of 1000 keys: badly spread", n, i+1, c)
			}
		}
	}
	if !(Shard{}).Owns("x") {
		t.Fatal("the zero Shard must own everything")
	}
}

// TestBucketAgreesWithOwns: the expression bucket(key, N) == I-1, with
// which pipelines split rows by key, picks the same shard as Owns, with
// which the lake source splits files; and Vars gives a run its shard.
func TestBucketAgreesWithOwns(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	keys := make([]string, 500)
	for i := range keys {
		keys[i] = fmt.Sprintf("%08x-post-%d", i*7919, i)
		b.Field(0).(*array.StringBuilder).Append(keys[i])
	}
	rec := b.NewRecordBatch()
	b.Release()
	defer rec.Release()
	for _, n := range []int{1, 2, 3, 7} {
		for i := 1; i <= n; i++ {
			sh := Shard{Index: i, Count: n}
			v := sh.Vars()
			src := "bucket(k, " + v[ShardCountVar] + ") == " + v[ShardIndexVar] + " - 1"
			p, errs := exprc.Compile(spec.ExprSrc{Src: src}, schema)
			if errs != nil {
				t.Fatal(errs)
			}
			ev := p.NewEvaluator()
			ev.Bind(rec)
			for r, k := range keys {
				got, err := ev.Eval(r)
				if err != nil {
					t.Fatal(err)
				}
				if got != sh.Owns(k) {
					t.Fatalf("%s for %q: %v, Owns %v", src, k, got, sh.Owns(k))
				}
			}
		}
	}
	if v := (Shard{}).Vars(); v[ShardIndexVar] != "1" || v[ShardCountVar] != "1" {
		t.Errorf("unsharded vars %v, want 1 of 1", v)
	}
}
