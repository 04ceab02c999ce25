// Package agg owns aggregate functions (count, sum, min, max, avg,
// count_distinct, first, last, median) and their typed accumulators, shared by
// the bounded `aggregate` transform and the window operators.
package agg

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/types"
)

// Func names an aggregate function.
type Func string

// The aggregate functions.
const (
	Count         Func = "count"
	Sum           Func = "sum"
	Min           Func = "min"
	Max           Func = "max"
	Avg           Func = "avg"
	CountDistinct Func = "count_distinct"
	First         Func = "first"
	Last          Func = "last"
	Median        Func = "median"
)

var funcs = []string{"avg", "count", "count_distinct", "first", "last", "max", "median", "min", "sum"}

// Spec is one parsed output column: name: fn(column).
type Spec struct {
	Name   string
	Fn     Func
	Column string // "" for count()
	Index  int    // input column index, -1 for count()
	Type   arrow.DataType
}

var callRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)?\s*\)\s*$`)

// Parse checks "fn(column)" against the input schema and returns the spec;
// problems are reported at pos.
func Parse(name, call string, in *arrow.Schema, pos source.Pos, errs *source.Errors) (Spec, bool) {
	m := callRE.FindStringSubmatch(call)
	if m == nil {
		errs.Add(pos, "aggregate '%s': write fn(column) or count(), e.g. avg(follower_count), not %q", name, call)
		return Spec{}, false
	}
	s := Spec{Name: name, Fn: Func(m[1]), Column: m[2], Index: -1}
	if !contains(funcs, m[1]) {
		e := errs.Add(pos, "aggregate '%s': unknown function %s()", name, m[1])
		e.Hint = source.DidYouMean(m[1], funcs)
		return s, false
	}
	if s.Fn == Count && s.Column == "" {
		s.Type = arrow.PrimitiveTypes.Int64
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
	s.Index = idx[0]
	t := in.Field(s.Index).Type
	numeric := t.ID() == arrow.INT64 || t.ID() == arrow.INT32 || t.ID() == arrow.FLOAT64
	switch s.Fn {
	case Count, CountDistinct:
		s.Type = arrow.PrimitiveTypes.Int64
	case Sum:
		if !numeric {
			errs.Add(pos, "aggregate '%s': sum needs a numeric column; '%s' is %s", name, s.Column, types.Name(t))
			return s, false
		}
		s.Type = arrow.PrimitiveTypes.Int64
		if t.ID() == arrow.FLOAT64 {
			s.Type = arrow.PrimitiveTypes.Float64
		}
	case Avg, Median:
		if !numeric {
			errs.Add(pos, "aggregate '%s': %s needs a numeric column; '%s' is %s", name, s.Fn, s.Column, types.Name(t))
			return s, false
		}
		s.Type = arrow.PrimitiveTypes.Float64
	case Min, Max:
		if !numeric && t.ID() != arrow.STRING && t.ID() != arrow.TIMESTAMP {
			errs.Add(pos, "aggregate '%s': %s needs a numeric, string or timestamp column; '%s' is %s", name, s.Fn, s.Column, types.Name(t))
			return s, false
		}
		s.Type = t
	case First, Last:
		s.Type = t
	}
	return s, true
}

func fieldNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Acc accumulates one aggregate for one group. Values arrive as the Go
// values of arrowx getters (int, float64, string, time.Time, nil).
type Acc struct {
	spec     *Spec
	n        int64
	isum     int64
	fsum     float64
	val      any // min, max, first, last
	set      bool
	distinct map[string]struct{}
	values   []float64 // median
}

// NewAcc returns an empty accumulator for s.
func NewAcc(s *Spec) *Acc { return &Acc{spec: s} }

// Add folds in one value; nulls are ignored except by count().
func (a *Acc) Add(v any) {
	if a.spec.Fn == Count && a.spec.Column == "" {
		a.n++
		return
	}
	if v == nil {
		return
	}
	a.n++
	switch a.spec.Fn {
	case Sum, Avg, Median:
		f := toFloat(v)
		if i, ok := v.(int); ok {
			a.isum += int64(i)
		}
		a.fsum += f
		if a.spec.Fn == Median {
			a.values = append(a.values, f)
		}
	case Min:
		if !a.set || less(v, a.val) {
			a.val, a.set = v, true
		}
	case Max:
		if !a.set || less(a.val, v) {
			a.val, a.set = v, true
		}
	case First:
		if !a.set {
			a.val, a.set = v, true
		}
	case Last:
		a.val, a.set = v, true
	case CountDistinct:
		if a.distinct == nil {
			a.distinct = map[string]struct{}{}
		}
		a.distinct[fmt.Sprint(v)] = struct{}{}
	}
}

// Result is the aggregate's value (nil when no non-null input was seen).
func (a *Acc) Result() any {
	switch a.spec.Fn {
	case Count:
		return int(a.n)
	case CountDistinct:
		return len(a.distinct)
	case Sum:
		if a.n == 0 {
			return nil
		}
		if a.spec.Type.ID() == arrow.INT64 {
			return int(a.isum)
		}
		return a.fsum
	case Avg:
		if a.n == 0 {
			return nil
		}
		return a.fsum / float64(a.n)
	case Median:
		if len(a.values) == 0 {
			return nil
		}
		sort.Float64s(a.values)
		m := len(a.values) / 2
		if len(a.values)%2 == 1 {
			return a.values[m]
		}
		return (a.values[m-1] + a.values[m]) / 2
	}
	if !a.set {
		return nil
	}
	return a.val
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	return math.NaN()
}

func less(a, b any) bool {
	switch x := a.(type) {
	case int:
		return x < b.(int)
	case float64:
		return x < b.(float64)
	case string:
		return strings.Compare(x, b.(string)) < 0
	case time.Time:
		return x.Before(b.(time.Time))
	}
	return false
}

// OutputSchema is the key columns followed by the aggregate columns.
func OutputSchema(in *arrow.Schema, keys []int, specs []Spec) *arrow.Schema {
	var fields []arrow.Field
	for _, k := range keys {
		f := in.Field(k)
		fields = append(fields, arrow.Field{Name: f.Name, Type: f.Type, Nullable: true})
	}
	for _, s := range specs {
		fields = append(fields, arrow.Field{Name: s.Name, Type: s.Type, Nullable: true})
	}
	return arrow.NewSchema(fields, nil)
}
