package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/op"
)

// TestProgressBarOfALakeRead: a bounded lake read shows a bar over the
// bytes of its files, with files and rows of the total from the lake
// source's progress, and ends at all files, rows and bytes.
func TestProgressBarOfALakeRead(t *testing.T) {
	dir := t.TempDir()
	lake := filepath.Join(dir, "lake")
	writer := filepath.Join(dir, "writer.yaml")
	os.WriteFile(writer, []byte(lakeWriter), 0o644)
	if msg, err := flowrun(t, "run", writer, "--set", "LAKE="+lake, "--batch-rows", "100", "-q"); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	reader := filepath.Join(dir, "reader.yaml")
	os.WriteFile(reader, []byte(`flowrun: 1
name: reader
sources:
  posts: {lake: {path: "${LAKE}"}}
sinks:
  out: {from: posts, file: {path: "${OUT}/posts.jsonl"}}
`), 0o644)
	res, errs, err := loadPipelineFor(validate.Options{Once: true}, reader, []string{"LAKE=" + lake, "OUT=" + dir}, nil, op.Default)
	if err != nil || len(errs) > 0 {
		t.Fatalf("%v %v", err, errs)
	}
	p, err := exec.New(res, exec.Options{Once: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var src *exec.Node
	for _, n := range p.Nodes {
		if n.Name == "posts" {
			src = n
		}
	}
	// How many files the writer made depends on how the sink rolls them
	// (file_rows: 37); the progress must count exactly the files there are.
	files, err := filepath.Glob(filepath.Join(lake, "dt=2026-11-24", "*.parquet"))
	if err != nil || len(files) < 2 {
		t.Fatalf("the writer made %d files (%v); want several", len(files), err)
	}
	pr, ok := src.Progress()
	if !ok || pr.Files != int64(len(files)) || pr.TotalFiles != int64(len(files)) || pr.Rows != 1000 || pr.TotalBytes == 0 || pr.Bytes != pr.TotalBytes {
		t.Fatalf("lake progress %+v, %v; want %d/%d files, 1000 rows, all bytes", pr, ok, len(files), len(files))
	}
	// The bar: the run has ended, so one tick shows the final state.
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { time.Sleep(700 * time.Millisecond); close(done) }()
	showProgress(&out, p, time.Now().Add(-time.Second), done)
	text := out.String()
	if !strings.Contains(text, fmt.Sprintf("files %d/%d  rows 1,000", len(files), len(files))) || !strings.Contains(text, "100%") ||
		!regexp.MustCompile(`\|[█]+\|`).MatchString(text) {
		t.Fatalf("bar output %q", text)
	}
	if testing.Verbose() {
		t.Logf("bar: %q", text)
	}
}
