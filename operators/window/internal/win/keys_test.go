package win

import (
	"bytes"
	"cmp"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestKeyTable checks the key table against a map through inserts,
// lookups, removals and sweeps, with hashes that collide: all keys on one hash,
// on three, and the real one.
func TestKeyTable(t *testing.T) {
	for _, c := range []struct {
		name string
		hash func(maphash.Seed, []byte) uint64
	}{
		{"one hash", func(maphash.Seed, []byte) uint64 { return 7 }},
		{"three hashes", func(_ maphash.Seed, b []byte) uint64 { return uint64(len(b) % 3) }},
		{"same low bits", func(s maphash.Seed, b []byte) uint64 { return maphash.Bytes(s, b) &^ 0xffff }},
		{"maphash", maphash.Bytes},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			tab := newKeyTable()
			tab.hash = c.hash
			model := map[string]int32{}
			n := 3000
			if c.name != "maphash" {
				n = 300 // every lookup walks a long run
			}
			for step := range 20 * n {
				k := fmt.Sprintf("k%d", rng.IntN(n))
				if rng.IntN(500) == 0 {
					tab.sweep()
				}
				if rng.IntN(3) == 0 {
					if id, ok := model[k]; ok {
						tab.remove(id)
						delete(model, k)
					}
					continue
				}
				id, made := tab.find([]byte(k))
				want, had := model[k]
				if made == had || (had && id != want) {
					t.Fatalf("step %d: find(%s) = %d, %v; want %d, made %v", step, k, id, made, want, !had)
				}
				if !bytes.Equal(tab.key(id), []byte(k)) {
					t.Fatalf("step %d: key %d is %q, want %q", step, id, tab.key(id), k)
				}
				model[k] = id
				if tab.live != len(model) {
					t.Fatalf("step %d: %d live, want %d", step, tab.live, len(model))
				}
			}
			for k, id := range model {
				if got, made := tab.find([]byte(k)); made || got != id {
					t.Fatalf("%s: %d %v, want %d", k, got, made, id)
				}
			}
			for _, id := range model {
				tab.remove(id)
			}
			if tab.bytes() != 0 {
				t.Fatalf("%d bytes after removing every key", tab.bytes())
			}
		})
	}
}

// keyVal is one key column's value in a test: nil for null.
type keyVal = any

