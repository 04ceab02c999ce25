package parse

import (
	"os"
	"path/filepath"
	"testing"
)

// TestInclude: an included file's schemas and nodes join the pipeline with
// positions in their own file; its vars are defaults the pipeline's own
// vars and the environment override.
func TestInclude(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("lib/clean.yaml", "description: shared\nvars: {A: fragA, B: fragB, C: fragC}\nschemas:\n  row: {id: int64}\ntransforms:\n  clean: {from: posts, map: {x: \"${A}-${B}-${C}\"}}\n")
	main := write("p.yaml", "flowrun: 1\ninclude: lib/clean.yaml\nvars: {A: mainA}\nsources:\n  posts: {gen: {}}\nsinks:\n  out: {from: clean, o: {}}\n")
	text, _ := os.ReadFile(main)
	p, errs := Parse(main, text, env(map[string]string{"B": "envB"}))
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	clean := p.Node("clean")
	if clean == nil {
		t.Fatal("included node missing")
	}
	if got := clean.Pos.File.Name; got != filepath.Join(dir, "lib/clean.yaml") || clean.Pos.Line != 6 {
		t.Errorf("clean at %s:%d", got, clean.Pos.Line)
	}
	if got := clean.Config.Content[1].Value; got != "mainA-envB-fragC" {
		t.Errorf("map value = %q, want mainA-envB-fragC", got)
	}
	if len(p.Schemas) != 1 || p.Schemas[0].Name != "row" || p.Schemas[0].Pos.File.Name != filepath.Join(dir, "lib/clean.yaml") {
		t.Errorf("schemas %+v", p.Schemas)
	}
	if p.Vars["C"] != "fragC" || p.Vars["A"] != "mainA" {
		t.Errorf("vars %v", p.Vars)
	}
	if p.Description != "" {
		t.Errorf("the fragment's description replaced the pipeline's: %q", p.Description)
	}
}
