package exprc

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/operators/codec/jsondec"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
)

// pinterestExprs is the cleaning map of pipelines/include/pinterest_cleaning.yaml.
var pinterestExprs = []string{
	`nullif(title, "No Title Data Available", "", "null")`,
	`nullif(description, "No description available Story format", "No description available", "", "null")`,
	`nullif(poster_name, "User Info Error", "", "null")`,
	`parse_count(nullif(follower_count, "User Info Error", "", "null"))`,
	`split(nullif(tag_list, "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e", "", "null"), ",")`,
	`is_image_or_video == "multi-video(story page format)" ? "story" : nullif(is_image_or_video, "", "null")`,
	`nullif(image_src, "Image src error.", "", "null")`,
	`to_bool(downloaded)`,
	`trimPrefix(save_location, "Local save in ")`,
	`nullif(unique_id, "", "null")`,
	`nullif(category, "", "null")`,
}

// postExprs run over generated posts; all have a kernel.
var postExprs = append(append([]string{}, pinterestExprs...),
	`parse_count(follower_count)`, `to_int(follower_count)`, `to_float(follower_count)`,
	`to_bool(title)`, `to_string(index)`, `string(downloaded)`, `float(index)`, `int(title)`,
	`null_if_empty(poster_name)`, `null_if_empty(title)`,
	`coalesce(nullif(title, "null"), poster_name, "none")`,
	`coalesce(parse_count(nullif(follower_count, "User Info Error")), 0)`,
	`category in ["art", "travel", ""]`, `category not in ["art"]`, `index in [1, 2, 3, 0]`,
	`unique_id != nil && category != nil`, `unique_id == nil || title == "null"`,
	`category == "art"`, `!(downloaded == 1)`, `not (category != nil)`,
	`upper(category)`, `lower(title)`, `trim(title)`, `trim(title, "ab")`,
	`trimSuffix(image_src, ".jpg")`, `trimPrefix(title)`, `trimSuffix(title)`,
	`replace(save_location, "/", "|")`,
	`regex_match(image_src, "\\.mp4$")`, `regex_replace(follower_count, "[^0-9]", "")`,
	`split(tag_list, ",", 2)`, `split(title, "")`, `split(category, "a")`, `split(unique_id, "-", 0)`,
	`category ?? "unknown"`, `downloaded == 1 ? "yes" : "no"`,
	`is_image_or_video == "video" ? split(tag_list, ",") : split(title, " ")`,
	`index == 1.5`, `index == nil`, `nil == "x"`, `nil == nil`, `category == nil ? 0 : index`,
	`title == poster_name`, `unique_id == category`, `unique_id != category`,
	`true && category == nil`, `false || category != nil`,
	`(category ?? "") == "" ? -1.5 : float(index)`,
)

var edgeSchema = arrow.NewSchema([]arrow.Field{
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "t", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
}, nil)

// edgeExprs run over edgeSchema rows; all have a kernel.
var edgeExprs = []string{
	`s == t`, `s != t`, `s == nil`, `nil != s`, `n == f`, `n == 3`, `f == 2.5`, `f != n`, `b == true`,
	`b == nil`, `b != b`, `n == n`, `f == nil`,
	`!b`, `b && s == "x"`, `b || n == 1`, `b and b`, `b or false`, `b ? s : t`, `b ? n : 0`,
	`b ? f : 1.0`, `b ? b : !b`, `b ? split(s, ",") : split(t, ";")`,
	`s in ["", "x"]`, `s in ["x", "yes"]`, `n in [0, 1]`, `n in [3]`, `s not in ["x"]`,
	`to_bool(s)`, `to_bool(n)`, `to_bool(f)`, `to_bool(b)`, `to_int(s)`, `to_int(f)`, `to_int(b)`,
	`to_int(n)`, `to_float(s)`, `to_float(b)`, `to_float(n)`, `to_float(f)`, `to_string(f)`,
	`to_string(b)`, `to_string(n)`, `to_string(s)`, `int(s) == n`,
	`nullif(s, t)`, `nullif(s, "x", t)`, `nullif(n, 0)`, `nullif(n, 0, n)`, `nullif(s)`,
	`coalesce(s, t)`, `coalesce(s, t, "z")`, `coalesce(n, 7)`, `coalesce(f, 1.5)`, `coalesce(b, false)`,
	`coalesce(s)`, `coalesce(to_string(parse_count(t)), s)`,
	`parse_count(s)`, `parse_count(n)`, `parse_count(f)`, `null_if_empty(s)`, `upper(s)`, `lower(s)`,
	`trim(s)`, `trim(s, t)`, `trimPrefix(s, t)`, `trimSuffix(s, t)`, `replace(s, t, "-")`,
	`replace(s, "", "-")`, `replace(s, ",", t)`,
	`split(s, t)`, `split(s, ",")`, `split(s, ",", 0)`, `split(s, ",", 1)`, `split(s, ",", 2)`,
	`split(s, ",", -1)`, `split(s, "", 2)`, `split(s, "")`, `split(s, ", ")`,
	`s ?? t`, `n ?? 0`, `b ?? true`, `s ?? t ?? "none"`,
	`regex_match(s, "^[0-9]")`, `regex_replace(s, "([a-z])", "<$1>")`, `regex_replace(s, "[0-9]+", t)`,
	`nullif(s, "x") == "y"`, `parse_count(s) == 1200`, `b == (s == t)`,
	`s == "x" ? "X" : s == "yes" ? "Y" : t ?? "other"`, `coalesce(f, 0)`,
}

