package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
)

// TestKillAndRestartKeepsEveryRow runs pipelines/pinterest_clean.yaml as a
// user would, against real Kafka: posts are produced, flowrun is killed
// (SIGKILL) while it works, more posts are produced, and a second run
// (--once) finishes the topic. The output file only grows: what the first
// run wrote is still there, and every valid post is in it: a sink that
// truncates at start, or offsets committed for rows that never reached the
// file, fail it. (Whether a kill lands between an early ack and the write
// is a matter of timing; operators/sink/file tests ack-after-sync exactly.)
func TestKillAndRestartKeepsEveryRow(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := kafkatest.Topic(t)
	group := topic + "-g"
	dir := t.TempDir()
	pins := filepath.Join(dir, "pins.jsonl")

	gen := posts.New(11)
	want := map[string]bool{} // unique_ids of the posts that must be in pins
	newPosts := func(n int) []string {
		var p posts.Post
		lines := make([]string, n)
		for i := range lines {
			gen.Next(&p)
			lines[i] = string(posts.AppendJSON(nil, &p))
			if !p.MissingUniqueID && !p.MissingCategory {
				want[p.UniqueID] = true
			}
		}
		return lines
	}
	committed := func() int64 {
		var n int64
		for _, off := range kafkatest.Committed(t, brokers, group, topic) {
			n += off
		}
		return n
	}
	args := func(extra ...string) []string {
		return append([]string{"run", "../../pipelines/pinterest_clean.yaml", "-q",
			"--set", "KAFKA_BROKERS=" + strings.Join(brokers, ","), "--set", "TOPIC=" + topic,
			"--set", "GROUP=" + group, "--set", "OUT=" + dir}, extra...)
	}

	// Posts keep arriving while the first run works: 2,000 before it
	// starts, then 2,000 every 200ms.
	batches := [][]string{newPosts(2000)}
	for range 15 {
		batches = append(batches, newPosts(2000))
	}
	first := int64(2000 * len(batches))
	kafkatest.Produce(t, brokers, topic, batches[0])
	cmd := flowrunCmd(t, args()...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	producing := make(chan struct{})
	go func() {
		defer close(producing)
		for _, b := range batches[1:] {
			time.Sleep(200 * time.Millisecond)
			kafkatest.Produce(t, brokers, topic, b)
		}
	}()
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	// Kill as soon as some offsets are committed, most likely while rows
	// are still in flight and in the sink's buffer.
	var atKill int64
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if atKill = committed(); atKill > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing committed after 60s:\n%s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	<-producing
	afterKill, err := os.ReadFile(pins)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(afterKill, '\n'); i >= 0 {
		afterKill = afterKill[:i+1] // a line the kill cut off is not kept
	} else {
		afterKill = nil
	}
	t.Logf("killed with %d of %d offsets committed, %d lines in the file", atKill, first, bytes.Count(afterKill, []byte("\n")))

	kafkatest.Produce(t, brokers, topic, newPosts(2000))
	cmd = flowrunCmd(t, args("--once")...)
	stderr.Reset()
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("second run: %v\n%s", err, stderr.String())
	}
	final, err := os.ReadFile(pins)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(final, afterKill) {
		t.Fatalf("the second run changed what the first one wrote (%d bytes before, %d after)", len(afterKill), len(final))
	}
	got := map[string]bool{}
	for _, row := range readJSONLines(t, pins) {
		id, _ := row["unique_id"].(string)
		got[id] = true
	}
	var missing []string
	for id := range want {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 || len(got) != len(want) {
		t.Fatalf("%d valid posts produced, %d distinct in the file; missing %d, e.g. %v", len(want), len(got), len(missing), missing[:min(3, len(missing))])
	}
}

// TestFullDiskFailsTheRun: a sink that cannot write (a full disk) fails the
// run with exit status 1 and a message naming the file and the reason.
func TestFullDiskFailsTheRun(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	file := filepath.Join(t.TempDir(), "p.yaml")
	const text = `flowrun: 1
sources:
  posts: {generate: {count: 5000, seed: 1}}
sinks:
  out: {from: posts, file: {path: /dev/full, format: json}}
`
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := flowrunCmd(t, "run", file, "-q")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var xe *exec.ExitError
	if !errors.As(err, &xe) || xe.ExitCode() != 1 {
		t.Fatalf("exit: %v, want exit status 1:\n%s", err, stderr.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, "file sink /dev/full") || !strings.Contains(msg, "no space left on device") {
		t.Fatalf("stderr does not name the file and the reason:\n%s", msg)
	}
}
