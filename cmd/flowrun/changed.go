package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/testfile"
	"github.com/flowrun/flowrun/runtime/pipetest"
)

// A changed-files run (--changed, as a pre-commit hook passes the staged
// files) checks what the change can break rather than each file as given:
// a repository holds YAML that is not flowrun's (CI workflows, compose
// files), and an include fragment is not a pipeline on its own but can
// break every pipeline that includes it.

// fileKind is what a YAML file is to flowrun.
type fileKind int

const (
	kindOther    fileKind = iota // not a flowrun file
	kindPipeline                 // has the flowrun: version key
	kindTest                     // NAME.test.yaml
	kindFragment                 // included by some pipeline
)

// yamlHead holds the top-level keys that tell a pipeline from other YAML.
type yamlHead struct {
	Flowrun yaml.Node `yaml:"flowrun"`
	Include yaml.Node `yaml:"include"`
}

func readHead(path string) (yamlHead, bool) {
	var h yamlHead
	text, err := os.ReadFile(path)
	if err != nil {
		return h, false
	}
	if err := yaml.Unmarshal(text, &h); err != nil {
		return h, false
	}
	return h, true
}

// includesOf lists the cleaned paths a pipeline's include: names, relative
// to the pipeline's folder (as the parser resolves them; paths with
// ${VARS} are skipped, they cannot be resolved without a run's variables).
func includesOf(pipeline string, n *yaml.Node) []string {
	if n == nil {
		return nil
	}
	var names []string
	switch n.Kind {
	case yaml.ScalarNode:
		names = []string{n.Value}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode {
				names = append(names, c.Value)
			}
		}
	}
	var out []string
	for _, name := range names {
		if name == "" || strings.Contains(name, "${") {
			continue
		}
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(pipeline), name)
		}
		out = append(out, filepath.Clean(name))
	}
	return out
}

// pipelinesUnder lists the pipeline files under root (hidden folders and
// testdata skipped, as flowrun test does) with the files each includes.
func pipelinesUnder(root string) (map[string][]string, error) {
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !isYAML(path) || pipetest.IsTestFile(path) {
			return nil
		}
		if h, ok := readHead(path); ok && h.Flowrun.Kind != 0 {
			out[filepath.Clean(path)] = includesOf(path, &h.Include)
		}
		return nil
	})
	return out, err
}

func isYAML(path string) bool {
	return strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")
}

// changedTarget is one file a changed-files run checks, and why.
type changedTarget struct {
	path string
	kind fileKind
}

// expandChanged turns the changed files into the pipelines and test files
// to check: a pipeline or test file stands for itself, an include fragment
// for every pipeline under root that includes it, and other files are
// skipped (each skip and substitution is reported on notes).
func expandChanged(files []string, root string, notes io.Writer) ([]changedTarget, error) {
	var (
		out       []changedTarget
		seen      = map[string]bool{}
		pipelines map[string][]string
	)
	add := func(path string, k fileKind) {
		path = filepath.Clean(path)
		if !seen[path] {
			seen[path] = true
			out = append(out, changedTarget{path, k})
		}
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return nil, err // a deleted file is not passed by pre-commit; anything else is a mistake
		}
		if pipetest.IsTestFile(f) {
			add(f, kindTest)
			continue
		}
		if !isYAML(f) {
			fmt.Fprintf(notes, "skip: %s (not a YAML file)\n", f)
			continue
		}
		h, ok := readHead(f)
		if ok && h.Flowrun.Kind != 0 {
			add(f, kindPipeline)
			continue
		}
		if pipelines == nil {
			var err error
			if pipelines, err = pipelinesUnder(root); err != nil {
				return nil, err
			}
		}
		abs := filepath.Clean(f)
		var users []string
		for p, incs := range pipelines {
			for _, inc := range incs {
				if sameFile(inc, abs) {
					users = append(users, p)
				}
			}
		}
		if len(users) == 0 {
			if !ok {
				// Not YAML at all: the owner of a file named .yaml may
				// well be flowrun, and then the parse error matters.
				add(f, kindPipeline)
				continue
			}
			fmt.Fprintf(notes, "skip: %s (no flowrun: key, and no pipeline under %s includes it)\n", f, root)
			continue
		}
		sort.Strings(users)
		fmt.Fprintf(notes, "%s is included by %s: checking %s\n", f, strings.Join(users, ", "), plural(len(users), "it", "them"))
		for _, u := range users {
			add(u, kindFragment)
		}
	}
	return out, nil
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// testsByPipeline maps each pipeline under root to the test files that
// test it (NAME.test.yaml beside it, or a test file naming it with
// pipeline:).
func testsByPipeline(root string) (map[string][]string, error) {
	files, err := pipetest.Find([]string{root})
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		tf, _ := testfile.Parse(f, text)
		p := filepath.Clean(pipetest.PipelineFor(f, tf))
		out[p] = append(out[p], filepath.Clean(f))
	}
	return out, nil
}

// testsOf lists the test files that exercise a changed target: a test
// file itself; for a pipeline, the test files that test it and the
// pipeline itself when it has a tests: block.
func testsOf(t changedTarget, byPipeline map[string][]string) []string {
	if t.kind == kindTest {
		return []string{t.path}
	}
	out := append([]string(nil), byPipeline[t.path]...)
	if len(out) == 0 {
		// A pipeline outside root: its NAME.test.yaml beside it.
		base := strings.TrimSuffix(strings.TrimSuffix(t.path, ".yaml"), ".yml")
		for _, ext := range []string{".test.yaml", ".test.yml"} {
			if _, err := os.Stat(base + ext); err == nil {
				out = append(out, base+ext)
			}
		}
	}
	if pipetest.HasTestsBlock(t.path) {
		out = append(out, t.path)
	}
	return out
}
