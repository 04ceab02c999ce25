package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowrun/flowrun/runtime/op"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestValidateGolden checks the exact messages `flowrun validate` prints for
// mistakes only the real operators can find: expression types against the
// upstream schema, unknown functions and columns, aggregates over the wrong
// type. The grammar-level mistakes are golden-tested in dsl/validate.
func TestValidateGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/validate/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, errs, err := loadPipeline(f, nil, op.Default)
			if err != nil {
				t.Fatal(err)
			}
			if len(errs) == 0 {
				t.Fatalf("%s validated without errors", f)
			}
			got := errs.Render()
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("messages changed:\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}
