// Package e2e runs the flowrun binary as real processes against a real Kafka
// (and, for the outage test, against flowrun's embedded broker in a process
// of its own that the test can kill). TestMain builds ./cmd/flowrun once;
// each test starts pipelines from pipelines/ with --set overrides (its own
// topic, group, output directory and listen port) and checks what reached
// Kafka or the output files against a replay of the seeded post generator.
//
// The tests need Kafka (testenv.Kafka: skipped locally when it is missing,
// failed under CI=true) and kcat (kafkatest.Kcat, same rule):
//
//	CI=true go test -race -count=1 ./tests/e2e/
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
)

var (
	repoRoot   string // the module root: pipelines/ paths are relative to it
	flowrunBin string // built by TestMain
	brokerBin  string // testdata/broker, built by TestMain
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test here is an integration test and skips itself.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "flowrun-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := build(dir); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// build finds the module root and builds the flowrun binary and the broker
// helper into dir.
func build(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("not inside a Go module")
	}
	repoRoot = filepath.Dir(gomod)
	flowrunBin = filepath.Join(dir, "flowrun")
	brokerBin = filepath.Join(dir, "broker")
	for _, b := range []struct{ out, pkg string }{
		{flowrunBin, "./cmd/flowrun"},
		{brokerBin, "./tests/e2e/testdata/broker"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = repoRoot
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b.pkg, err, msg)
		}
	}
	return nil
}

// proc is a child process owned by a test: t.Cleanup kills it if it is still
// running, and its stderr is logged when the test fails.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer // stdout and stderr

	done     chan struct{} // closed when the process has exited
	exitCode int           // valid after done
	started  time.Time
}

// start runs bin with args in the repository root; env adds to the
// test's environment.
func start(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = repoRoot
	p.cmd.Env = append(childEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p.started = time.Now()
	go func() {
		err := p.cmd.Wait()
		p.exitCode = exitCode(err)
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s (pid %d, exit %d) output:\n%s", p.name, p.cmd.Process.Pid, p.exitCode, p.out.tail(6000))
		}
	})
	return p
}

func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, kafkaclient.EnvEmbeddedAddr+"=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		t.Fatalf("signal %s to %s: %v", sig, p.name, err)
	}
}

// wait waits up to timeout for the process to exit and returns its exit
// code; it fails the test on timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.exitCode
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", p.name, timeout)
		return -1
	}
}

// stop sends SIGINT and requires exit code 0 within 20s; it returns how
// long the stop took.
func (p *proc) stop(t *testing.T) time.Duration {
	t.Helper()
	t0 := time.Now()
	p.signal(t, os.Interrupt)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("%s exited %d after SIGINT, want 0", p.name, code)
	}
	return time.Since(t0)
}

// startIngest starts pipelines/pinterest_ingest.yaml on a free local
// address with vars (LISTEN added) and env, and waits up to ready for it to
// answer /readyz; it returns the process and the address.
func startIngest(t *testing.T, vars map[string]string, env []string, ready time.Duration) (*proc, string) {
	t.Helper()
	listen := freeAddr(t)
	vars["LISTEN"] = listen
	p := flowrun(t, "ingest", "pipelines/pinterest_ingest.yaml", vars, env)
	waitReady(t, p, listen, ready)
	return p, listen
}

// flowrun starts `flowrun run PIPELINE [--set K=V ...] [extra...]`.
func flowrun(t *testing.T, name, pipeline string, sets map[string]string, env []string, extra ...string) *proc {
	t.Helper()
	args := []string{"run", pipeline, "--log-level", "warn"}
	for k, v := range sets {
		args = append(args, "--set", k+"="+v)
	}
	args = append(args, extra...)
	return start(t, name, env, flowrunBin, args...)
}

// freeAddr returns a loopback host:port nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady polls GET http://addr/readyz until 200, failing the test when
// the process exits first or timeout passes.
func waitReady(t *testing.T, p *proc, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if p.exited() {
			t.Fatalf("%s exited (code %d) before /readyz answered 200", p.name, p.exitCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /readyz not 200 within %s (last error %v)", p.name, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventually polls cond every 100ms until it is true or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) tail(n int) string {
	str := s.String()
	if len(str) > n {
		return "..." + str[len(str)-n:]
	}
	return str
}

// generated is what a replay of the post generator says was sent.
type generated struct {
	lines      []string       // each post as AppendJSON writes it
	ids        map[string]int // unique_id -> times sent (posts with an id)
	missingID  int            // posts sent without unique_id
	missingCat int            // posts with an id but without category
	validIDs   map[string]int // ids of posts with both id and category -> times
}

// generate replays posts.New(seed) for n posts.
func generate(seed int64, n int) generated {
	g := generated{ids: map[string]int{}, validIDs: map[string]int{}}
	gen := posts.New(seed)
	var p posts.Post
	for range n {
		gen.Next(&p)
		g.lines = append(g.lines, string(posts.AppendJSON(nil, &p)))
		switch {
		case p.MissingUniqueID:
			g.missingID++
			continue
		case p.MissingCategory:
			g.missingCat++
		default:
			g.validIDs[p.UniqueID]++
		}
		g.ids[p.UniqueID]++
	}
	return g
}

// dupes returns how many valid posts repeat an id already sent: the rows a
// per-process dedupe drops.
func (g generated) dupes() int {
	n := 0
	for _, c := range g.validIDs {
		n += c - 1
	}
	return n
}

// row is the part of a post or cleaned pin the tests look at.
type row struct {
	UniqueID *string `json:"unique_id"`
	Category *string `json:"category"`
}

// deadLetter is one line of dead_letters.jsonl (types.DeadLetterSchema).
type deadLetter struct {
	Record string `json:"record"`
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// readJSONLines reads a JSON-lines file into rows of T. A missing file is
// empty. With tolerateTorn, an undecodable last line without a trailing
// newline (a write cut short by SIGKILL) is dropped and reported.
func readJSONLines[T any](t *testing.T, path string, tolerateTorn bool) (rows []T, torn bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			last := !bytes.HasSuffix(data, []byte("\n")) && bytes.HasSuffix(data, line)
			if tolerateTorn && last {
				torn = true
				continue
			}
			t.Fatalf("%s:%d: %v: %.200s", path, lineNo, err, line)
		}
		rows = append(rows, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows, torn
}

// countLines counts complete lines in a file (0 when missing).
func countLines(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(data, []byte("\n"))
}

// testContext is a context ending at the test's deadline (minus a margin)
// or when the test ends.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	if d, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), d.Add(-5*time.Second))
	}
	t.Cleanup(cancel)
	return ctx
}
