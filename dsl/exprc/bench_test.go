package exprc

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/spec"
)

// BenchmarkEval evaluates cleaning expressions over a 1024-row batch; one
// op is one batch.
func BenchmarkEval(b *testing.B) {
	mem := memory.NewGoAllocator()
	rows := make([][]any, 1024)
	for i := range rows {
		rows[i] = []any{i, "title", fmt.Sprintf("%d.%dk", i%100, i%10), "Local save in /data/" + fmt.Sprint(i), 1.5, true, nil, nil}
	}
	rec := record(b, mem, rows)
	defer rec.Release()
	for _, src := range []string{"parse_count(follower_count)", `trimPrefix(save_location, "Local save in ")`, "index > 100 && title != nil"} {
		b.Run(src, func(b *testing.B) {
			p, errs := Compile(spec.ExprSrc{Src: src}, pinSchema, vmOnly())
			if errs != nil {
				b.Fatal(errs)
			}
			ev := p.NewEvaluator()
			b.ReportAllocs()
			for b.Loop() {
				ev.Bind(rec)
				for row := range 1024 {
					if _, err := ev.Eval(row); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkEvalColumn is BenchmarkEval on the columnar kernels: one op is
// one 1024-row batch evaluated into a builder.
func BenchmarkEvalColumn(b *testing.B) {
	mem := memory.NewGoAllocator()
	rows := make([][]any, 1024)
	for i := range rows {
		rows[i] = []any{i, "title", fmt.Sprintf("%d.%dk", i%100, i%10), "Local save in /data/" + fmt.Sprint(i), 1.5, true, nil, nil}
	}
	rec := record(b, mem, rows)
	defer rec.Release()
	for _, src := range []string{"parse_count(follower_count)", `trimPrefix(save_location, "Local save in ")`, "index == 100 || title != nil", `split(nullif(follower_count, "", "null"), ".")`} {
		b.Run(src, func(b *testing.B) {
			p, errs := Compile(spec.ExprSrc{Src: src}, pinSchema)
			if errs != nil {
				b.Fatal(errs)
			}
			if !p.Columnar() {
				b.Fatal("no kernel")
			}
			ev := p.NewEvaluator()
			bld := array.NewBuilder(mem, p.Type())
			defer bld.Release()
			reject := func(int, error) { b.Fatal("reject") }
			b.ReportAllocs()
			for b.Loop() {
				bld.Reserve(1024)
				if err := ev.EvalColumn(rec, bld, reject); err != nil {
					b.Fatal(err)
				}
				bld.NewArray().Release()
			}
		})
	}
}
