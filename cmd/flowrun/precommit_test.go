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
// passing test go through, a typo and a wrong expectation are stopped with
// their file:line.
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
	if out, err := hooks("clean.yaml", "clean.test.yaml"); err != nil {
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
