package op

import (
	"fmt"
	"testing"
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
