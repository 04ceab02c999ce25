package jsonenc

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/operators/codec/jsondec"
)

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "t", Type: types.Timestamp, Nullable: true},
	{Name: "l", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "na\"me", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
}, nil)

func TestAppendRow(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	rb.Field(0).(*array.StringBuilder).AppendValues([]string{"a\"\\\n\x01é\u2028\xff", ""}, []bool{true, false})
	rb.Field(1).(*array.Int64Builder).AppendValues([]int64{-5, 0}, []bool{true, false})
	rb.Field(2).(*array.Float64Builder).AppendValues([]float64{1.5, math.NaN()}, nil)
	rb.Field(3).(*array.BooleanBuilder).AppendValues([]bool{true, false}, nil)
	ts := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC).UnixMicro()
	rb.Field(4).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{arrow.Timestamp(ts), 0}, []bool{true, false})
	lb := rb.Field(5).(*array.ListBuilder)
	lb.Append(true)
	lb.ValueBuilder().(*array.StringBuilder).Append("x")
	lb.ValueBuilder().(*array.StringBuilder).AppendNull()
	lb.Append(true)
	rb.Field(6).(*array.Int32Builder).AppendValues([]int32{7, 8}, nil)
	rec := rb.NewRecordBatch()
	defer rec.Release()

	e := NewEncoder(schema)
	got := []string{string(e.AppendRow(nil, rec, 0)), string(e.AppendRow(nil, rec, 1))}
	want := []string{
		`{"s":"a\"\\\n\u0001é\u2028\ufffd","i":-5,"f":1.5,"b":true,"t":"2024-01-02T03:04:05.000006Z","l":["x",null],"na\"me":7}`,
		`{"s":null,"i":null,"f":null,"b":false,"t":null,"l":[],"na\"me":8}`,
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d:\ngot  %s\nwant %s", i, got[i], want[i])
		}
		if !json.Valid([]byte(got[i])) {
			t.Errorf("row %d not valid JSON", i)
		}
	}
}

func TestFloats(t *testing.T) {
	for _, tt := range []struct {
		f    float64
		want string
	}{{0, "0"}, {1e21, "1e+21"}, {123456789, "123456789"}, {1e-7, "1e-07"}, {0.25, "0.25"}, {math.Inf(1), "null"}} {
		if got := string(appendFloat(nil, tt.f, 64)); got != tt.want {
			t.Errorf("%v: got %s want %s", tt.f, got, tt.want)
		}
	}
}

// TestRoundTrip decodes what the encoder wrote and compares.
func TestRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := jsondec.NewDecoder(schema, mem, jsondec.Options{})
	defer d.Release()
	lines := []string{
		`{"s":"héllo \"w\"\t😀","i":42,"f":-0.5,"b":false,"t":"2024-05-01T10:00:00Z","l":["a","b,c"],"na\"me":-1}`,
		`{"s":null,"i":null,"f":null,"b":null,"t":null,"l":null,"na\"me":null}`,
	}
	for _, l := range lines {
		if err := d.Append([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	rec := d.Flush()
	defer rec.Release()
	e := NewEncoder(schema)
	var buf []byte
	for i := range lines {
		buf = e.AppendRow(buf[:0], rec, i)
		if string(buf) != lines[i] {
			t.Errorf("got  %s\nwant %s", buf, lines[i])
		}
	}
}

func BenchmarkAppendRow(b *testing.B) {
	d := jsondec.NewDecoder(schema, memory.NewGoAllocator(), jsondec.Options{})
	defer d.Release()
	line := `{"s":"` + strings.Repeat("some text ", 60) + `","i":42,"f":-0.5,"b":false,"t":"2024-05-01T10:00:00Z","l":["a","b","c","d"],"na\"me":-1}`
	for i := 0; i < 64; i++ {
		if err := d.Append([]byte(line)); err != nil {
			b.Fatal(err)
		}
	}
	rec := d.Flush()
	defer rec.Release()
	e := NewEncoder(schema)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = e.AppendRow(buf[:0], rec, i%64)
	}
}
