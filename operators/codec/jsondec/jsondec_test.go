package jsondec

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
)

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "t", Type: types.Timestamp, Nullable: true},
	{Name: "l", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
}, nil)

// rowJSON renders row r of rec through arrow's own JSON marshalling, so the
// expectations are independent of jsonenc.
func rowJSON(t *testing.T, rec arrow.RecordBatch, r int) string {
	t.Helper()
	m := map[string]any{}
	for i, f := range rec.Schema().Fields() {
		col := rec.Column(i)
		if col.IsNull(r) {
			m[f.Name] = nil
			continue
		}
		m[f.Name] = col.GetOneForMarshal(r)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{name: "all types", in: `{"s":"x","i":1,"f":1.5,"b":true,"t":"2024-01-02T03:04:05Z","l":["a","b"],"i32":7}`,
			want: `{"b":true,"f":1.5,"i":1,"i32":7,"l":["a","b"],"s":"x","t":"2024-01-02T03:04:05Z"}`},
		{name: "missing and null", in: ` { "s" : null } `,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":null,"s":null,"t":null}`},
		{name: "unknown fields skipped", in: `{"zz":{"a":[1,2,{"b":null}],"c":"\u00e9"},"s":"y","yy":[],"xx":-1.5e3}`,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":null,"s":"y","t":null}`},
		{name: "number into string keeps text", in: `{"s":1.50}`,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":null,"s":"1.50","t":null}`},
		{name: "bool into string", in: `{"s":false}`,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":null,"s":"false","t":null}`},
		{name: "numeric strings", in: `{"i":"42","f":"2.5","b":"false","i32":" -3 "}`,
			want: `{"b":false,"f":2.5,"i":42,"i32":-3,"l":null,"s":null,"t":null}`},
		{name: "integral float into int", in: `{"i":3.0}`,
			want: `{"b":null,"f":null,"i":3,"i32":null,"l":null,"s":null,"t":null}`},
		{name: "exact beyond float64", in: `{"i":9007199254740993.0}`,
			want: `{"b":null,"f":null,"i":9007199254740993,"i32":null,"l":null,"s":null,"t":null}`},
		{name: "exponent into int", in: `{"i":-12.5e1,"i32":"2E3"}`,
			want: `{"b":null,"f":null,"i":-125,"i32":2000,"l":null,"s":null,"t":null}`},
		{name: "zero with any exponent", in: `{"i":0.0e-999}`,
			want: `{"b":null,"f":null,"i":0,"i32":null,"l":null,"s":null,"t":null}`},
		{name: "int64 limits", in: `{"i":-9223372036854775808,"i32":-2147483648}`,
			want: `{"b":null,"f":null,"i":-9223372036854775808,"i32":-2147483648,"l":null,"s":null,"t":null}`},
		{name: "escapes", in: `{"s":"a\"b\\c\/d\n\t\u00e9\ud83d\ude00\ud800x"}`,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":null,"s":"a\"b\\c/d\n\té😀�x","t":null}`},
		{name: "escaped key", in: `{"\u0073":"k"}`,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":null,"s":"k","t":null}`},
		{name: "timestamp layouts", in: `{"t":"2024-01-02 03:04:05.5"}`,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":null,"s":null,"t":"2024-01-02T03:04:05.5Z"}`},
		{name: "timestamp offset", in: `{"t":"2024-01-02T05:04:05+02:00"}`,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":null,"s":null,"t":"2024-01-02T03:04:05Z"}`},
		{name: "list with numbers and nulls", in: `{"l":["a",1,null,true]}`,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":["a","1",null,"true"],"s":null,"t":null}`},
		{name: "empty list and object", in: `{"l":[]}`,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":[],"s":null,"t":null}`},
		{name: "duplicate key last wins", in: `{"i":1,"i":2}`,
			want: `{"b":null,"f":null,"i":2,"i32":null,"l":null,"s":null,"t":null}`},
		{name: "empty object", in: `{}`,
			want: `{"b":null,"f":null,"i":null,"i32":null,"l":null,"s":null,"t":null}`},

		{name: "wrong type string", in: `{"s":"x","i":"abc"}`, err: `field 'i': expected int64, got string "abc"`},
		{name: "wrong type bool", in: `{"i":true}`, err: `field 'i': expected int64, got bool true`},
		{name: "fraction into int", in: `{"i":1.5}`, err: `field 'i': 1.5 is not a whole number (int64)`},
		{name: "tiny exponent into int", in: `{"i":1e-999}`, err: `field 'i': 1e-999 is not a whole number (int64)`},
		{name: "beyond float64 precision", in: `{"i":9007199254740993.5}`, err: `field 'i': 9007199254740993.5 is not a whole number (int64)`},
		{name: "int64 overflow", in: `{"i":9223372036854775808}`, err: `field 'i': 9223372036854775808 does not fit int64`},
		{name: "huge exponent", in: `{"i":1e400}`, err: `field 'i': 1e400 does not fit int64`},
		{name: "fraction string into int", in: `{"i":"2.5"}`, err: `field 'i': 2.5 is not a whole number (int64)`},
		{name: "long number clipped", in: `{"i":` + strings.Repeat("9", 60) + `}`, err: `field 'i': ` + strings.Repeat("9", 40) + `… does not fit int64`},
		{name: "object into string", in: `{"s":{"an": "object"}}`, err: `field 's': expected string, got an object`},
		{name: "array into string", in: `{"s":[1,2]}`, err: `field 's': expected string, got an array`},
		{name: "object in string list", in: `{"l":["a",{"b":1}]}`, err: `field 'l[]': expected string, got an object`},
		{name: "malformed object into string", in: `{"s":{"a" 1}}`, err: `invalid JSON at offset 10: unexpected '1', expected ':' after an object key`},
		{name: "int32 overflow", in: `{"i32":3000000000}`, err: `field 'i32': 3000000000 does not fit int32`},
		{name: "bad timestamp", in: `{"t":"yesterday"}`, err: `field 't': expected timestamp, got string "yesterday"`},
		{name: "string into list", in: `{"l":"a,b"}`, err: `field 'l': expected list<string>, got string "a,b"`},
		{name: "array into int", in: `{"i":[1]}`, err: `field 'i': expected int64, got an array`},
		{name: "not an object", in: `[1]`, err: `invalid JSON at offset 0: unexpected '[', expected '{' (a record must be a JSON object)`},
		{name: "empty", in: `  `, err: `invalid JSON at offset 2: empty record`},
		{name: "truncated", in: `{"s":"x`, err: `invalid JSON at offset 7: unterminated string`},
		{name: "missing colon", in: `{"s" "x"}`, err: `invalid JSON at offset 5: unexpected '"', expected ':' after an object key`},
		{name: "trailing garbage", in: `{"s":"x"} x`, err: `invalid JSON at offset 10: unexpected 'x', expected end of record`},
		{name: "trailing comma", in: `{"s":"x",}`, err: `invalid JSON at offset 9: unexpected '}', expected a string key`},
		{name: "bad literal", in: `{"b":tru}`, err: `invalid JSON at offset 5: unexpected 't', expected a value`},
		{name: "bad number", in: `{"zz":01}`, err: `invalid JSON at offset 7: unexpected '1', expected ',' or '}'`},
		{name: "control char", in: "{\"s\":\"a\x01\"}", err: `invalid JSON at offset 7: control character 0x01 in string`},
		{name: "bad escape", in: `{"s":"\x"}`, err: `invalid JSON at offset 6: bad escape \x`},
		{name: "invalid utf8", in: "{\"s\":\"\xff\"}", err: `field 's': invalid UTF-8 in string`},
		{name: "deep nesting", in: `{"zz":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, err: `invalid JSON at offset 518: nesting deeper than 512`},
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := NewDecoder(testSchema, mem, Options{})
	defer d.Release()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A good row before the test line checks that errors roll back.
			if err := d.Append([]byte(`{"s":"before","i":9,"l":["z"]}`)); err != nil {
				t.Fatal(err)
			}
			err := d.Append([]byte(tt.in))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error = %v, want %s", err, tt.err)
				}
			} else if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			rec := d.Flush()
			defer rec.Release()
			wantRows := 2
			if tt.err != "" {
				wantRows = 1
			}
			if int(rec.NumRows()) != wantRows {
				t.Fatalf("rows = %d, want %d", rec.NumRows(), wantRows)
			}
			if err := validate(rec); err != nil {
				t.Fatal(err)
			}
			if got := rowJSON(t, rec, 0); got != `{"b":null,"f":null,"i":9,"i32":null,"l":["z"],"s":"before","t":null}` {
				t.Fatalf("first row = %s", got)
			}
			if tt.err == "" {
				if got := rowJSON(t, rec, 1); got != tt.want {
					t.Fatalf("got  %s\nwant %s", got, tt.want)
				}
			}
		})
	}
}

func TestAppendText(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := NewDecoder(testSchema, mem, Options{})
	defer d.Release()
	cols := []int{0, 1, 4, 5, -1}
	if err := d.AppendText(cols, []string{"", "12", "2024-01-02", `["a","b"]`, "ignored"}); err != nil {
		t.Fatal(err)
	}
	if err := d.AppendText(cols, []string{"x", "", "", "", ""}); err != nil {
		t.Fatal(err)
	}
	if err := d.AppendText(cols, []string{"x", "zz", "", "", ""}); err == nil || err.Error() != `field 'i': expected int64, got string "zz"` {
		t.Fatalf("err = %v", err)
	}
	if err := d.AppendText(cols, []string{"x", "1", "", "a,b", ""}); err == nil || err.Error() != `field 'l': expected list<string>, got "a,b"` {
		t.Fatalf("err = %v", err)
	}
	rec := d.Flush()
	defer rec.Release()
	if rec.NumRows() != 2 {
		t.Fatalf("rows = %d", rec.NumRows())
	}
	if got, want := rowJSON(t, rec, 0), `{"b":null,"f":null,"i":12,"i32":null,"l":["a","b"],"s":"","t":"2024-01-02T00:00:00Z"}`; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if got, want := rowJSON(t, rec, 1), `{"b":null,"f":null,"i":null,"i32":null,"l":null,"s":"x","t":null}`; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestCounters(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := NewDecoder(testSchema, mem, Options{})
	defer d.Release()
	line := []byte(`{"s":"x"}`)
	for i := 0; i < 3; i++ {
		if err := d.Append(line); err != nil {
			t.Fatal(err)
		}
	}
	_ = d.Append([]byte(`{`))
	if d.Rows() != 3 || d.Bytes() != 3*len(line) {
		t.Fatalf("rows %d bytes %d", d.Rows(), d.Bytes())
	}
	rec := d.Flush()
	rec.Release()
	if d.Rows() != 0 || d.Bytes() != 0 {
		t.Fatal("counters not reset")
	}
	empty := d.Flush()
	defer empty.Release()
	if empty.NumRows() != 0 || empty.NumCols() != int64(testSchema.NumFields()) {
		t.Fatal("bad empty batch")
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"s":"x","i":1,"f":1.5,"b":true,"t":"2024-01-02T03:04:05Z","l":["a","b"],"i32":7}`,
		`{"zz":{"a":[1,2,{"b":null}]},"s":"\u00e9\ud83d\ude00"}`,
		`{"i":"12","l":[1,null,"x"]}`, `{"s":{"a":1}}`, `{`, `[]`, `{"i":1e400}`,
		pinterestPost,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		d := NewDecoder(testSchema, mem, Options{})
		defer d.Release()
		err := d.Append(line)
		if err == nil && json.Valid(line) == false {
			// The decoder is allowed to be no stricter than JSON, never looser.
			t.Fatalf("accepted invalid JSON %q", line)
		}
		if err := d.Append([]byte(`{"s":"ok","i":1}`)); err != nil {
			t.Fatalf("good line after %q: %v", line, err)
		}
		rec := d.Flush()
		defer rec.Release()
		if err := validate(rec); err != nil {
			t.Fatal(err)
		}
		want := int64(1)
		if err == nil {
			want = 2
		}
		_ = want
		for i := 0; i < int(rec.NumCols()); i++ {
			if rec.Column(i).Len() != int(rec.NumRows()) {
				t.Fatal("ragged columns")
			}
		}
		if s := rec.Column(0).(*array.String); s.Value(int(rec.NumRows())-1) != "ok" {
			t.Fatal("last row lost")
		}
	})
}

const pinterestPost = `{"index": 7528, "unique_id": "fbe53c66-3442-4773-b19e-d3ec6f54dddf", "title": "No Title Data Available", "description": "No description available Story format", "poster_name": "User Info Error", "follower_count": "User Info Error", "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e", "is_image_or_video": "multi-video(story page format)", "image_src": "Image src error.", "downloaded": 0, "save_location": "Local save in /data/mens-fashion", "category": "mens-fashion", "ingested_at": "2024-05-01T10:00:00Z", "extra": {"nested": [1, 2, 3]}, "title2": "Caf\u00e9 ideas \u2014 50 DIY crafts for the holidays that you will love", "more": "padding padding padding padding padding"}`

var pinSchema = func() *arrow.Schema {
	var fs []arrow.Field
	for _, n := range []string{"index", "unique_id", "title", "description", "poster_name", "follower_count", "tag_list", "is_image_or_video", "image_src", "downloaded", "save_location", "category"} {
		t := arrow.DataType(arrow.BinaryTypes.String)
		if n == "index" || n == "downloaded" {
			t = arrow.PrimitiveTypes.Int64
		}
		fs = append(fs, arrow.Field{Name: n, Type: t, Nullable: true})
	}
	return arrow.NewSchema(fs, nil)
}()

func BenchmarkDecodePinterest(b *testing.B) {
	line := []byte(pinterestPost)
	d := NewDecoder(pinSchema, memory.NewGoAllocator(), Options{})
	defer d.Release()
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Append(line); err != nil {
			b.Fatal(err)
		}
		if d.Rows() == 1024 {
			d.Flush().Release()
		}
	}
}

func validate(rec arrow.RecordBatch) error {
	for i := 0; i < int(rec.NumCols()); i++ {
		if rec.Column(i).Len() != int(rec.NumRows()) {
			return fmt.Errorf("column %d has %d rows, want %d", i, rec.Column(i).Len(), rec.NumRows())
		}
		if s, ok := rec.Column(i).(*array.String); ok {
			if err := s.ValidateFull(); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestExactInt checks exactInt against math/big on hand-picked edges.
func TestExactInt(t *testing.T) {
	for _, in := range []string{
		"0", "-0", "+7", "007", "1.0", "1.5", "1e-999", "0e999999999999", "1e18", "1e19", "9.223372036854775807e18",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"9007199254740993.0", "9007199254740993.000000000000000000000001", "12.3400e2", "1234e-2", "123400e-2",
		"0.000000000000000000000000000001e30", "100000000000000000000e-2", "18446744073709551615", "18446744073709551616",
		"1.", ".5", "1e", "1e+", "--1", "1x", "", "-", "0x10", "Inf", "1_000",
	} {
		v, r := exactInt([]byte(in))
		want, wr := bigInt(in)
		if r != wr || (r == intOK && v != want) {
			t.Errorf("exactInt(%q) = %d, %d; want %d, %d", in, v, r, want, wr)
		}
	}
}

// bigInt is exactInt's reference: the number as an exact rational.
func bigInt(s string) (int64, intResult) {
	if !numberSyntax(s) {
		return 0, intSyntax
	}
	// big.Rat parses huge exponents slowly; anything beyond 10^±400 with
	// fewer digits than that is a fraction or out of range.
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	if exp != "" {
		e, err := strconv.Atoi(exp)
		if err != nil || e > 400 || e < -400 {
			if allZero([]byte(strings.NewReplacer("-", "", "+", "", ".", "").Replace(mant))) {
				return 0, intOK
			}
			if e > 0 && err == nil || (err != nil && !strings.HasPrefix(exp, "-")) {
				return 0, intRange
			}
			return 0, intFraction
		}
	}
	r, ok := new(big.Rat).SetString(strings.TrimPrefix(s, "+"))
	if !ok {
		return 0, intSyntax
	}
	if !r.IsInt() {
		return 0, intFraction
	}
	if !r.Num().IsInt64() {
		return 0, intRange
	}
	return r.Num().Int64(), intOK
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}

// numberSyntax is exactInt's grammar: [+-] digits [. digits] [e [+-] digits],
// with digits on at least one side of the point.
var numberRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

func numberSyntax(s string) bool { return numberRE.MatchString(s) }

// FuzzExactInt compares exactInt with exact rational arithmetic.
func FuzzExactInt(f *testing.F) {
	for _, s := range []string{"1", "-1.5", "1e-999", "9007199254740993.0", "9223372036854775807", "1.0e1", "0.0", "12e-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 200 {
			return
		}
		v, r := exactInt([]byte(s))
		want, wr := bigInt(s)
		if r != wr || (r == intOK && v != want) {
			t.Fatalf("exactInt(%q) = %d, %d; want %d, %d", s, v, r, want, wr)
		}
	})
}

// genPosts returns n posts as the emulator and the Kafka benchmark write
// them (operators/source/generate/posts: shuffled key order, missing and
// extra fields, non-ASCII text).
func genPosts(n int) [][]byte {
	g := posts.New(1)
	var p posts.Post
	lines := make([][]byte, n)
	for i := range lines {
		g.Next(&p)
		lines[i] = posts.AppendJSON(nil, &p)
	}
	return lines
}

// BenchmarkDecodePosts decodes generated posts into batches of 1024 rows,
// as the kafka source does (one op = one post).
func BenchmarkDecodePosts(b *testing.B) {
	lines := genPosts(4096)
	var size int64
	for _, l := range lines {
		size += int64(len(l))
	}
	d := NewDecoder(pinSchema, memory.NewGoAllocator(), Options{})
	defer d.Release()
	b.ReportAllocs()
	b.SetBytes(size / int64(len(lines)))
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := d.Append(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
		if d.Rows() == 1024 {
			d.Flush().Release()
		}
	}
	reportCPU(b, cpu0)
}

// cpuTime is the process's CPU time (user and system, every thread, the
// garbage collector's included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU nanoseconds per op beside the wall-clock ns/op:
// on a shared machine it varies less with the load.
func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime()-since)/float64(b.N), "cpu-ns/op")
}

// TestStringScanEveryOffset puts each byte the string scan stops at (a
// quote, a backslash escape, a control byte) and bytes next to them in value
// ('!', '#', ' ', 0x7f, non-ASCII) at every offset of the eight-byte words it
// reads, and compares the result with encoding/json's.
func TestStringScanEveryOffset(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	d := NewDecoder(schema, memory.NewGoAllocator(), Options{})
	defer d.Release()
	specials := []string{`\"`, `\\`, `\n`, `\u00e9`, `\ud83d\ude00`, "!", "#", " ", "\x7f", "é", "\x01", "\x1f", `"`, `\x`}
	for _, sp := range specials {
		for pre := 0; pre < 20; pre++ {
			for post := 0; post < 10; post++ {
				line := `{"s":"` + strings.Repeat("a", pre) + sp + strings.Repeat("b", post) + `"}`
				var want struct{ S *string }
				wantErr := json.Unmarshal([]byte(line), &want)
				err := d.Append([]byte(line))
				if (err != nil) != (wantErr != nil) {
					t.Fatalf("%q: error %v, encoding/json: %v", line, err, wantErr)
				}
				if err != nil {
					continue
				}
				rec := d.Flush()
				got := rec.Column(0).(*array.String).Value(0)
				rec.Release()
				if got != *want.S {
					t.Fatalf("%q: got %q, want %q", line, got, *want.S)
				}
			}
		}
	}
}

// TestKeyLookup checks the column-name table with names that share their
// length and first, middle and last bytes (the bytes it hashes), duplicate
// names (the first wins), an empty name and unknown keys.
func TestKeyLookup(t *testing.T) {
	var fields []arrow.Field
	names := []string{"a1x1a", "a2x2a", "a3x3a", "a4x4a", "", "k", "a1x1a", "kk", "a5x5a", "a6x6a", "a7x7a", "a8x8a", "a9x9a"}
	for _, n := range names {
		fields = append(fields, arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Int64, Nullable: true})
	}
	d := NewDecoder(arrow.NewSchema(fields, nil), memory.NewGoAllocator(), Options{})
	defer d.Release()
	for i, n := range names {
		want := i
		if n == "a1x1a" {
			want = 0
		}
		if got := d.lookup([]byte(n)); got != want {
			t.Errorf("lookup(%q) = %d, want %d", n, got, want)
		}
	}
	for _, n := range []string{"a0x0a", "a1x1b", "kkk", "K", "a1x1"} {
		if got := d.lookup([]byte(n)); got != -1 {
			t.Errorf("lookup(%q) = %d, want -1", n, got)
		}
	}
	if err := d.Append([]byte(`{"a9x9a":9,"":5,"a1x1a":1,"zz":3,"kk":2}`)); err != nil {
		t.Fatal(err)
	}
	rec := d.Flush()
	defer rec.Release()
	for i, want := range map[int]int64{12: 9, 4: 5, 0: 1, 7: 2} {
		if got := rec.Column(i).(*array.Int64).Value(0); got != want {
			t.Errorf("column %d (%q) = %d, want %d", i, names[i], got, want)
		}
	}
	if !rec.Column(6).IsNull(0) {
		t.Error("the second column named a1x1a got a value")
	}
}

// TestStringColumnsAcrossBatches decodes batches of growing and shrinking
// sizes whose string values are present, null, missing or long, in
// patterns that start and end batches with nulls, and checks every value,
// every null and the arrays' validity.
func TestStringColumnsAcrossBatches(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "b", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := NewDecoder(schema, mem, Options{})
	defer d.Release()
	row := 0
	for _, n := range []int{1, 0, 3, 1000, 10, 5000, 2, 70, 1} {
		type want struct {
			s, b  string
			sNull bool
			bNull bool
		}
		var wants []want
		for k := 0; k < n; k++ {
			row++
			var w want
			var line string
			switch {
			case row%7 == 0:
				w.sNull, w.bNull = true, true
				line = fmt.Sprintf(`{"i":%d}`, row)
			case row%5 == 0:
				w.sNull = true
				w.b = strings.Repeat("x", row%300)
				line = fmt.Sprintf(`{"s":null,"b":%q,"i":%d}`, w.b, row)
			case k == 0 || k == n-1:
				w.s, w.bNull = "edge", true
				line = fmt.Sprintf(`{"b":null,"s":"edge","i":%d}`, row)
			default:
				w.s = strings.Repeat("é", row%50) + fmt.Sprint(row)
				w.b = fmt.Sprint(row)
				line = fmt.Sprintf(`{"s":%q,"b":%q,"i":%d}`, w.s, w.b, row)
			}
			if err := d.Append([]byte(line)); err != nil {
				t.Fatal(err)
			}
			wants = append(wants, w)
		}
		rec := d.Flush()
		if err := validate(rec); err != nil {
			t.Fatal(err)
		}
		if int(rec.NumRows()) != n {
			t.Fatalf("batch of %d rows has %d", n, rec.NumRows())
		}
		sc, bc := rec.Column(0).(*array.String), rec.Column(1).(*array.Binary)
		if err := bc.ValidateFull(); err != nil {
			t.Fatal(err)
		}
		for k, w := range wants {
			if sc.IsNull(k) != w.sNull || bc.IsNull(k) != w.bNull {
				t.Fatalf("batch of %d, row %d: nulls %v %v, want %v %v", n, k, sc.IsNull(k), bc.IsNull(k), w.sNull, w.bNull)
			}
			if !w.sNull && sc.Value(k) != w.s {
				t.Fatalf("batch of %d, row %d: s = %q, want %q", n, k, sc.Value(k), w.s)
			}
			if !w.bNull && string(bc.Value(k)) != w.b {
				t.Fatalf("batch of %d, row %d: b = %q, want %q", n, k, bc.Value(k), w.b)
			}
		}
		rec.Release()
	}
}
