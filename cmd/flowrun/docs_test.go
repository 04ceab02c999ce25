package main

import (
	"os"
	"testing"

	"github.com/flowrun/flowrun/dsl/docgen"
	"github.com/flowrun/flowrun/runtime/op"
)

// TestOperatorDocs keeps docs/operators.md equal to what the registered
// operator specs say; -update rewrites it.
func TestOperatorDocs(t *testing.T) {
	got := docgen.Markdown(op.Default)
	const path = "../../docs/operators.md"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Fatal("docs/operators.md is out of date with the operator specs: go test ./cmd/flowrun -run TestOperatorDocs -update")
	}
}
