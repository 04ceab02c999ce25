package e2e

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
)

// TestKcatToFlowrunClean produces raw posts with kcat into a 4-partition
// topic and runs the cleaning pipeline (pipelines/pinterest_clean.yaml) with
// --once as a process.
//
// It proves: the batch run ends by itself with exit 0, and every produced
// post is accounted for exactly once: a pin for each distinct valid
// unique_id (no id twice), a dead letter for each post without unique_id or
// category (with the right reason), and the remainder are exactly the
// generator's repeated ids, which the dedupe drops:
// pins + dead letters + duplicates == N.
func TestKcatToFlowrunClean(t *testing.T) {
	brokers := testenv.Kafka(t)
	kafkatest.Kcat(t)
	t.Parallel()
	const n, seed = 5000, 11

	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	want := generate(seed, n)
	kafkatest.Produce(t, brokers, topic, want.lines)

	out := t.TempDir()
	t0 := time.Now()
	p := flowrun(t, "clean", "pipelines/pinterest_clean.yaml", map[string]string{
		"KAFKA_BROKERS": brokers[0], "TOPIC": topic, "GROUP": topic + "-group", "OUT": out,
	}, nil, "--once")
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("flowrun run --once exited %d, want 0", code)
	}
	t.Logf("clean --once over %d posts: %s", n, time.Since(t0).Round(time.Millisecond))

	pins, _ := readJSONLines[row](t, filepath.Join(out, "pins.jsonl"), false)
	dead, _ := readJSONLines[deadLetter](t, filepath.Join(out, "dead_letters.jsonl"), false)

	got := map[string]int{}
	for i, r := range pins {
		if r.UniqueID == nil || r.Category == nil {
			t.Errorf("pin %d lacks unique_id or category: %+v", i, r)
			continue
		}
		got[*r.UniqueID]++
	}
	wantPins := map[string]int{}
	for id := range want.validIDs {
		wantPins[id] = 1
	}
	if d := diffCounts(wantPins, got); d != "" {
		t.Errorf("pins.jsonl: each valid unique_id once (want/got counts):\n%s", d)
	}
	reasons := map[string]int{}
	for _, d := range dead {
		reasons[d.Reason]++
	}
	if reasons["require: missing unique_id"] != want.missingID || reasons["require: missing category"] != want.missingCat || len(reasons) > 2 {
		t.Errorf("dead letters by reason = %v, want %d missing unique_id and %d missing category",
			reasons, want.missingID, want.missingCat)
	}
	dupes := want.dupes()
	if total := len(pins) + len(dead) + dupes; total != n {
		t.Errorf("pins %d + dead letters %d + duplicates %d = %d, want %d", len(pins), len(dead), dupes, total, n)
	}
	t.Logf("%d pins, %d dead letters, %d duplicates dropped", len(pins), len(dead), dupes)
}