// vmExprs have no kernel; the tests check they stay on the VM.
var vmExprs = []string{`s + "x"`, `len(s)`, `n > 3`, `to_timestamp(s)`, `hash(s)`, `nil ?? "x"`, `coalesce(f, n)`, `f == 1 ? 2 : nil`, `string({"a": s}.a)`, `s[1:]`, `split(s, ",", n)`}

var (
	strPool = []any{nil, "", " ", "null", "NULL", " Null ", "x", "X", "yes", "no", "T", "0", "1", "1.2k", "6M", "1,234",
		"2.5B", " 12 ", "abc", "User Info Error", "1e3", "2.5", "-7", "+3", "NaN", "inf", "0x10", "1_000",
		"9223372036854775807", "99999999999999999999", "9999999999999999999k", "héllo wörld", "ÄÖÜ ß", "日本,語",
		"a,b,,c", ",", "x,y", ", ", "İstanbul", "\xff\xfe", "ab", "ba", "Local save in /data/x", "k", "-", "5 k"}
	intPool   = []any{nil, 0, 1, -1, 3, 1200, 1 << 62, math.MinInt64}
	floatPool = []any{nil, 0.0, 2.5, -1.5, 1e300, 3.0, 0.5, math.NaN(), math.Inf(1), 1e19, -0.0}
	boolPool  = []any{nil, true, false}
)

