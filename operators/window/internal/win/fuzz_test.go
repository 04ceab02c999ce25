package win

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/types"
)

// FuzzParseAgg: any aggregate call either parses into a spec whose column
// and output type are consistent with the input schema, or is reported as
// an error at its position; it never panics.
func FuzzParseAgg(f *testing.F) {
	in := arrow.NewSchema([]arrow.Field{
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64},
		{Name: "s", Type: arrow.BinaryTypes.String},
		{Name: "t", Type: types.Timestamp},
		{Name: "l", Type: arrow.ListOf(arrow.BinaryTypes.String)},
	}, nil)
	for _, s := range []string{"count()", "sum(n)", "avg(x)", "quantile(x, 0.9)", "quantile(x, 2)", "median(s)", "min(l)", "first(t)", "count_distinct(s)", "sum(", "f(a, b, c)", "quantile(n,1e-3)"} {
		f.Add(s)
	}
	file := source.NewFile("p.yaml", []byte("x"))
	f.Fuzz(func(t *testing.T, call string) {
		var errs source.Errors
		s, ok := ParseAgg("a", call, in, source.Pos{File: file, Line: 1, Column: 1}, &errs)
		if ok != (len(errs) == 0) {
			t.Fatalf("%q: ok %v with %d errors", call, ok, len(errs))
		}
		if !ok {
			return
		}
		if s.Out == nil {
			t.Fatalf("%q: no output type", call)
		}
		if s.Col >= 0 && !arrow.TypeEqual(s.In, in.Field(s.Col).Type) {
			t.Fatalf("%q: input type %v for column %d", call, s.In, s.Col)
		}
		if s.Fn == Quantile && (s.Q < 0 || s.Q > 1) {
			t.Fatalf("%q: q %v", call, s.Q)
		}
		newAcc(&s) // every accepted spec has an accumulator
	})
}
