package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowrun/flowrun/internal/testenv"
)

// TestPreCommitHooks runs this repository's .pre-commit-hooks.yaml with the
// real pre-commit tool on a throwaway repository: a clean pipeline and its
// passing test go through, YAML that is not flowrun's is left alone, a typo
// and a wrong expectation are stopped with their file:line, and a change
// to an include fragment or to a pipeline alone is checked through the
// pipelines that include it and their tests.
func TestPreCommitHooks(t *testing.T) {
	preCommit := testenv.Tool(t, "pre-commit", "python3 -m pip install pre-commit")
	git := testenv.Tool(t, "git", "apt-get install git")
	repoRoot, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "flowrun"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := t.TempDir()
	env := append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"PRE_COMMIT_HOME="+filepath.Join(work, ".cache"),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	repo := filepath.Join(work, "pipelines-repo")
	run := func(name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = repo, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(name string, args ...string) {
		t.Helper()
		if out, err := run(name, args...); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	must(git, "init", "-q")
	copyFile(t, "../../runtime/pipetest/testdata/clean.yaml", filepath.Join(repo, "clean.yaml"))
	copyFile(t, "../../runtime/pipetest/testdata/pass.test.yaml", filepath.Join(repo, "clean.test.yaml"))
	// YAML of other tools lives in the same repositories.
	if err := os.MkdirAll(filepath.Join(repo, ".github", "workflows"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "compose.yaml"), []byte("services:\n  db: {image: postgres}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must(git, "add", ".")

	hooks := func(files ...string) (string, error) {
		var out strings.Builder
		var firstErr error
		for _, id := range []string{"flowrun-validate", "flowrun-test"} {
			args := append([]string{"try-repo", repoRoot, id, "--files"}, files...)
			o, err := run(preCommit, args...)
			out.WriteString(o)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
		return out.String(), firstErr
	}
	if out, err := hooks("clean.yaml", "clean.test.yaml", "compose.yaml"); err != nil {
		t.Fatalf("hooks fail on a clean pipeline: %v\n%s", err, out)
	}

	// A typo in the pipeline: flowrun-validate stops it with the position.
	text, _ := os.ReadFile(filepath.Join(repo, "clean.yaml"))
	broken := strings.Replace(string(text), "parse_count(n)", "parse_cont(n)", 1)
	if err := os.WriteFile(filepath.Join(repo, "clean.yaml"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := hooks("clean.yaml")
	if err == nil || !strings.Contains(out, "clean.yaml:11:") || !strings.Contains(out, "unknown function 'parse_cont'") {
		t.Fatalf("a typo must fail the hook with its position: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(repo, "clean.yaml"), text, 0o644); err != nil {
		t.Fatal(err)
	}

	// A wrong expectation: flowrun-test stops it with the diff.
	tt, _ := os.ReadFile(filepath.Join(repo, "clean.test.yaml"))
	wrong := strings.Replace(string(tt), "{id: b, n: 7}", "{id: b, n: 8}", 1)
	if err := os.WriteFile(filepath.Join(repo, "clean.test.yaml"), []byte(wrong), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = hooks("clean.test.yaml")
	if err == nil || !strings.Contains(out, `not produced: {id: "b", n: 8}`) {
		t.Fatalf("a wrong expectation must fail the hook with the diff: %v\n%s", err, out)
	}
}

// TestPreCommitHooksFragments: a change to an included fragment alone, or to
// a pipeline without its test file, goes through the pipelines that include
// the fragment and through their tests.
func TestPreCommitHooksFragments(t *testing.T) {
	preCommit := testenv.Tool(t, "pre-commit", "python3 -m pip install pre-commit")
	git := testenv.Tool(t, "git", "apt-get install git")
	repoRoot, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "flowrun"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := t.TempDir()
	env := append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"PRE_COMMIT_HOME="+filepath.Join(work, ".cache"))
	repo := filepath.Join(work, "pipelines-repo")
	if err := os.MkdirAll(filepath.Join(repo, "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(repo, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const fragment = `transforms:
  typed:
    from: posts
    map: {n: parse_count(n)}
`
	write("shared/typing.yaml", fragment)
	write("clean.yaml", `flowrun: 1
name: clean
include: shared/typing.yaml
schemas:
  post: {id: string, n: string}
sources:
  posts:
    file: {path: in.jsonl, schema: post}
sinks:
  out: {from: typed, file: {path: out.jsonl}}
`)
	write("clean.test.yaml", `tests:
  - name: counts are parsed
    input:
      posts: [{id: a, n: 10k}]
    expect:
      out: [{id: a, n: 10000}]
`)
	hook := func(id string, files ...string) (string, error) {
		args := append([]string{"try-repo", repoRoot, id, "--files"}, files...)
		cmd := exec.Command(preCommit, args...)
		cmd.Dir, cmd.Env = repo, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := exec.Command(git, "-C", repo, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	if out, err := exec.Command(git, "-C", repo, "add", ".").CombinedOutput(); err != nil {
		t.Fatalf("git add: %v\n%s", err, out)
	}
	for _, id := range []string{"flowrun-validate", "flowrun-test"} {
		if out, err := hook(id, "shared/typing.yaml"); err != nil {
			t.Fatalf("%s fails on a good fragment: %v\n%s", id, err, out)
		}
	}

	// A typo in the fragment: validate names the fragment's line.
	write("shared/typing.yaml", strings.Replace(fragment, "parse_count", "parse_cont", 1))
	out, err := hook("flowrun-validate", "shared/typing.yaml")
	if err == nil || !strings.Contains(out, "shared/typing.yaml:4:") || !strings.Contains(out, "unknown function 'parse_cont'") {
		t.Fatalf("a typo in a fragment must fail the hook with the fragment's position: %v\n%s", err, out)
	}

	// A fragment change that breaks the including pipeline's test.
	write("shared/typing.yaml", strings.Replace(fragment, "parse_count(n)", "parse_count(n) + 1", 1))
	out, err = hook("flowrun-test", "shared/typing.yaml")
	if err == nil || !strings.Contains(out, "not produced: {id: \"a\", n: 10000}") {
		t.Fatalf("a fragment change that breaks a test must fail the test hook: %v\n%s", err, out)
	}
	write("shared/typing.yaml", fragment)

	// The pipeline changed alone (its test file untouched): its tests run.
	write("clean.yaml", strings.Replace(`flowrun: 1
name: clean
include: shared/typing.yaml
schemas:
  post: {id: string, n: string}
sources:
  posts:
    file: {path: in.jsonl, schema: post}
transforms:
  kept:
    from: typed
    filter: n > 100000
sinks:
  out: {from: kept, file: {path: out.jsonl}}
`, "", "", 0))
	out, err = hook("flowrun-test", "clean.yaml")
	if err == nil || !strings.Contains(out, "not produced: {id: \"a\", n: 10000}") {
		t.Fatalf("a pipeline change that breaks its test must fail the test hook: %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
