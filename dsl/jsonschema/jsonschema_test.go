package jsonschema

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
)

type fakeOp struct {
	sp  spec.Spec
	sec ast.Section
}

func (o *fakeOp) OperatorSpec() *spec.Spec                   { return &o.sp }
func (o *fakeOp) OperatorSection() ast.Section               { return o.sec }
func (o *fakeOp) Check(*validate.Check) (*arrow.Schema, any) { return nil, nil }

type fakeCat map[ast.Section][]*fakeOp

func (c fakeCat) Names(s ast.Section) []string {
	var out []string
	for _, o := range c[s] {
		out = append(out, o.sp.Name)
	}
	return out
}

func (c fakeCat) Lookup(s ast.Section, name string) (validate.Operator, bool) {
	for _, o := range c[s] {
		if o.sp.Name == name {
			return o, true
		}
	}
	return nil, false
}

func TestGenerate(t *testing.T) {
	cat := fakeCat{
		ast.Sources: {{sec: ast.Sources, sp: spec.Spec{Name: "file", Summary: "reads files", Example: "file: {path: x}", Config: spec.Obj(
			spec.F("path", spec.String, "a glob of files to read").Req(),
			spec.F("format", spec.Enum, "file format").OneOf("json", "csv").Def("json"),
			spec.F("poll", spec.Duration, "how often to look for new files").Def(5*time.Second),
			spec.F("schema", spec.SchemaRef, "columns"),
		)}}},
		ast.Transforms: {{sec: ast.Transforms, sp: spec.Spec{Name: "filter", Config: &spec.Field{Kind: spec.Object, Scalar: "expr",
			Fields: []*spec.Field{spec.F("expr", spec.Expr, "keep rows where true").Req()}}}}},
		ast.Sinks: {{sec: ast.Sinks, sp: spec.Spec{Name: "stdout", Config: spec.Obj(spec.F("batch", spec.Int, "rows").Def(100))}}},
	}
	b, err := Generate(cat)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", doc["$schema"])
	}
	defs := doc["$defs"].(map[string]any)
	file := defs["op.sources.file"].(map[string]any)
	fileCfg := file["properties"].(map[string]any)["file"].(map[string]any)
	path := fileCfg["properties"].(map[string]any)["path"].(map[string]any)
	if path["description"] != "a glob of files to read" {
		t.Errorf("path: %v", path)
	}
	if req := fileCfg["required"].([]any); len(req) != 1 || req[0] != "path" {
		t.Errorf("required: %v", req)
	}
	poll := fileCfg["properties"].(map[string]any)["poll"].(map[string]any)
	if poll["default"] != "5s" {
		t.Errorf("poll default %v", poll["default"])
	}
	if _, ok := file["properties"].(map[string]any)["from"]; ok {
		t.Error("sources must not offer from")
	}
	for _, want := range []string{`"op.transforms.filter"`, `"op.sinks.stdout"`, `"csv"`, `"dead_letter"`, `"sinks"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("schema lacks %s", want)
		}
	}
}
