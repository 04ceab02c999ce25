package win

import (
	"hash/maphash"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/types"
)

// Fn names an aggregate function.
type Fn string

// The aggregate functions a window computes.
const (
	Count         Fn = "count"
	Sum           Fn = "sum"
	Min           Fn = "min"
	Max           Fn = "max"
	Avg           Fn = "avg"
	CountDistinct Fn = "count_distinct"
	First         Fn = "first"
	Last          Fn = "last"
	Median        Fn = "median"
	Quantile      Fn = "quantile"
)

var fnNames = []string{"avg", "count", "count_distinct", "first", "last", "max", "median", "min", "quantile", "sum"}

// AggSpec is one output column: name: fn(column[, q]).
type AggSpec struct {
	Name   string
	Fn     Fn
	Column string
	Col    int // input column index, -1 for count()
	In     arrow.DataType
	Out    arrow.DataType
	Q      float64 // quantile
}

var callRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)?\s*(?:,\s*([0-9.eE+-]+)\s*)?\)\s*$`)

// colKind is how an accumulator reads an input column.
type colKind int

const (
	kInt    colKind = iota // int64, int32, timestamp: read as int64
	kFloat                 // float64
	kString                // string
	kBool                  // bool
	kOther
)

func kindOf(t arrow.DataType) colKind {
	switch t.ID() {
	case arrow.INT64, arrow.INT32, arrow.TIMESTAMP:
		return kInt
	case arrow.FLOAT64:
		return kFloat
	case arrow.STRING:
		return kString
	case arrow.BOOL:
		return kBool
	}
	return kOther
}

// ParseAgg checks "fn(column)", "count()" or "quantile(column, q)" against
// the input schema; problems are reported at pos.
func ParseAgg(name, call string, in *arrow.Schema, pos source.Pos, errs *source.Errors) (AggSpec, bool) {
	m := callRE.FindStringSubmatch(call)
	if m == nil {
		errs.Add(pos, "aggregate '%s': write fn(column), count() or quantile(column, 0.9), not %q", name, call)
		return AggSpec{}, false
	}
	s := AggSpec{Name: name, Fn: Fn(m[1]), Column: m[2], Col: -1}
	if !slices.Contains(fnNames, m[1]) {
		e := errs.Add(pos, "aggregate '%s': unknown function %s()", name, m[1])
		e.Hint = source.DidYouMean(m[1], fnNames)
		if e.Hint == "" {
			e.Hint = "functions: " + strings.Join(fnNames, ", ")
		}
		return s, false
	}
	if m[3] != "" && s.Fn != Quantile {
		errs.Add(pos, "aggregate '%s': %s() takes one column, not a second argument", name, s.Fn)
		return s, false
	}
	if s.Fn == Quantile {
		q, err := strconv.ParseFloat(m[3], 64)
		if m[3] == "" || err != nil || q < 0 || q > 1 {
			errs.Add(pos, "aggregate '%s': quantile needs a column and a fraction between 0 and 1, e.g. quantile(%s, 0.9)", name, orCol(s.Column))
			return s, false
		}
		s.Q = q
	}
	if s.Fn == Median {
		s.Q = 0.5
	}
	if s.Fn == Count && s.Column == "" {
		s.Out = arrow.PrimitiveTypes.Int64
		return s, true
	}
	if s.Column == "" {
		errs.Add(pos, "aggregate '%s': %s() needs a column", name, s.Fn)
		return s, false
	}
	idx := in.FieldIndices(s.Column)
	if len(idx) == 0 {
		e := errs.Add(pos, "aggregate '%s': unknown column '%s'", name, s.Column)
		e.Hint = source.DidYouMean(s.Column, fieldNames(in))
		return s, false
	}
	s.Col = idx[0]
	t := in.Field(s.Col).Type
	s.In = t
	k := kindOf(t)
	numeric := t.ID() == arrow.INT64 || t.ID() == arrow.INT32 || t.ID() == arrow.FLOAT64
	switch s.Fn {
	case Count, CountDistinct:
		if s.Fn == CountDistinct && k == kOther {
			errs.Add(pos, "aggregate '%s': count_distinct needs a number, string, boolean or timestamp column; '%s' is %s", name, s.Column, types.Name(t))
			return s, false
		}
		s.Out = arrow.PrimitiveTypes.Int64
	case Sum:
		if !numeric {
			errs.Add(pos, "aggregate '%s': sum needs a numeric column; '%s' is %s", name, s.Column, types.Name(t))
			return s, false
		}
		s.Out = arrow.PrimitiveTypes.Int64
		if k == kFloat {
			s.Out = arrow.PrimitiveTypes.Float64
		}
	case Avg, Median, Quantile:
		if !numeric {
			errs.Add(pos, "aggregate '%s': %s needs a numeric column; '%s' is %s", name, s.Fn, s.Column, types.Name(t))
			return s, false
		}
		s.Out = arrow.PrimitiveTypes.Float64
	case Min, Max:
		if k != kInt && k != kFloat && k != kString {
			errs.Add(pos, "aggregate '%s': %s needs a numeric, string or timestamp column; '%s' is %s", name, s.Fn, s.Column, types.Name(t))
			return s, false
		}
		s.Out = t
	case First, Last:
		if k == kOther {
			errs.Add(pos, "aggregate '%s': %s needs a number, string, boolean or timestamp column; '%s' is %s", name, s.Fn, s.Column, types.Name(t))
			return s, false
		}
		s.Out = t
	}
	return s, true
}

func orCol(c string) string {
	if c == "" {
		return "column"
	}
	return c
}

func fieldNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

// view reads one input column by row without boxing.
type view struct {
	arr   arrow.Array
	nulls bool
	k     colKind
	i64   []int64
	i32   []int32
	ts    []arrow.Timestamp
	f64   []float64
	str   *array.String
	b     *array.Boolean
}

func newView(a arrow.Array) view {
	v := view{arr: a, nulls: a.NullN() > 0, k: kindOf(a.DataType())}
	switch x := a.(type) {
	case *array.Int64:
		v.i64 = x.Int64Values()
	case *array.Int32:
		v.i32 = x.Int32Values()
	case *array.Timestamp:
		v.ts = x.TimestampValues()
	case *array.Float64:
		v.f64 = x.Float64Values()
	case *array.String:
		v.str = x
	case *array.Boolean:
		v.b = x
	}
	return v
}

func (v *view) null(r int32) bool { return v.nulls && v.arr.IsNull(int(r)) }

func (v *view) int(r int32) int64 {
	switch {
	case v.i64 != nil:
		return v.i64[r]
	case v.ts != nil:
		return int64(v.ts[r])
	case v.i32 != nil:
		return int64(v.i32[r])
	}
	return 0
}

func (v *view) float(r int32) float64 {
	if v.f64 != nil {
		return v.f64[r]
	}
	return float64(v.int(r))
}

// acc is one aggregate over every open slot. Numbers (count, sum, avg,
// min and max of numbers) are rowAccs, kept in the window's row store;
// the others keep slot s's state as element s of their own slices.
type acc interface {
	grow(n int)
	// add folds in the pairs (rows[i] of the batch into slots[i]); ts[r]
	// is row r's event time.
	add(v *view, rows, slots []int32, ts []int64)
	merge(dst, src int32)
	reset(slots []int32)
	// put appends the results of slots to b, one type check per call.
	put(b array.Builder, slots []int32)
	// dyn is the bytes held beyond the fixed per-slot size.
	dyn() int64
	// holds says whether a slot's state holds memory to give back.
	holds() bool
	fixed() int64
}

func newAcc(s *AggSpec) acc {
	switch s.Fn {
	case Count:
		return &countAcc{col: s.Col >= 0}
	case Sum:
		if kindOf(s.In) == kFloat {
			return &sumFloat{}
		}
		return &sumInt{}
	case Avg:
		return &avgAcc{}
	case Min, Max:
		switch kindOf(s.In) {
		case kFloat:
			return &extFloat{max: s.Fn == Max}
		case kString:
			return &extString{max: s.Fn == Max}
		}
		return &extInt{max: s.Fn == Max}
	case First, Last:
		return &edgeAcc{last: s.Fn == Last, k: kindOf(s.In)}
	case CountDistinct:
		return &distinctAcc{seed: maphash.MakeSeed()}
	case Median, Quantile:
		return &quantAcc{q: s.Q}
	}
	panic("win: no accumulator for " + string(s.Fn))
}

// grow makes s at least n long, the new elements zero. Capacity doubles:
// slot slices grow one slot at a time, and append's slower growth for big
// slices copies each element about four times over.
func grow[T any](s []T, n int) []T {
	if n <= len(s) {
		return s
	}
	if n > cap(s) {
		t := make([]T, len(s), max(n, 2*cap(s)))
		copy(t, s)
		s = t
	}
	old := len(s)
	s = s[:n]
	clear(s[old:])
	return s
}

func putInt(b array.Builder, set bool, x int64) {
	if !set {
		b.AppendNull()
		return
	}
	switch bb := b.(type) {
	case *array.Int64Builder:
		bb.Append(x)
	case *array.Int32Builder:
		bb.Append(int32(x))
	case *array.TimestampBuilder:
		bb.Append(arrow.Timestamp(x))
	}
}

type extString struct {
	max   bool
	v     []string
	set   []bool
	bytes int64
}

func (a *extString) grow(n int) { a.v, a.set = grow(a.v, n), grow(a.set, n) }
func (a *extString) add(v *view, rows, slots []int32, _ []int64) {
	for i, r := range rows {
		if v.null(r) {
			continue
		}
		a.fold(slots[i], v.str.Value(int(r)), true)
	}
}

// fold keeps x if it wins; clone copies it out of the batch's buffer.
func (a *extString) fold(s int32, x string, clone bool) {
	if !a.set[s] || (a.max && x > a.v[s]) || (!a.max && x < a.v[s]) {
		if clone {
			x = strings.Clone(x)
		}
		a.bytes += int64(len(x) - len(a.v[s]))
		a.v[s], a.set[s] = x, true
	}
}
func (a *extString) merge(d, s int32) {
	if a.set[s] {
		a.fold(d, a.v[s], false)
	}
}
func (a *extString) reset(slots []int32) {
	for _, s := range slots {
		a.bytes -= int64(len(a.v[s]))
		a.v[s], a.set[s] = "", false
	}
}
func (a *extString) put(b array.Builder, slots []int32) {
	bb := b.(*array.StringBuilder)
	for _, s := range slots {
		if a.set[s] {
			bb.Append(a.v[s])
		} else {
			bb.AppendNull()
		}
	}
}
func (a *extString) holds() bool  { return true }
func (a *extString) dyn() int64   { return a.bytes }
func (a *extString) fixed() int64 { return 17 }

// edgeAcc is first or last by event time; ties keep the earlier arrival for
// first and the later arrival for last.
type edgeAcc struct {
	last  bool
	k     colKind
	t     []int64
	set   []bool
	i     []int64
	f     []float64
	s     []string
	b     []bool
	bytes int64
}

func (a *edgeAcc) grow(n int) {
	a.t, a.set = grow(a.t, n), grow(a.set, n)
	switch a.k {
	case kInt:
		a.i = grow(a.i, n)
	case kFloat:
		a.f = grow(a.f, n)
	case kString:
		a.s = grow(a.s, n)
	case kBool:
		a.b = grow(a.b, n)
	}
}

func (a *edgeAcc) wins(s int32, t int64) bool {
	if !a.set[s] {
		return true
	}
	if a.last {
		return t >= a.t[s]
	}
	return t < a.t[s]
}

func (a *edgeAcc) add(v *view, rows, slots []int32, ts []int64) {
	for i, r := range rows {
		if v.null(r) {
			continue
		}
		s, t := slots[i], ts[r]
		if !a.wins(s, t) {
			continue
		}
		a.t[s], a.set[s] = t, true
		switch a.k {
		case kInt:
			a.i[s] = v.int(r)
		case kFloat:
			a.f[s] = v.float(r)
		case kString:
			x := strings.Clone(v.str.Value(int(r)))
			a.bytes += int64(len(x) - len(a.s[s]))
			a.s[s] = x
		case kBool:
			a.b[s] = v.b.Value(int(r))
		}
	}
}

func (a *edgeAcc) merge(d, s int32) {
	if !a.set[s] || !a.wins(d, a.t[s]) {
		return
	}
	a.t[d], a.set[d] = a.t[s], true
	switch a.k {
	case kInt:
		a.i[d] = a.i[s]
	case kFloat:
		a.f[d] = a.f[s]
	case kString:
		a.bytes += int64(len(a.s[s]) - len(a.s[d]))
		a.s[d] = a.s[s]
	case kBool:
		a.b[d] = a.b[s]
	}
}

func (a *edgeAcc) reset(slots []int32) {
	for _, s := range slots {
		a.set[s] = false
		if a.k == kString {
			a.bytes -= int64(len(a.s[s]))
			a.s[s] = ""
		}
	}
}

func (a *edgeAcc) put(b array.Builder, slots []int32) {
	for _, s := range slots {
		a.put1(b, s)
	}
}

func (a *edgeAcc) put1(b array.Builder, s int32) {
	if !a.set[s] {
		b.AppendNull()
		return
	}
	switch a.k {
	case kInt:
		putInt(b, true, a.i[s])
	case kFloat:
		b.(*array.Float64Builder).Append(a.f[s])
	case kString:
		b.(*array.StringBuilder).Append(a.s[s])
	case kBool:
		b.(*array.BooleanBuilder).Append(a.b[s])
	}
}
func (a *edgeAcc) holds() bool  { return a.k == kString }
func (a *edgeAcc) dyn() int64   { return a.bytes }
func (a *edgeAcc) fixed() int64 { return 26 }

// distinctAcc counts distinct values exactly up to 64-bit hash collisions:
// two different values collide with probability 2^-64 per pair, so a window
// of n distinct values undercounts with probability below n²/2^65 (under
// 3·10^-8 for a million values).
type distinctAcc struct {
	seed maphash.Seed
	sets []map[uint64]struct{}
	n    int64 // entries held, for the byte account
}

func (a *distinctAcc) grow(n int) { a.sets = grow(a.sets, n) }
func (a *distinctAcc) add(v *view, rows, slots []int32, _ []int64) {
	var buf [8]byte
	for i, r := range rows {
		if v.null(r) {
			continue
		}
		var h uint64
		switch v.k {
		case kString:
			h = maphash.String(a.seed, v.str.Value(int(r)))
		case kFloat:
			h = hashU64(a.seed, &buf, math.Float64bits(v.float(r)))
		case kBool:
			x := uint64(0)
			if v.b.Value(int(r)) {
				x = 1
			}
			h = hashU64(a.seed, &buf, x)
		default:
			h = hashU64(a.seed, &buf, uint64(v.int(r)))
		}
		s := slots[i]
		m := a.sets[s]
		if m == nil {
			m = map[uint64]struct{}{}
			a.sets[s] = m
		}
		if _, ok := m[h]; !ok {
			m[h] = struct{}{}
			a.n++
		}
	}
}

func hashU64(seed maphash.Seed, buf *[8]byte, x uint64) uint64 {
	for i := range buf {
		buf[i] = byte(x >> (8 * i))
	}
	return maphash.Bytes(seed, buf[:])
}

func (a *distinctAcc) merge(d, s int32) {
	if a.sets[s] == nil {
		return
	}
	if a.sets[d] == nil {
		a.sets[d] = map[uint64]struct{}{}
	}
	for h := range a.sets[s] {
		if _, ok := a.sets[d][h]; !ok {
			a.sets[d][h] = struct{}{}
			a.n++
		}
	}
}
func (a *distinctAcc) reset(slots []int32) {
	for _, s := range slots {
		a.n -= int64(len(a.sets[s]))
		a.sets[s] = nil
	}
}
func (a *distinctAcc) put(b array.Builder, slots []int32) {
	bb := b.(*array.Int64Builder)
	for _, s := range slots {
		bb.Append(int64(len(a.sets[s])))
	}
}

// A map entry of a uint64 set costs about 16 bytes with Go's swiss tables.
func (a *distinctAcc) holds() bool  { return true }
func (a *distinctAcc) dyn() int64   { return a.n * 16 }
func (a *distinctAcc) fixed() int64 { return 8 }

// quantAcc keeps every value of the slot: median and quantile are exact
// (linear interpolation between the two closest ranks, as numpy's default
// and PostgreSQL's percentile_cont), and cost 8 bytes per value, counted
// against max_state_bytes.
type quantAcc struct {
	q    float64
	vals [][]float64
	n    int64
}

func (a *quantAcc) grow(n int) { a.vals = grow(a.vals, n) }
func (a *quantAcc) add(v *view, rows, slots []int32, _ []int64) {
	for i, r := range rows {
		if v.null(r) {
			continue
		}
		s := slots[i]
		a.vals[s] = append(a.vals[s], v.float(r))
		a.n++
	}
}
func (a *quantAcc) merge(d, s int32) {
	a.vals[d] = append(a.vals[d], a.vals[s]...)
	a.n += int64(len(a.vals[s]))
}
func (a *quantAcc) reset(slots []int32) {
	for _, s := range slots {
		a.n -= int64(len(a.vals[s]))
		a.vals[s] = nil
	}
}
func (a *quantAcc) put(b array.Builder, slots []int32) {
	bb := b.(*array.Float64Builder)
	for _, s := range slots {
		v := a.vals[s]
		if len(v) == 0 {
			bb.AppendNull()
			continue
		}
		sort.Float64s(v)
		bb.Append(quantile(v, a.q))
	}
}

// quantile of sorted v by linear interpolation between closest ranks.
func quantile(v []float64, q float64) float64 {
	pos := q * float64(len(v)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(v)-1)
	return v[lo] + (v[hi]-v[lo])*(pos-float64(lo))
}
func (a *quantAcc) holds() bool  { return true }
func (a *quantAcc) dyn() int64   { return a.n * 8 }
func (a *quantAcc) fixed() int64 { return 24 }
