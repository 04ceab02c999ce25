package e2e

import (
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowrun/flowrun/internal/emulator"
	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
)

// privateKafka runs a Kafka broker of the test's own (scripts/services/
// kafka.sh with its own data folder and ports) so it can be stopped and
// started without disturbing the shared broker other tests use.
type privateKafka struct {
	env  []string
	addr string
}

func newPrivateKafka(t *testing.T) *privateKafka {
	t.Helper()
	// Both listeners stay open until both ports are picked: two
	// freeAddr calls in a row may return the same port, and the broker
	// would then fail to bind its controller.
	port := func() (string, func()) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		return p, func() { ln.Close() }
	}
	broker, closeBroker := port()
	controller, closeController := port()
	closeBroker()
	closeController()
	k := &privateKafka{env: []string{
		"FLOWRUN_DATA=" + t.TempDir(),
		"FLOWRUN_KAFKA_PORT=" + broker,
		"FLOWRUN_KAFKA_CONTROLLER_PORT=" + controller,
	}}
	k.addr = "127.0.0.1:" + strings.TrimPrefix(k.env[1], "FLOWRUN_KAFKA_PORT=")
	k.run(t, "up")
	t.Cleanup(func() { k.run(t, "down") })
	return k
}

func (k *privateKafka) run(t *testing.T, verb string) {
	t.Helper()
	cmd := exec.Command("bash", "scripts/services/kafka.sh", verb)
	cmd.Dir = repoRoot
	cmd.Env = append(childEnv(), k.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kafka.sh %s: %v\n%s", verb, err, out)
	}
}

// TestRealKafkaOutageIngestRecovers stops a real Kafka broker mid-ingest
// and starts it again. It proves: while Kafka is down the API stays up and
// answers 503 (never 2xx) to every post; once Kafka is back the same
// process accepts posts again without a restart; and every post ever
// answered 200, before and after the outage, is in the topic.
func TestRealKafkaOutageIngestRecovers(t *testing.T) {
	testenv.Kafka(t) // the scripts and jars are there when the shared broker is
	kafkatest.Kcat(t)
	t.Parallel()
	k := newPrivateKafka(t)
	topic := kafkatest.Topic(t)
	ing, listen := startIngest(t, map[string]string{"KAFKA_BROKERS": k.addr, "TOPIC": topic}, nil, 30*time.Second)
	url := "http://" + listen + "/v1/posts"
	ctx := testContext(t)

	// Before: every post stored.
	before := generate(41, 300)
	stored := map[string]int{}
	for i, r := range postAll(ctx, url, before.lines, 4, nil) {
		if r.status != http.StatusOK {
			t.Fatalf("post %d before the outage: %d %v %s", i, r.status, r.err, r.body)
		}
		if id := idOf(t, before.lines[i]); id != "" {
			stored[id]++
		}
	}

	// During: a clean stop of the broker; posts must be refused with 503.
	k.run(t, "stop")
	during := generate(42, 12)
	for i, r := range postAll(ctx, url, during.lines, 4, nil) {
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("post %d while Kafka is down: %d %v %s, want 503", i, r.status, r.err, r.body)
		}
	}
	if ing.exited() {
		t.Fatalf("ingest exited (%d) while Kafka was down", ing.exitCode)
	}

	// After: the broker returns with its data; the emulator (retrying on
	// 503 with back-off) gets every post accepted by the same process.
	k.run(t, "start")
	const after = 300
	rep, err := emulator.Run(ctx, emulator.Config{URL: url, Count: after, Posters: 4, Seed: 43, MaxRetries: 12, MaxBackoff: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != after || rep.Failed != 0 {
		t.Fatalf("after Kafka returned, want all %d accepted:\n%s", after, rep)
	}
	t.Logf("after the outage: %d accepted, %d retries (%v)", rep.Accepted, rep.Retried, rep.RetriedBy)
	for _, line := range generate(43, after).lines {
		if id := idOf(t, line); id != "" {
			stored[id]++
		}
	}

	inTopic := map[string]int{}
	for _, m := range kafkatest.Consume(t, []string{k.addr}, topic) {
		if id := idOf(t, m); id != "" {
			inTopic[id]++
		}
	}
	missing := 0
	for id := range stored {
		if inTopic[id] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d ids answered 200 are not in the topic", missing, len(stored))
	}
	ing.stop(t)
}
