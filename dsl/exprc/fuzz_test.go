package exprc

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/spec"
)

// FuzzCompile compiles arbitrary text against a fixed schema and evaluates
// what compiles on a row of values and a row of nulls: errors are fine,
// panics are not.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"parse_count(follower_count)", `trimPrefix(save_location, "Local save in ")`, "titel != nil",
		"index > 3 &&\n  title != nil", "coalesce(score, 0) * 2", `regex_match(title, "a(b")`,
		`$env["title"]`, "map(tags, upper(#))", "let x = 1; x + index", "1 +", `"\u00e9" + title`,
		"to_timestamp(title, \"2006\")", "split(title, \",\", -1)",
	} {
		f.Add(s)
	}
	mem := memory.NewGoAllocator()
	rec := record(f, mem, [][]any{
		{1, "a,b", "12k", "x", 1.5, true, nil, []string{"a"}},
		{nil, nil, nil, nil, nil, nil, nil, nil},
	})
	f.Fuzz(func(t *testing.T, src string) {
		p, errs := Compile(spec.ExprSrc{Src: src, Pos: place("fuzz", "x", "plain").Pos}, pinSchema)
		if p == nil {
			if len(errs) == 0 {
				t.Fatal("no program and no error")
			}
			_ = errs.Render()
			return
		}
		if len(src) > 200 {
			return // keep evaluation cheap (no runaway loops)
		}
		ev := p.NewEvaluator()
		ev.Bind(rec)
		for row := 0; row < 2; row++ {
			_, _ = ev.Eval(row)
		}
	})
}
