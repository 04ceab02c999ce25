package main

import (
	"path/filepath"
	"testing"

	"github.com/flowrun/flowrun/operators/op"
)

// TestShippedPipelinesValidate checks every pipeline the project ships
// against the real operator registry.
func TestShippedPipelinesValidate(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../../pipelines/*.yaml", "../../examples/*.yaml", "../../bench/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no pipeline files found")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			res, errs, err := loadPipeline(f, nil, op.Default)
			if err != nil {
				t.Fatal(err)
			}
			if len(errs) > 0 {
				t.Fatalf("%s does not validate:\n%s", f, errs.Render())
			}
			if len(res.Nodes) == 0 {
				t.Fatalf("%s has no nodes", f)
			}
		})
	}
}
