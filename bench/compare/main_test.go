package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
		out  string // substring of the report
	}{
		{
			name: "key order, null as absent, number forms",
			a:    `{"unique_id":"1","n":1200,"t":null,"l":["x"]}` + "\n",
			b:    `{"l":["x"],"n":1.2e3,"unique_id":"1"}` + "\n",
			same: true,
		},
		{
			name: "duplicates in any order",
			a:    `{"unique_id":"1","v":1}` + "\n" + `{"unique_id":"1","v":2}` + "\n",
			b:    `{"unique_id":"1","v":2}` + "\n" + `{"unique_id":"1","v":1}` + "\n",
			same: true,
		},
		{
			name: "a field differs",
			a:    `{"unique_id":"1","n":1199}` + "\n",
			b:    `{"unique_id":"1","n":1200}` + "\n",
			out:  "field n differs in 1 records",
		},
		{
			name: "string is not a number",
			a:    `{"unique_id":"1","n":"1200"}` + "\n",
			b:    `{"unique_id":"1","n":1200}` + "\n",
			out:  "field n differs",
		},
		{
			name: "only in one side",
			a:    `{"unique_id":"1"}` + "\n" + `{"unique_id":"2"}` + "\n",
			b:    `{"unique_id":"1"}` + "\n",
			out:  "only in A: 2",
		},
		{
			name: "duplicate missing on one side",
			a:    `{"unique_id":"1","v":1}` + "\n" + `{"unique_id":"1","v":1}` + "\n",
			b:    `{"unique_id":"1","v":1}` + "\n",
			out:  "(record count for one unique_id) differs in 1 records",
		},
		{
			name: "record without key",
			a:    `{"v":1}` + "\n",
			b:    `{"v":1}` + "\n",
			out:  "1 without unique_id",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
			if err := os.WriteFile(a, []byte(tt.a), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(b, []byte(tt.b), 0o644); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			same, err := run(&out, a, b, "unique_id", 3)
			if err != nil {
				t.Fatal(err)
			}
			if same != tt.same {
				t.Errorf("same = %v, want %v; report:\n%s", same, tt.same, out.String())
			}
			if !strings.Contains(out.String(), tt.out) {
				t.Errorf("report lacks %q:\n%s", tt.out, out.String())
			}
		})
	}
}

func TestRunBadJSON(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.jsonl")
	if err := os.WriteFile(a, []byte("{\"unique_id\":\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(&strings.Builder{}, a, a, "unique_id", 3); err == nil || !strings.Contains(err.Error(), "a.jsonl:1") {
		t.Fatalf("err = %v, want one naming a.jsonl:1", err)
	}
}
