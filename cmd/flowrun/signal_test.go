package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run the real CLI as a child process (to send it real
// signals): with FLOWRUN_TEST_MAIN=1 the test binary is flowrun.
func TestMain(m *testing.M) {
	if os.Getenv("FLOWRUN_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func flowrunCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "FLOWRUN_TEST_MAIN=1")
	return cmd
}

const unboundedPipeline = `
flowrun: 1
name: unbounded
vars: {OUT: out}
sources:
  posts: {generate: {rate: 20000, seed: 3}}
transforms:
  valid: {from: posts, filter: category != nil}
sinks:
  out: {from: valid, file: {path: "${OUT}/posts.jsonl"}}
`

// TestSigintDrainsAndExitsZero: Ctrl-C on an unbounded pipeline stops the
// source, writes every row already read, and exits 0 in bounded time.
func TestSigintDrainsAndExitsZero(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(unboundedPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := flowrunCmd(t, "run", file, "--set", "OUT="+dir, "--drain-timeout", "10s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Wait until rows reach the file, then interrupt.
	out := filepath.Join(dir, "posts.jsonl")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if st, err := os.Stat(out); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no output after 20s:\n%s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15s after SIGINT:\n%s", stderr.String())
	}
	// Every row the filter passed is in the file, whole.
	m := regexp.MustCompile(`(?m)^\s*valid\s+filter\s+(\d+)\s+(\d+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no summary line for 'valid':\n%s", stderr.String())
	}
	passed, _ := strconv.Atoi(m[2])
	lines := readJSONLines(t, out)
	if passed == 0 || len(lines) != passed {
		t.Fatalf("filter passed %d rows, file has %d\n%s", passed, len(lines), stderr.String())
	}
	t.Logf("drained %d rows", passed)
}
