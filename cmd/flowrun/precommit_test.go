package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowrun/flowrun/internal/testenv"
)

// hookRepo is a throwaway git repository with this repository's hooks
// available through pre-commit try-repo and a freshly built flowrun first
// on the PATH.
type hookRepo struct {
	dir, preCommit, git, hooksFrom string
	env                            []string
}

func newHookRepo(t *testing.T) *hookRepo {
	t.Helper()
	preCommit := testenv.Tool(t, "pre-commit", "python3 -m pip install pre-commit")
	git := testenv.Tool(t, "git", "apt-get install git")
	hooksFrom, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "flowrun"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := t.TempDir()
	r := &hookRepo{dir: filepath.Join(work, "pipelines-repo"), preCommit: preCommit, hooksFrom: hooksFrom,
		env: append(os.Environ(),
			"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
			"PRE_COMMIT_HOME="+filepath.Join(work, ".cache"),
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := r.run(git, "init", "-q"); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	r.git = git
	return r
}

func (r *hookRepo) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = r.dir, r.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// write writes a file of the repository (folders made as needed).
func (r *hookRepo) write(t *testing.T, name, text string) {
	t.Helper()
	path := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stage runs git add on everything.
func (r *hookRepo) stage(t *testing.T) {
	t.Helper()
	if out, err := r.run(r.git, "add", "."); err != nil {
		t.Fatalf("git add: %v\n%s", err, out)
	}
}

// hook runs one hook of this repository on files; the error is the hook's
// failure.
func (r *hookRepo) hook(id string, files ...string) (string, error) {
	return r.run(r.preCommit, append([]string{"try-repo", r.hooksFrom, id, "--files"}, files...)...)
}

// TestPreCommitHooks runs this repository's .pre-commit-hooks.yaml with the
// real pre-commit tool on a throwaway repository: a clean pipeline and its
// passing test go through, YAML that is not flowrun's is left alone, a typo
// and a wrong expectation are stopped with their file:line, and a change
// to an include fragment or to a pipeline alone is checked through the
// pipelines that include it and their tests.
func TestPreCommitHooks(t *testing.T) {
	r := newHookRepo(t)
	repo := r.dir
	copyFile(t, "../../runtime/pipetest/testdata/clean.yaml", filepath.Join(repo, "clean.yaml"))
	copyFile(t, "../../runtime/pipetest/testdata/pass.test.yaml", filepath.Join(repo, "clean.test.yaml"))
	// YAML of other tools lives in the same repositories.
	r.write(t, "compose.yaml", "services:\n  db: {image: postgres}\n")
	r.stage(t)

	hooks := func(files ...string) (string, error) {
		var out strings.Builder
		var firstErr error
		for _, id := range []string{"flowrun-validate", "flowrun-test"} {
			o, err := r.hook(id, files...)
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
	r := newHookRepo(t)
	write := func(name, text string) { t.Helper(); r.write(t, name, text) }
	const fragment = `transforms:
  typed:
    from: posts
    map: {n: parse_count(n)}
`
	write("shared/typing.yaml", fragment)
	const pipeline = `flowrun: 1
name: clean
include: shared/typing.yaml
schemas:
  post: {id: string, n: string}
sources:
  posts:
    file: {path: in.jsonl, schema: post}
sinks:
  out: {from: typed, file: {path: out.jsonl}}
`
	write("clean.yaml", pipeline)
	write("clean.test.yaml", `tests:
  - name: counts are parsed
    input:
      posts: [{id: a, n: 10k}]
    expect:
      out: [{id: a, n: 10000}]
`)
	r.stage(t)
	hook := r.hook
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
	write("clean.yaml", strings.Replace(pipeline, "sinks:\n  out: {from: typed,",
		"transforms:\n  kept: {from: typed, filter: n > 100000}\nsinks:\n  out: {from: kept,", 1))
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
