package httpsrc

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/op"
)

func registry(t *testing.T) *op.Registry {
	reg := op.NewRegistry()
	if err := reg.Register(Plugin); err != nil {
		t.Fatal(err)
	}
	sink := &op.Plugin{Section: ast.Sinks, Spec: spec.Spec{Name: "discard", Config: spec.Obj()},
		Prepare: func(c *validate.Check) (*arrow.Schema, op.Constructor) { return nil, nil }}
	if err := reg.Register(sink); err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestPrepare(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		cols         string // output columns
		errs         []string
	}{
		{"defaults", `{schema: pin}`, "unique_id:utf8, index:int64, ingested_at:timestamp[us, tz=UTC]", nil},
		{"declared stamp", `{schema: {unique_id: string, at: timestamp}, stamp: at}`, "unique_id:utf8, at:timestamp[us, tz=UTC]", nil},
		{"bad stamp", `{schema: {unique_id: string, at: string}, stamp: at}`, "", []string{"stamp column 'at' is declared in the schema as string; it must be a timestamp"}},
		{"bad values", `{schema: pin, path: posts, batch_path: /v1/posts/batch, max_body: 0, max_inflight: -1, ack_timeout: 0s}`, "",
			[]string{"'path' must start with '/'", "'max_body' must be positive", "'max_inflight' must be positive", "'ack_timeout' must be positive"}},
		{"body memory below max_body", `{schema: pin, max_body: 2MiB, max_body_memory: 1MiB}`, "", []string{"'max_body_memory' (1048576) must be at least 'max_body' (2097152)"}},
		{"same paths", `{schema: pin, path: /p, batch_path: /p}`, "", []string{"'batch_path' must differ from 'path'"}},
		{"no schema", `{listen: ":0"}`, "", []string{"schema"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "flowrun: 1\nname: t\nschemas:\n  pin: {unique_id: string, index: int64}\nsources:\n  in:\n    http: " + tc.config + "\nsinks:\n  out: {from: in, discard: {}}\n"
			res, errs := validate.Load("p.yaml", []byte(src), func(string) (string, bool) { return "", false }, registry(t))
			if len(tc.errs) == 0 {
				if len(errs) > 0 {
					t.Fatalf("errors:\n%s", errs.Render())
				}
				var cols []string
				for _, f := range res.Lookup("in").Output.Fields() {
					cols = append(cols, f.Name+":"+f.Type.String())
				}
				if got := strings.Join(cols, ", "); got != tc.cols {
					t.Errorf("columns %s, want %s", got, tc.cols)
				}
				return
			}
			text := errs.Render()
			for _, want := range tc.errs {
				if !strings.Contains(text, want) {
					t.Errorf("errors do not mention %q:\n%s", want, text)
				}
			}
		})
	}
}
