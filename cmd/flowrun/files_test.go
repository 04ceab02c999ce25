package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowrun/flowrun/runtime/op"
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
			if strings.HasSuffix(f, ".test.yaml") {
				_, errs, err := checkTestFile(f, nil, op.Default)
				if err != nil || len(errs) > 0 {
					t.Fatalf("%s does not validate: %v\n%s", f, err, errs.Render())
				}
				return
			}
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

// TestReadmePipelineValidates keeps the README's example pipeline honest.
func TestReadmePipelineValidates(t *testing.T) {
	text, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const open = "```yaml\nflowrun: 1\n"
	i := strings.Index(string(text), open)
	if i < 0 {
		t.Fatal("README has no example pipeline")
	}
	body := string(text[i+len("```yaml\n"):])
	body = body[:strings.Index(body, "```")]
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := loadPipeline(path, nil, op.Default); err != nil || len(errs) > 0 {
		t.Fatalf("README pipeline: %v\n%s", err, errs.Render())
	}
}