// TestKeyEncodingOrder: comparing encoded keys orders them as the output
// promises (column by column, nulls first, NaN before numbers), and
// decoding gives the values back, for every key kind and values that are
// prefixes of others or hold zero bytes.
func TestKeyEncodingOrder(t *testing.T) {
	strs := []keyVal{nil, "", "a", "a\x00", "a\x00\x00", "a\x00b", "ab", "b", "\x00", "\xff", "ä"}
	ints := []keyVal{nil, int64(math.MinInt64), int64(-1), int64(0), int64(1), int64(math.MaxInt64)}
	floats := []keyVal{nil, math.NaN(), math.Inf(-1), -1.5, -0.0, 0.0, 1e-300, 2.5, math.Inf(1)}
	bools := []keyVal{nil, false, true}
	types := []arrow.DataType{arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64, arrow.FixedWidthTypes.Boolean, arrow.PrimitiveTypes.Int32, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}}
	vals := [][]keyVal{strs, ints, floats, bools, {nil, int64(-7), int64(3)}, {nil, int64(-5), int64(0), int64(1 << 50)}}
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 2000
	rows := make([][]keyVal, n)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	fields := make([]arrow.Field, len(types))
	for i, ty := range types {
		fields[i] = arrow.Field{Name: fmt.Sprint("c", i), Type: ty, Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for r := range rows {
		rows[r] = make([]keyVal, len(types))
		for i := range types {
			v := vals[i][rng.IntN(len(vals[i]))]
			rows[r][i] = v
			fb := b.Field(i)
			if v == nil {
				fb.AppendNull()
				continue
			}
			switch x := fb.(type) {
			case *array.StringBuilder:
				x.Append(v.(string))
			case *array.Int64Builder:
				x.Append(v.(int64))
			case *array.Float64Builder:
				x.Append(v.(float64))
			case *array.BooleanBuilder:
				x.Append(v.(bool))
			case *array.Int32Builder:
				x.Append(int32(v.(int64)))
			case *array.TimestampBuilder:
				x.Append(arrow.Timestamp(v.(int64)))
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	views := make([]view, len(types))
	dec := keyDecoder{}
	for i := range types {
		views[i] = newView(rec.Column(i))
		dec.kinds = append(dec.kinds, kindOf(types[i]))
	}
	encs := make([][]byte, n)
	for r := range encs {
		for i := range views {
			encs[r] = encodeKey(encs[r], &views[i], int32(r))
		}
	}
	order := func(x, y keyVal) int {
		switch {
		case x == nil || y == nil:
			return cmp.Compare(btoi(x != nil), btoi(y != nil))
		}
		switch a := x.(type) {
		case string:
			return cmp.Compare(a, y.(string))
		case int64:
			return cmp.Compare(a, y.(int64))
		case float64:
			if c := cmp.Compare(a, y.(float64)); c != 0 {
				return c
			}
			// -0 and +0 are two keys (as they were before): -0 first.
			return cmp.Compare(btoi(!math.Signbit(a)), btoi(!math.Signbit(y.(float64))))
		case bool:
			return cmp.Compare(btoi(a), btoi(y.(bool)))
		}
		panic(x)
	}
	for range 20000 {
		x, y := rng.IntN(n), rng.IntN(n)
		want := 0
		for i := range types {
			if want = order(rows[x][i], rows[y][i]); want != 0 {
				break
			}
		}
		if got := bytes.Compare(encs[x], encs[y]); got != want {
			t.Fatalf("%q vs %q: encodings compare %d, values %d", rows[x], rows[y], got, want)
		}
	}
	// Decoding appends the values back.
	ob := array.NewRecordBuilder(mem, schema)
	defer ob.Release()
	for _, e := range encs {
		dec.put(e, ob.Fields())
	}
	out := ob.NewRecordBatch()
	defer out.Release()
	for i := range types {
		in, got := rec.Column(i), out.Column(i)
		if f, ok := in.(*array.Float64); ok {
			// NaN is not equal to itself: compare bits.
			g := got.(*array.Float64)
			for r := range n {
				if f.IsNull(r) != g.IsNull(r) || math.Float64bits(f.Value(r)) != math.Float64bits(g.Value(r)) {
					t.Errorf("row %d: float %v decoded as %v", r, f.Value(r), g.Value(r))
				}
			}
			continue
		}
		if !array.Equal(in, got) {
			t.Errorf("column %d decoded differently", i)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzKeyEncoding: for any two keys of (string, int64, float64, bool)
// with any nulls, comparing the encodings orders them as their values
// (nulls first, NaN first, -0 before +0), equal encodings mean equal
// values, and decoding gives the values back.
func FuzzKeyEncoding(f *testing.F) {
	f.Add("a", "a\x00", int64(1), int64(-1), 0.5, math.NaN(), true, false, uint8(0))
	f.Add("", "\x00\xff", int64(math.MinInt64), int64(math.MaxInt64), math.Copysign(0, -1), 0.0, false, false, uint8(0x55))
	f.Add("ab", "a", int64(0), int64(0), math.Inf(1), math.Inf(-1), true, true, uint8(0xff))
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	}, nil)
	f.Fuzz(func(t *testing.T, s1, s2 string, i1, i2 int64, f1, f2 float64, b1, b2 bool, nulls uint8) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		rows := [2][4]any{{s1, i1, f1, b1}, {s2, i2, f2, b2}}
		for r := range rows {
			for c := range 4 {
				if nulls>>(4*r+c)&1 != 0 {
					rows[r][c] = nil
				}
			}
		}
		b := array.NewRecordBuilder(mem, schema)
		defer b.Release()
		for _, row := range rows {
			for c, v := range row {
				if v == nil {
					b.Field(c).AppendNull()
					continue
				}
				switch x := v.(type) {
				case string:
					b.Field(c).(*array.StringBuilder).Append(x)
				case int64:
					b.Field(c).(*array.Int64Builder).Append(x)
				case float64:
					b.Field(c).(*array.Float64Builder).Append(x)
				case bool:
					b.Field(c).(*array.BooleanBuilder).Append(x)
				}
			}
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		dec := keyDecoder{kinds: []colKind{kString, kInt, kFloat, kBool}}
		var encs [2][]byte
		for r := range 2 {
			for c := range 4 {
				v := newView(rec.Column(c))
				encs[r] = encodeKey(encs[r], &v, int32(r))
			}
		}
		want := 0
		for c := range 4 {
			x, y := rows[0][c], rows[1][c]
			switch {
			case x == nil || y == nil:
				want = cmp.Compare(btoi(x != nil), btoi(y != nil))
			default:
				switch a := x.(type) {
				case string:
					want = cmp.Compare(a, y.(string))
				case int64:
					want = cmp.Compare(a, y.(int64))
				case float64:
					bb := y.(float64)
					want = cmp.Compare(a, bb)
					if want == 0 && a == a {
						want = cmp.Compare(btoi(!math.Signbit(a)), btoi(!math.Signbit(bb)))
					}
					if want == 0 && a != a && math.Float64bits(a) != math.Float64bits(bb) {
						want = 2 // two NaNs of different bits: distinct keys, any order
					}
				case bool:
					want = cmp.Compare(btoi(a), btoi(y.(bool)))
				}
			}
			if want != 0 {
				break
			}
		}
		got := bytes.Compare(encs[0], encs[1])
		if (want == 2 && got == 0) || (want != 2 && got != want) {
			t.Fatalf("%q vs %q: encodings compare %d, values %d", rows[0], rows[1], got, want)
		}
		ob := array.NewRecordBuilder(mem, schema)
		defer ob.Release()
		for _, e := range encs {
			dec.put(e, ob.Fields())
		}
		out := ob.NewRecordBatch()
		defer out.Release()
		for c := range 4 {
			for r := range 2 {
				in, o := rec.Column(c), out.Column(c)
				if in.IsNull(r) != o.IsNull(r) {
					t.Fatalf("column %d row %d: null %v decoded as %v", c, r, in.IsNull(r), o.IsNull(r))
				}
				if in.IsNull(r) {
					continue
				}
				var same bool
				switch x := in.(type) {
				case *array.Float64:
					same = math.Float64bits(x.Value(r)) == math.Float64bits(o.(*array.Float64).Value(r))
				default:
					same = in.ValueStr(r) == o.ValueStr(r)
				}
				if !same {
					t.Fatalf("column %d row %d: %s decoded as %s", c, r, in.ValueStr(r), o.ValueStr(r))
				}
			}
		}
	})
}
