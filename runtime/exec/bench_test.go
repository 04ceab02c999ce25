package exec

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
)

// BenchmarkLinearPipeline measures the runtime's per-batch overhead: a
// source, two pass-through transforms and a sink, 1024 rows per batch.
func BenchmarkLinearPipeline(b *testing.B) {
	b.ReportAllocs()
	mem := memory.NewGoAllocator()
	t := &testing.T{}
	res := build(t,
		spec{name: "src", section: ast.Sources, inst: &countSource{alloc: mem, batches: b.N, rows: 1024, acks: &ackLog{}}, output: intSchema},
		spec{name: "a", section: ast.Transforms, inst: &passTransform{}, from: []string{"src"}, output: intSchema},
		spec{name: "b", section: ast.Transforms, inst: &passTransform{}, from: []string{"a"}, output: intSchema},
		spec{name: "out", section: ast.Sinks, inst: &collectSink{}, from: []string{"b"}},
	)
	p, err := New(res, Options{Alloc: mem})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := p.Run(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024 * 8)
}
