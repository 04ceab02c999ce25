package arrowx

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/types"
)

func mustType(t *testing.T, name string) arrow.DataType {
	t.Helper()
	dt, err := types.Parse(name)
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

// TestRoundTrip appends Go values through an Appender and reads them back
// through a Getter.
func TestRoundTrip(t *testing.T) {
	ts := time.Date(2021, 3, 4, 5, 6, 7, 8000, time.UTC)
	cases := []struct {
		typ  string
		in   []any
		want []any
	}{
		{"int64", []any{1, int64(2), int32(3), 4.0, nil}, []any{1, 2, 3, 4, nil}},
		{"int32", []any{1, int64(-2), nil}, []any{1, -2, nil}},
		{"float64", []any{1.5, 2, int64(3), nil}, []any{1.5, 2.0, 3.0, nil}},
		{"string", []any{"a", "", []byte("b"), nil}, []any{"a", "", "b", nil}},
		{"bool", []any{true, false, nil}, []any{true, false, nil}},
		{"timestamp", []any{ts, ts.In(time.FixedZone("x", 3600)), "2021-03-04T05:06:07.000008Z", nil}, []any{ts, ts, ts, nil}},
		{"binary", []any{[]byte("ab"), "cd", nil}, []any{[]byte("ab"), []byte("cd"), nil}},
		{"list<string>", []any{[]string{"a", "b"}, []string{}, []any{"c", nil}, nil}, []any{[]string{"a", "b"}, []string{}, []string{"c", ""}, nil}},
		{"list<int64>", []any{[]int{1, 2}, []int64{3}, []any{4, 5.0}, nil}, []any{[]int{1, 2}, []int{3}, []int{4, 5}, nil}},
		{"list<float64>", []any{[]float64{1.5}, []int{2}, nil}, []any{[]float64{1.5}, []float64{2}, nil}},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			dt := mustType(t, c.typ)
			b := array.NewBuilder(mem, dt)
			defer b.Release()
			app := NewAppender(b)
			for _, v := range c.in {
				if err := app(v); err != nil {
					t.Fatalf("append %v: %v", v, err)
				}
			}
			arr := b.NewArray()
			defer arr.Release()
			get := NewGetter(arr)
			for i, want := range c.want {
				got := get(i)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("row %d: got %#v, want %#v", i, got, want)
				}
				if got != nil && reflect.TypeOf(got) != GoType(dt) {
					t.Errorf("row %d: type %T, GoType says %v", i, got, GoType(dt))
				}
			}
		})
	}
}

func TestAppendMismatch(t *testing.T) {
	cases := []struct {
		typ  string
		v    any
		want string
	}{
		{"int64", "abc", `cannot store string "abc" in int64 column`},
		{"int64", 1.5, `cannot store float64 1.5 in int64 column`},
		{"int32", 1 << 40, `cannot store int 1099511627776 in int32 column: out of range`},
		{"float64", true, `cannot store bool true in float64 column`},
		{"string", 12, `cannot store int 12 in string column`},
		{"bool", "true", `cannot store string "true" in bool column`},
		{"timestamp", "yesterday", `cannot store string "yesterday" in timestamp column: not an RFC 3339 time`},
		{"timestamp", 5, `cannot store int 5 in timestamp column`},
		{"list<string>", []int{1}, `cannot store []int [1] in list<string> column`},
		{"list<int64>", []any{1, "x"}, `cannot store string "x" in list<int64> column`},
		{"list<string>", "a", `cannot store string "a" in list<string> column`},
	}
	for _, c := range cases {
		t.Run(c.typ+"/"+c.want, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			b := array.NewBuilder(mem, mustType(t, c.typ))
			defer b.Release()
			err := NewAppender(b)(c.v)
			if err == nil || err.Error() != c.want {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if b.Len() != 0 {
				t.Errorf("a failed append left %d rows", b.Len())
			}
		})
	}
}

func TestTypes(t *testing.T) {
	for _, name := range []string{"int64", "float64", "string", "bool", "timestamp", "binary", "list<string>", "list<int64>", "list<float64>"} {
		dt := mustType(t, name)
		back, ok := ArrowType(GoType(dt))
		if !ok || !arrow.TypeEqual(back, dt) {
			t.Errorf("%s: GoType %v maps back to %v, %v", name, GoType(dt), back, ok)
		}
	}
	if got := GoType(mustType(t, "int32")); got != reflect.TypeFor[int]() {
		t.Errorf("int32: %v", got)
	}
	if _, ok := ArrowType(reflect.TypeFor[any]()); ok {
		t.Error("any must have no Arrow type")
	}
	if _, ok := ArrowType(nil); ok {
		t.Error("nil must have no Arrow type")
	}
	if got := GoType(arrow.FixedWidthTypes.Date32); got.Kind() != reflect.Interface {
		t.Errorf("date32: %v", got)
	}
}

// TestFallback reads a column outside the mapping.
func TestFallback(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewUint8Builder(mem)
	defer b.Release()
	if err := NewAppender(b)(nil); err != nil {
		t.Fatal(err)
	}
	if err := NewAppender(b)(1); err == nil || !strings.Contains(err.Error(), "unsupported column type") {
		t.Fatalf("got %v", err)
	}
	b.Append(7)
	arr := b.NewArray()
	defer arr.Release()
	get := NewGetter(arr)
	if get(0) != nil || fmt.Sprint(get(1)) != "7" {
		t.Errorf("got %v %v", get(0), get(1))
	}
}

func BenchmarkAppendGet(b *testing.B) {
	mem := memory.NewGoAllocator()
	bld := array.NewInt64Builder(mem)
	defer bld.Release()
	app := NewAppender(bld)
	b.ReportAllocs()
	for b.Loop() {
		for i := range 1024 {
			_ = app(i)
		}
		arr := bld.NewArray()
		get := NewGetter(arr)
		for i := range 1024 {
			_ = get(i)
		}
		arr.Release()
	}
}

func TestText(t *testing.T) {
	ts := time.Date(2026, 11, 26, 1, 2, 3, 500, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		in   any
		want string
		ok   bool
	}{
		{"a", "a", true}, {[]byte("b"), "b", true}, {42, "42", true}, {int64(-7), "-7", true},
		{1.5, "1.5", true}, {1e21, "1e+21", true}, {true, "true", true},
		{ts, "2026-11-26T00:02:03.0000005Z", true}, {nil, "", false}, {[]string{"x"}, "", false},
	} {
		if got, ok := Text(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("Text(%#v) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