// TestTwoProcessesOneGroupSurviveSigkill runs two cleaning processes in one
// consumer group over a 4-partition topic that kcat keeps producing to,
// SIGKILLs one of them mid-stream, keeps producing, waits for the survivor
// to take over the dead member's partitions (after the group's session
// timeout) and catch up, then stops it with SIGINT.
//
// It proves at-least-once delivery across a crash: the union of both output
// directories holds a pin for every valid unique_id that is in the topic
// (read back with kcat as the ground truth) and a dead letter for every
// invalid post; nothing is lost although the killed process had read, but
// not committed, part of its partitions. Ids written by both processes are
// counted and logged: they are the killed process's uncommitted range that
// the survivor read again (plus ids the generator itself repeats that fell
// on partitions of different members; the dedupe is per process). It also
// proves the survivor still stops cleanly (exit 0) after the takeover. A torn
// last line in the killed process's files is tolerated.
//
// It does not prove exactly where the killed process's committed offsets
// were: the duplicate count is reported, not bounded.
func TestTwoProcessesOneGroupSurviveSigkill(t *testing.T) {
	brokers := testenv.Kafka(t)
	kcat := kafkatest.Kcat(t)
	t.Parallel()
	const n, seed, chunk = 8000, 23, 100

	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	want := generate(seed, n)

	// One kcat producer for the whole test, fed in chunks.
	prod := exec.Command(kcat, "-P", "-b", strings.Join(brokers, ","), "-t", topic)
	stdin, err := prod.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var prodErr syncBuffer
	prod.Stderr = &prodErr
	if err := prod.Start(); err != nil {
		t.Fatal(err)
	}
	prodDone := make(chan struct{}) // closed when kcat -P has exited
	var prodWaitErr error           // valid after prodDone
	go func() { prodWaitErr = prod.Wait(); close(prodDone) }()
	t.Cleanup(func() {
		select {
		case <-prodDone:
		default:
			_ = prod.Process.Kill()
			<-prodDone
		}
	})

	killed := make(chan struct{})
	var produced atomic.Int64
	producerErr := make(chan error, 1)
	go func() {
		defer stdin.Close()
		for i := 0; i < n; {
			c := chunk
			select {
			case <-killed:
			default:
				if i >= n/2 {
					// Keep at least half of the posts for after the kill,
					// but keep a trickle flowing so that A is busy (reading,
					// with uncommitted batches) when it is killed.
					c = 10
				}
			}
			var b strings.Builder
			for _, l := range want.lines[i:min(i+c, n)] {
				b.WriteString(l)
				b.WriteByte('\n')
			}
			if _, err := io.WriteString(stdin, b.String()); err != nil {
				producerErr <- fmt.Errorf("write to kcat -P: %w", err)
				return
			}
			i = min(i+c, n)
			produced.Store(int64(i))
			time.Sleep(100 * time.Millisecond)
		}
		producerErr <- nil
	}()

	group := topic + "-group"
	outA, outB := t.TempDir(), t.TempDir()
	sets := func(out string) map[string]string {
		return map[string]string{"KAFKA_BROKERS": brokers[0], "TOPIC": topic, "GROUP": group, "OUT": out}
	}
	t0 := time.Now()
	a := flowrun(t, "clean A", "pipelines/pinterest_clean.yaml", sets(outA), nil)
	b := flowrun(t, "clean B", "pipelines/pinterest_clean.yaml", sets(outB), nil)
	pinsA, pinsB := filepath.Join(outA, "pins.jsonl"), filepath.Join(outB, "pins.jsonl")
	if !eventually(40*time.Second, func() bool { return countLines(pinsA) > 0 && countLines(pinsB) > 0 || a.exited() || b.exited() }) {
		t.Fatalf("both members did not write output within 40s (A %d lines, B %d lines, %d produced)",
			countLines(pinsA), countLines(pinsB), produced.Load())
	}
	// Wait until both members flushed and committed (file flush and offset
	// commit are each every second): every partition has a committed
	// offset, so the kill leaves A with both committed and uncommitted work
	// (the trickle keeps it reading).
	if !eventually(20*time.Second, func() bool {
		c := kafkatest.Committed(t, brokers, group, topic)
		if len(c) < 4 || a.exited() || b.exited() {
			return a.exited() || b.exited()
		}
		for _, off := range c {
			if off <= 0 {
				return false
			}
		}
		return countLines(pinsA) > 0
	}) {
		t.Fatalf("the group did not commit on all 4 partitions within 20s: %v", kafkatest.Committed(t, brokers, group, topic))
	}
	if a.exited() || b.exited() {
		t.Fatalf("a member exited early: A exited=%v B exited=%v", a.exited(), b.exited())
	}
	linesAtKill := countLines(pinsA)
	a.signal(t, syscall.SIGKILL)
	if code := a.wait(t, 5*time.Second); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("A exited %d after SIGKILL", code)
	}
	close(killed)
	if produced.Load() == n {
		t.Errorf("production ended before the kill: the test did not kill A mid-stream")
	}
	t.Logf("SIGKILLed A after %s: %d posts produced, A had %d pins on disk, B %d",
		time.Since(t0).Round(time.Millisecond), produced.Load(), linesAtKill, countLines(pinsB))

	select {
	case err := <-producerErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("producer did not finish within 30s")
	}
	select {
	case <-prodDone:
		if prodWaitErr != nil {
			t.Fatalf("kcat -P: %v: %s", prodWaitErr, prodErr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("kcat -P did not exit within 30s of its input's end")
	}
	inTopic := kafkatest.Consume(t, brokers, topic)
	if len(inTopic) != n {
		t.Fatalf("topic holds %d messages, produced %d", len(inTopic), n)
	}

	// The survivor catches up once the group has expelled A (session
	// timeout) and it has read A's partitions from their committed offsets.
	type outcome struct {
		pins         map[string]int // unique_id -> processes that wrote it
		deadDistinct int
		cross        int // ids written by both
		torn         bool
	}
	// collect reads both outputs. A's files may end in a torn line (SIGKILL);
	// so may B's while it runs (the sink writes whole buffers, not lines),
	// but not after it stopped (final).
	collect := func(final bool) outcome {
		o := outcome{pins: map[string]int{}}
		dead := map[string]bool{}
		for _, dir := range []string{outA, outB} {
			rows, torn := readJSONLines[row](t, filepath.Join(dir, "pins.jsonl"), dir == outA || !final)
			o.torn = o.torn || torn && dir == outA
			seen := map[string]bool{}
			for _, r := range rows {
				if r.UniqueID != nil && !seen[*r.UniqueID] {
					seen[*r.UniqueID] = true
					o.pins[*r.UniqueID]++
				}
			}
			dls, torn := readJSONLines[deadLetter](t, filepath.Join(dir, "dead_letters.jsonl"), dir == outA || !final)
			o.torn = o.torn || torn && dir == outA
			for _, d := range dls {
				dead[d.Record] = true
			}
		}
		o.deadDistinct = len(dead)
		for _, c := range o.pins {
			if c > 1 {
				o.cross++
			}
		}
		return o
	}
	missing := func(o outcome) int {
		m := 0
		for id := range want.validIDs {
			if o.pins[id] == 0 {
				m++
			}
		}
		return m
	}
	tCatch := time.Now()
	caughtUp := eventually(45*time.Second, func() bool {
		o := collect(false)
		return missing(o) == 0 && o.deadDistinct >= want.missingID+want.missingCat || b.exited()
	})
	if b.exited() {
		t.Fatalf("survivor B exited (code %d) before catching up", b.exitCode)
	}
	t.Logf("survivor caught up %s after production ended (caught up: %v)", time.Since(tCatch).Round(time.Millisecond), caughtUp)
	took := b.stop(t)
	t.Logf("SIGINT to exit 0 of the survivor in %s", took.Round(time.Millisecond))

	o := collect(true)
	if m := missing(o); m > 0 {
		t.Errorf("%d of %d valid unique_ids are in neither output: lost", m, len(want.validIDs))
	}
	if o.deadDistinct != want.missingID+want.missingCat {
		t.Errorf("%d distinct dead letters, want %d (%d without unique_id, %d without category)",
			o.deadDistinct, want.missingID+want.missingCat, want.missingID, want.missingCat)
	}
	for id := range o.pins {
		if _, ok := want.validIDs[id]; !ok {
			t.Errorf("pin %s was never produced as a valid post", id)
		}
	}
	repeated := 0
	for id, c := range o.pins {
		if c > 1 && want.validIDs[id] > 1 {
			repeated++
		}
	}
	t.Logf("A %d pin lines, B %d; %d ids written by both processes (%d of them ids the generator repeats); torn last line in A: %v",
		countLines(pinsA), countLines(pinsB), o.cross, repeated, o.torn)
}
