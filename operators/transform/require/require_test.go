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
	return buildFor(t, config, in, withDeadLetter)
}

func buildFor(t *testing.T, config string, in *arrow.Schema, withDeadLetter bool) (op.Constructor, source.Errors) {
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

// TestRequireNullFails: a condition that evaluates to null (a null boolean
// column, a cleaning function given a null) does not pass: the row goes to
// the dead letters with the rule's name, as the docs promise.
func TestRequireNullFails(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "unique_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "downloaded", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "verified", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	}, nil)
	rows := [][]any{{"a", "1", true}, {"b", nil, true}, {"c", "1", nil}, {"d", "0", true}, {"e", "1", false}}
	for _, tc := range []struct {
		config  string
		kept    []string
		reasons []string
	}{
		{"{not downloaded: to_bool(downloaded)}", []string{"a", "c", "e"}, []string{"b: require: not downloaded (condition is null)", "d: require: not downloaded"}},
		{"{not verified: verified}", []string{"a", "b", "d"}, []string{"c: require: not verified (condition is null)", "e: require: not verified"}},
		{"{ok: 'verified ?? false'}", []string{"a", "b", "d"}, []string{"c: require: ok", "e: require: ok"}},
	} {
		t.Run(tc.config, func(t *testing.T) {
			ctor, errs := buildFor(t, tc.config, schema, true)
			if len(errs) > 0 {
				t.Fatal(errs.Render())
			}
			inst, err := ctor(op.Resources{Alloc: mem})
			if err != nil {
				t.Fatal(err)
			}
			tr := inst.(op.Transform)
			c := &xftest.Collector{Out: schema}
			defer c.Release()
			rec := xftest.Record(t, mem, schema, rows...)
			if err := tr.Process(context.Background(), batch.Batch{Rec: rec, Ack: xftest.Ack(t)}, c); err != nil {
				t.Fatal(err)
			}
			var kept, reasons []string
			for _, r := range c.Rows() {
				kept = append(kept, r[0].(string))
			}
			for _, r := range c.Rejects {
				reasons = append(reasons, r.Record[len(`{"unique_id":"`):len(`{"unique_id":"`)+1]+": "+r.Reason)
			}
			if !reflect.DeepEqual(kept, tc.kept) || !reflect.DeepEqual(reasons, tc.reasons) {
				t.Fatalf("kept %v, rejected %v; want %v, %v", kept, reasons, tc.kept, tc.reasons)
			}
		})
	}
}
