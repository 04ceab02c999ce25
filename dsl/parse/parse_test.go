package parse

import (
	"strings"
	"testing"

	"github.com/flowrun/flowrun/dsl/ast"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParse(t *testing.T) {
	src := `flowrun: 1
name: demo
description: a demo
schedule: "@hourly"
vars: {OUT: out, LEVEL: low}
schemas:
  pin: {id: int64, title: string}
sources:
  posts:
    file: {path: "${DATA:-data}/*.jsonl", schema: pin}
    dead_letter: bad
transforms:
  clean: {from: posts, map: {a: "$${literal} ${LEVEL}"}, description: cleans}
windows:
  w: {from: [clean, posts], tumble: {size: 1m}}
sinks:
  out: {from: w, file: {path: "${OUT}/x"}}
  bad: {file: ~}
tests:
  - name: t1
`
	p, errs := Parse("p.yaml", []byte(src), env(map[string]string{"OUT": "/tmp/o"}))
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	if p.Name != "demo" || p.Description != "a demo" || p.Schedule != "@hourly" || p.SchedulePos.Line != 4 {
		t.Errorf("header: %+v", p)
	}
	wantVars := map[string]string{"OUT": "/tmp/o", "LEVEL": "low", "DATA": "data"}
	for k, v := range wantVars {
		if p.Vars[k] != v {
			t.Errorf("Vars[%s] = %q, want %q", k, p.Vars[k], v)
		}
	}
	if len(p.Schemas) != 1 || len(p.Schemas[0].Columns) != 2 || p.Schemas[0].Columns[1].Type != "string" {
		t.Errorf("schemas: %+v", p.Schemas)
	}
	if len(p.Nodes) != 5 {
		t.Fatalf("nodes: %d", len(p.Nodes))
	}
	posts := p.Node("posts")
	if posts.Type != "file" || posts.Section != ast.Sources || posts.DeadLetter.Name != "bad" || posts.TypePos.Line != 10 {
		t.Errorf("posts: %+v", posts)
	}
	if got := posts.Config.Content[1].Value; got != "data/*.jsonl" {
		t.Errorf("path = %q", got)
	}
	clean := p.Node("clean")
	if got := clean.Config.Content[1].Value; got != "${literal} low" {
		t.Errorf("map expr = %q", got)
	}
	if clean.Description != "cleans" {
		t.Errorf("description %q", clean.Description)
	}
	w := p.Node("w")
	if len(w.From) != 2 || w.From[1].Name != "posts" || w.From[1].Pos.Line != 15 || w.Section != ast.Windows {
		t.Errorf("w: %+v", w)
	}
	if got := p.Node("out").Config.Content[1].Value; got != "/tmp/o/x" {
		t.Errorf("out path = %q", got)
	}
	if p.Tests == nil {
		t.Error("tests dropped")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // "line:col: message" substrings, in order
	}{
		{"empty", "", []string{"1:1: missing 'flowrun: 1'"}},
		{"not mapping", "- a\n", []string{"1:1: a pipeline file must be a mapping"}},
		{"syntax", "flowrun: 1\nsources: {a: [1\n", []string{"2:14: YAML syntax error"}},
		{"unknown key", "flowrun: 1\nsoruces: {}\n", []string{"2:1: unknown top-level key 'soruces' (did you mean 'sources'?)"}},
		{"undefined var", "flowrun: 1\nname: x-${NOPE}\n", []string{"2:9: undefined variable 'NOPE'"}},
		{"bad var", "flowrun: 1\nname: '${a-b}'\n", []string{"2:8: bad variable reference '${a-b}'"}},
		{"unterminated", "flowrun: 1\nname: ${X\n", []string{"2:7: unterminated '${'"}},
		{"two vars one line", "flowrun: 1\nname: ${A}${B}\n", []string{"2:7: undefined variable 'A'", "2:11: undefined variable 'B'"}},
		{"block scalar", "flowrun: 1\ndescription: |\n  one\n  two ${Q}\n", []string{"4:7: undefined variable 'Q'"}},
		{"duplicate", "flowrun: 1\nsources:\n  a: {x: 1}\nsinks:\n  a: {from: a, y: 1}\n", []string{"5:3: duplicate node name 'a'"}},
		{"no operator", "flowrun: 1\nsinks:\n  a: {from: b}\n", []string{"3:3: sink 'a' has no operator"}},
		{"null node", "flowrun: 1\nsinks:\n  a:\n", []string{"3:3: sink 'a' has no operator"}},
		{"two operators", "flowrun: 1\ntransforms:\n  a: {from: b, x: 1, y: 2, z: 3}\n", []string{"3:22: transform 'a' has 3 operator keys ('x', 'y', 'z')"}},
		{"from type", "flowrun: 1\nsinks:\n  a: {from: {x: 1}, o: 1}\n", []string{"3:13: 'from' must be a node name"}},
		{"version", "flowrun: '2'\n", []string{"1:10: unsupported pipeline version"}},
		{"two docs", "flowrun: 1\n---\nflowrun: 1\n", []string{"2:1: a pipeline file holds one YAML document"}},
		{"schema column", "flowrun: 1\nschemas:\n  s: {a: [int64]}\n", []string{"3:10: column 'a' needs a type"}},
		{"anchor", "flowrun: 1\nname: *nope\n", []string{"2:7: YAML syntax error: unknown anchor 'nope'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := Parse("f.yaml", []byte(tt.src), nil)
			got := errs.Error()
			lines := strings.Split(got, "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d errors:\n%s\nwant %q", len(lines), got, tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], "f.yaml:"+w) {
					t.Errorf("error %d = %q, want %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestLookupOverridesVars(t *testing.T) {
	src := "flowrun: 1\nvars: {A: file}\nname: ${A}-${B:-dflt}\n"
	p, errs := Parse("f", []byte(src), env(map[string]string{"A": "env", "B": "b"}))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if p.Name != "env-b" {
		t.Errorf("name = %q", p.Name)
	}
	p, _ = Parse("f", []byte(src), nil)
	if p.Name != "file-dflt" {
		t.Errorf("name = %q", p.Name)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"flowrun: 1\nsources:\n  a: {file: {path: x}}\nsinks:\n  b: {from: a, file: ${X:-y}}\n",
		"flowrun: 1\nvars: {A: '${B}'}\nname: $${A} ${A}\n",
		"a: [1\n", "flowrun: 1\n---\nx", "transforms:\n  t: {form: a, map: {}}\n", "name: |\n  ${\n",
		"flowrun: 1\nsinks:\n  x: &a {o: 1}\n  y: *a\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		_, errs := Parse("fuzz.yaml", text, env(map[string]string{"X": "1"}))
		n := countLines(text)
		for _, e := range errs {
			if !e.Pos.IsValid() || e.Pos.Line > n || e.Pos.Column < 1 {
				t.Fatalf("error outside the file (%d lines): %v", n, e)
			}
			_ = e.Render()
		}
	})
}
