package require

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/transform/internal/xftest"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

var in = arrow.NewSchema([]arrow.Field{
	{Name: "unique_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func build(t *testing.T, config string, withDeadLetter bool) (op.Constructor, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(config), &doc); err != nil {
		t.Fatal(err)
	}
	p := op.Default.Plugin(ast.Transforms, "require")
	var errs source.Errors
	f := source.NewFile("p.yaml", []byte(config))
	node := &ast.Node{Name: "valid", Type: "require"}
	if withDeadLetter {
		node.DeadLetter = &ast.Ref{Name: "dl"}
	}
	c := &validate.Check{Node: node, Config: spec.Decode(f, doc.Content[0], p.Spec.Config, &errs), Inputs: []validate.Input{{Name: "in", Schema: in}}, Errs: &errs}
	_, ctor := p.Prepare(c)
	return ctor, errs
}

func TestRequireRejectsWithReason(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctor, errs := build(t, "{missing unique_id: unique_id != nil, missing category: category != nil}", true)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	inst, _ := ctor(op.Resources{Alloc: mem})
	out := &xftest.Collector{Out: in}
	defer out.Release()
	rec := xftest.Record(t, mem, in, []any{"a", "art"}, []any{nil, "art"}, []any{"c", nil}, []any{"d", "diy"})
	if err := inst.(op.Transform).Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, out); err != nil {
		t.Fatal(err)
	}
	if got := out.Rows(); !reflect.DeepEqual(got, [][]any{{"a", "art"}, {"d", "diy"}}) {
		t.Fatalf("kept %v", got)
	}
	want := []xftest.Reject{
		{Record: `{"unique_id":null,"category":"art"}`, Reason: "require: missing unique_id"},
		{Record: `{"unique_id":"c","category":null}`, Reason: "require: missing category"},
	}
	if !reflect.DeepEqual(out.Rejects, want) {
		t.Fatalf("rejects %v", out.Rejects)
	}
}

func TestRequireNeedsDeadLetterAndBooleans(t *testing.T) {
	_, errs := build(t, "{bad: unique_id}", false)
	msg := errs.Error()
	for _, want := range []string{"needs a dead_letter output", "boolean"} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors %q lack %q", msg, want)
		}
	}
}
