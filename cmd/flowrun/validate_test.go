package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/spf13/cobra"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/op"
)

// testRegistry has one operator per section, independent of the built-ins.
func testRegistry(t *testing.T) *op.Registry {
	reg := op.NewRegistry()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	for _, p := range []*op.Plugin{
		{Spec: spec.Spec{Name: "gen", Config: spec.Obj(spec.F("rows", spec.Int, "rows to make").Def(1))}, Section: ast.Sources,
			Prepare: func(*validate.Check) (*arrow.Schema, op.Constructor) { return schema, nil }},
		{Spec: spec.Spec{Name: "pass", Config: spec.Obj()}, Section: ast.Transforms,
			Prepare: func(c *validate.Check) (*arrow.Schema, op.Constructor) { return c.In(), nil }},
		{Spec: spec.Spec{Name: "out", Config: spec.Obj(spec.F("path", spec.String, "where").Req())}, Section: ast.Sinks,
			Prepare: func(*validate.Check) (*arrow.Schema, op.Constructor) { return nil, nil }},
	} {
		if err := reg.Register(p); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

const goodPipeline = `flowrun: 1
name: good
description: A "good" pipeline.
sources:
  a: {gen: {rows: 5}, dead_letter: dead}
transforms:
  b: {from: a, pass: {}, description: 'Passes rows on unchanged, as "pass" does.'}
sinks:
  c: {from: b, out: {path: "${DIR:-x}/c"}}
  dead: {out: {path: d}}
`

const badPipeline = `flowrun: 1
sources:
  a: {gen: {rows: many}}
sinks:
  c: {from: b, out: {path: x}}
`

func write(t *testing.T, name, text string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func execute(t *testing.T, reg *op.Registry, args ...string) (stdout, stderr string, err error) {
	root := newRootCmd(reg)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errb.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestValidateCmd(t *testing.T) {
	reg := testRegistry(t)
	good, bad := write(t, "good.yaml", goodPipeline), write(t, "bad.yaml", badPipeline)

	out, _, err := execute(t, reg, "validate", good)
	if exitCode(err) != 0 || out != "ok: "+good+" (4 nodes)\n" {
		t.Errorf("good: %q %v", out, err)
	}

	out, errOut, err := execute(t, reg, "validate", good, bad)
	if exitCode(err) != 1 {
		t.Errorf("bad: exit %v", err)
	}
	if !strings.Contains(out, "ok: "+good) {
		t.Errorf("stdout %q", out)
	}
	for _, want := range []string{
		bad + ":3:19: 'rows' must be an integer, not \"many\"\n      a: {gen: {rows: many}}\n                      ^\n",
		bad + ":5:13: unknown node 'b' in 'from' of 'c'",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	out, _, err = execute(t, reg, "validate", "--format", "json", bad)
	var got []jsonError
	if jerr := json.Unmarshal([]byte(out), &got); jerr != nil || exitCode(err) != 1 || len(got) != 2 {
		t.Fatalf("json: %v %v %s", jerr, err, out)
	}
	if got[0].File != bad || got[0].Line != 3 || got[0].Column != 19 || got[0].Code != "type" {
		t.Errorf("json[0] = %+v", got[0])
	}

	out, _, _ = execute(t, reg, "validate", "--format", "github", bad)
	if !strings.HasPrefix(out, "::error file="+ghProp(bad)+",line=3,col=19::'rows' must be an integer") {
		t.Errorf("github: %q", out)
	}

	_, errOut, err = execute(t, reg, "validate", "--set", "DIR", good)
	if err == nil || !strings.Contains(err.Error(), "NAME=VALUE") {
		t.Errorf("--set without '=': %v %s", err, errOut)
	}
	if _, _, err := execute(t, reg, "validate", filepath.Join(t.TempDir(), "missing.yaml")); exitCode(err) != 1 {
		t.Errorf("missing file: %v", err)
	}
}

func TestLoadPipelineSet(t *testing.T) {
	reg := testRegistry(t)
	t.Setenv("DIR", "env")
	good := write(t, "good.yaml", goodPipeline)
	res, errs, err := loadPipeline(good, nil, reg)
	if err != nil || len(errs) > 0 || res.Pipeline.Vars["DIR"] != "env" {
		t.Fatalf("%v %v %v", err, errs, res.Pipeline.Vars)
	}
	res, _, _ = loadPipeline(good, []string{"DIR=set"}, reg)
	if res.Pipeline.Vars["DIR"] != "set" {
		t.Errorf("--set did not win: %v", res.Pipeline.Vars)
	}
}

func TestGraphCmd(t *testing.T) {
	reg := testRegistry(t)
	good := write(t, "good.yaml", goodPipeline)
	out, _, err := execute(t, reg, "graph", good)
	if err != nil {
		t.Fatal(err)
	}
	want := `---
title: "good: A \"good\" pipeline."
---
flowchart LR
  n0(["a<br/>(gen)"])
  n1["b<br/>(pass)<br/><i>Passes rows on unchanged, as #quot;pass#quot; does.</i>"]
  n2[("c<br/>(out)")]
  n3[("dead<br/>(out)")]
  n0 -. dead letters .-> n3
  n0 --> n1
  n1 --> n2
`
	if out != want {
		t.Errorf("mermaid:\n%s\nwant:\n%s", out, want)
	}
	out, _, err = execute(t, reg, "graph", "--format", "dot", good)
	if err != nil || !strings.Contains(out, `"a" -> "dead" [style=dashed`) || !strings.Contains(out, `"b" [label="b\n(pass)", shape=box, tooltip="Passes rows on unchanged, as \"pass\" does."]`) || !strings.Contains(out, `label="good: A \"good\" pipeline."`) {
		t.Errorf("dot: %v\n%s", err, out)
	}
	if _, _, err := execute(t, reg, "graph", write(t, "bad.yaml", badPipeline)); exitCode(err) != 1 {
		t.Errorf("bad graph: %v", err)
	}
}

func TestSchemaCmd(t *testing.T) {
	out, _, err := execute(t, testRegistry(t), "schema")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"rows to make"`) {
		t.Error("schema lacks the gen operator's field doc")
	}
}

func TestHelp(t *testing.T) {
	reg := testRegistry(t)
	for _, cmd := range newRootCmd(reg).Commands() {
		switch cmd.Name() {
		case "validate", "graph", "schema":
			if cmd.Long == "" || cmd.Example == "" {
				t.Errorf("%s lacks Long or Example", cmd.Name())
			}
		}
	}
}

// TestValidateOnce: --once makes kafka bounded, so a parquet sink and an
// aggregate behind it are fine, while truncating a file behind a source that
// commits stays refused, and the HTTP source never ends.
func TestValidateOnce(t *testing.T) {
	const text = `flowrun: 1
schemas:
  post: {id: int64, category: string}
sources:
  posts: {kafka: {brokers: [embedded], topic: posts, group: g, schema: post}}
  api: {http: {schema: post}}
transforms:
  per_category: {from: posts, aggregate: {key: [category], columns: {n: count()}}}
sinks:
  pins: {from: posts, file: {path: out/pins.parquet}}
  summary: {from: per_category, stdout: {}}
  answers: {from: api, file: {path: out/api.jsonl}}
  %s
`
	tests := []struct {
		name, sink, err string
	}{
		{"bounded", `more: {from: posts, file: {path: out/more.jsonl}}`, ""},
		{"truncate", `more: {from: posts, file: {path: out/more.jsonl, append: false}}`, "p.yaml:13:60: 'append: false' replaces out/more.jsonl"},
		{"http", `more: {from: api, file: {path: out/api.parquet}}`, "p.yaml:13:21: the parquet file sink acknowledges only when the run ends; behind the unbounded http source 'api'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.yaml")
			if err := os.WriteFile(path, []byte(fmt.Sprintf(text, tt.sink)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, errs, err := loadPipelineFor(validate.Options{Once: true}, path, nil, nil, op.Default)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if len(errs) > 0 {
				got = errs.Error()
			}
			if tt.err == "" && got != "" || !strings.Contains(got, tt.err) {
				t.Fatalf("errors:\n%s\nwant %q", got, tt.err)
			}
			if _, errs, _ := loadPipelineFor(validate.Options{}, path, nil, nil, op.Default); tt.name == "bounded" && len(errs) != 2 {
				t.Errorf("without --once: %d errors, want the parquet sink and the aggregate:\n%s", len(errs), errs.Error())
			}
		})
	}
	once := write(t, "once.yaml", fmt.Sprintf(text, ""))
	out, _, err := execute(t, op.Default, "validate", "--once", once)
	if err != nil || !strings.Contains(out, "ok:") {
		t.Errorf("validate --once: %v %s", err, out)
	}
	if _, _, err := execute(t, op.Default, "graph", once); exitCode(err) != 1 {
		t.Errorf("graph without --once: %v", err)
	}
	if out, _, err := execute(t, op.Default, "graph", "--once", once); err != nil || !strings.Contains(out, "flowchart") {
		t.Errorf("graph --once: %v %s", err, out)
	}
}

// TestHelpNamesFilesThatExist: every pipeline or document a command's help
// names is in the repository.
func TestHelpNamesFilesThatExist(t *testing.T) {
	re := regexp.MustCompile(`\b(?:examples|pipelines|bench|docs)/[\w./-]+\.(?:yaml|md)\b`)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, ref := range re.FindAllString(c.Short+"\n"+c.Long+"\n"+c.Example, -1) {
			if _, err := os.Stat(filepath.Join("..", "..", ref)); err != nil {
				t.Errorf("flowrun %s --help names %s, which does not exist", c.Name(), ref)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(op.Default))
}