func edgeRecord(t testing.TB, mem memory.Allocator, n int, seed uint64) arrow.RecordBatch {
	r := rand.New(rand.NewPCG(seed, 1))
	b := array.NewRecordBuilder(mem, edgeSchema)
	defer b.Release()
	pools := [][]any{strPool, strPool, intPool, floatPool, boolPool}
	for range n {
		for i, p := range pools {
			if err := arrowx.NewAppender(b.Field(i))(p[r.IntN(len(p))]); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.NewRecordBatch()
}

// postRecords decodes n generated posts, some of them with fields
// replaced by edge-case text, into batches of at most 4096 rows.
func postRecords(t testing.TB, mem memory.Allocator, n int) []arrow.RecordBatch {
	dec := jsondec.NewDecoder(posts.Schema(), mem, jsondec.Options{})
	defer dec.Release()
	g := posts.New(7)
	r := rand.New(rand.NewPCG(7, 7))
	var p posts.Post
	var line []byte
	var out []arrow.RecordBatch
	pick := func(s *string) {
		if r.IntN(10) == 0 {
			if v, _ := strPool[1+r.IntN(len(strPool)-1)].(string); v != "\xff\xfe" {
				*s = v
			}
		}
	}
	for i := range n {
		g.Next(&p)
		for _, s := range []*string{&p.Title, &p.FollowerCount, &p.PosterName, &p.IsImageOrVideo, &p.TagList, &p.Category} {
			pick(s)
		}
		line = posts.AppendJSON(line[:0], &p)
		if err := dec.Append(line); err != nil {
			t.Fatal(err)
		}
		if (i+1)%4096 == 0 || i == n-1 {
			out = append(out, dec.Flush())
		}
	}
	return out
}

type result struct {
	vals []string // ValueStr per row, "<null>" for null
	errs map[int]string
}

func runVM(t *testing.T, p *Program, rec arrow.RecordBatch, mem memory.Allocator) result {
	b := array.NewBuilder(mem, p.Type())
	defer b.Release()
	app := arrowx.NewAppender(b)
	ev := p.NewEvaluator()
	ev.Bind(rec)
	res := result{errs: map[int]string{}}
	for r := range int(rec.NumRows()) {
		v, err := ev.Eval(r)
		if err != nil {
			res.errs[r] = err.Error()
			v = nil
		}
		if err := app(v); err != nil {
			t.Fatalf("%s: row %d: append %v: %v", p.Source(), r, v, err)
		}
	}
	arr := b.NewArray()
	defer arr.Release()
	res.vals = strs(arr)
	return res
}

func runKernel(t *testing.T, ev *Evaluator, rec arrow.RecordBatch, mem memory.Allocator) result {
	b := array.NewBuilder(mem, ev.p.Type())
	defer b.Release()
	res := result{errs: map[int]string{}}
	if err := ev.EvalColumn(rec, b, func(r int, err error) {
		if _, ok := err.(*EvalError); !ok {
			t.Errorf("reject error %T", err)
		}
		res.errs[r] = err.Error()
	}); err != nil {
		t.Fatal(err)
	}
	arr := b.NewArray()
	defer arr.Release()
	if arr.Len() != int(rec.NumRows()) {
		t.Fatalf("%d values for %d rows", arr.Len(), rec.NumRows())
	}
	res.vals = strs(arr)
	return res
}

func strs(a arrow.Array) []string {
	out := make([]string, a.Len())
	for i := range out {
		if a.IsNull(i) {
			out[i] = "<null>"
		} else {
			out[i] = a.ValueStr(i)
		}
	}
	return out
}

// differ compiles each expression with and without the kernel and checks
// that both give the same values and the same errors on every row.
func differ(t *testing.T, schema *arrow.Schema, exprs []string, recs []arrow.RecordBatch, mem memory.Allocator) {
	for _, src := range exprs {
		pv, errs := Compile(spec.ExprSrc{Src: src}, schema, vmOnly())
		if errs != nil {
			t.Fatalf("%s: %v", src, errs)
		}
		pk, _ := Compile(spec.ExprSrc{Src: src}, schema)
		if !pk.Columnar() {
			t.Errorf("%s: no kernel", src)
			continue
		}
		if pv.Columnar() {
			t.Fatalf("%s: vmOnly ignored", src)
		}
		ev := pk.NewEvaluator()
		nerr, nnull := 0, 0
		for _, rec := range recs {
			want := runVM(t, pv, rec, mem)
			got := runKernel(t, ev, rec, mem)
			bad := 0
			for r := range want.vals {
				if got.vals[r] != want.vals[r] || got.errs[r] != want.errs[r] {
					if bad++; bad <= 5 {
						t.Errorf("%s: row %d: kernel %q (err %q), VM %q (err %q)", src, r, got.vals[r], got.errs[r], want.vals[r], want.errs[r])
					}
				}
				if want.vals[r] == "<null>" {
					nnull++
				}
			}
			nerr += len(want.errs)
		}
		t.Logf("%-60s errors %5d nulls %5d", src, nerr, nnull)
	}
}

func TestColumnarPosts(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	n := 20_000
	if testing.Short() {
		n = 4000
	}
	recs := postRecords(t, mem, n)
	// A slice with a non-zero offset checks bitmap and offset handling.
	recs = append(recs, recs[0].NewSlice(3, 1000))
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	differ(t, posts.Schema(), postExprs, recs, mem)
}

func TestColumnarEdges(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := edgeRecord(t, mem, 5000, 1)
	defer rec.Release()
	sl := rec.NewSlice(7, 4000)
	defer sl.Release()
	differ(t, edgeSchema, edgeExprs, []arrow.RecordBatch{rec, sl}, mem)
	for _, src := range vmExprs {
		p, errs := Compile(spec.ExprSrc{Src: src}, edgeSchema)
		if errs != nil {
			t.Errorf("%s: %v", src, errs)
			continue
		}
		if p.Columnar() {
			t.Errorf("%s: has a kernel", src)
		}
		b := array.NewBuilder(mem, p.Type())
		if err := p.NewEvaluator().EvalColumn(rec, b, nil); err == nil {
			t.Errorf("%s: EvalColumn without a kernel", src)
		}
		b.Release()
	}
}

func TestEvalColumnMisuse(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := edgeRecord(t, mem, 10, 2)
	defer rec.Release()
	p, _ := Compile(spec.ExprSrc{Src: "upper(s)"}, edgeSchema)
	ev := p.NewEvaluator()
	ib := array.NewInt64Builder(mem)
	defer ib.Release()
	if err := ev.EvalColumn(rec, ib, nil); err == nil {
		t.Error("wrong builder accepted")
	}
	other := edgeRecord(t, mem, 3, 3)
	defer other.Release()
	wrong := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.PrimitiveTypes.Int64}}, nil), []arrow.Array{other.Column(2)}, 3)
	defer wrong.Release()
	sb := array.NewStringBuilder(mem)
	defer sb.Release()
	if err := ev.EvalColumn(wrong, sb, nil); err == nil {
		t.Error("wrong batch accepted")
	}
	_ = fmt.Sprint()
}
