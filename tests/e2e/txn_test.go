package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/flowrun/flowrun/internal/emulator"
	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
)

// batchBody is the NDJSON body of batch request req: posts with unique_id
// "r<req>-<i>", so what reached Kafka can be traced back to its request.
func batchBody(req, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"index":%d,"unique_id":"r%d-%d","title":"post %d of request %d","category":"art"}`+"\n", i, req, i, i, req)
	}
	return b.String()
}

// postBatch sends one batch request and returns its status (0 and the
// error when there was no answer) and body.
func postBatch(ctx context.Context, client *http.Client, url, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// idCounts counts the unique_ids of what a consumer with isolation level
// iso reads of topic.
func idCounts(t *testing.T, brokers []string, topic string, iso sarama.IsolationLevel) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, m := range kafkatest.Read(t, brokers, topic, iso) {
		got[idOf(t, string(m.Value))]++
	}
	return got
}

// TestIngestPartialFailureRetryStoresOnce runs pipelines/pinterest_ingest.yaml
// against a Kafka-protocol broker (kfake, in the test process) whose
// partition 1 refuses produce requests (NOT_ENOUGH_REPLICAS, retriable:
// a broker losing its replicas) while partition 0 stores them, so one batch
// request of 40 posts is stored in part. The request is answered 503; the
// client retries once the broker is healthy and gets 200.
//
// With the transactional sink (the pipeline's default) the failed attempt
// is aborted: a read_committed consumer sees none of its posts although
// some are in the log, and after the retry each post exactly once. Without
// it (KAFKA_TRANSACTIONAL=false) the same sequence leaves duplicates: the
// gap the transactional mode closes.
func TestIngestPartialFailureRetryStoresOnce(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	for _, txn := range []bool{true, false} {
		t.Run(fmt.Sprint("transactional=", txn), func(t *testing.T) {
			t.Parallel()
			const topic, n = "posts", 40
			kc := kafkatest.NewPartialCluster(t, topic)
			brokers := kc.Addrs
			ing, listen := startIngest(t, map[string]string{"KAFKA_BROKERS": brokers[0], "TOPIC": topic, "KAFKA_TRANSACTIONAL": fmt.Sprint(txn)}, nil, 20*time.Second)
			ctx := testContext(t)
			client := &http.Client{Timeout: 60 * time.Second}
			url := "http://" + listen + "/v1/posts/batch"
			body := batchBody(1, n)

			status, answer, err := postBatch(ctx, client, url, body)
			if status != http.StatusServiceUnavailable {
				t.Fatalf("batch while partition 1 fails: %d %v %s, want 503", status, err, answer)
			}
			if kc.Refused.Load() == 0 {
				t.Fatal("partition 1's broker was never asked")
			}
			inLog := idCounts(t, brokers, topic, sarama.ReadUncommitted)
			if len(inLog) == 0 || len(inLog) == n {
				t.Fatalf("the log holds %d of the %d posts; the test needs a partial write", len(inLog), n)
			}
			committed := idCounts(t, brokers, topic, sarama.ReadCommitted)
			t.Logf("after the 503 (%s): %d posts in the log, %d visible to read_committed", answer, len(inLog), len(committed))
			if txn && len(committed) != 0 {
				t.Fatalf("read_committed sees %d posts of a request answered 503", len(committed))
			}

			kc.Failing.Store(false) // the broker recovers; the client retries
			if status, answer, err := postBatch(ctx, client, url, body); status != http.StatusOK {
				t.Fatalf("retry: %d %v %s, want 200", status, err, answer)
			}
			got := idCounts(t, brokers, topic, sarama.ReadCommitted)
			twice := 0
			for i := range n {
				switch got[fmt.Sprintf("r1-%d", i)] {
				case 0:
					t.Errorf("post r1-%d missing after the retry answered 200", i)
				case 1:
				default:
					twice++
				}
			}
			t.Logf("after the retry: %d posts visible, %d of them twice", len(got), twice)
			if txn && twice > 0 {
				t.Errorf("%d posts visible twice after a 503 and a retry", twice)
			}
			if !txn && twice == 0 {
				t.Errorf("without transactions the retry duplicated nothing: the partial write was not visible")
			}
			ing.stop(t)
		})
	}
}

// TestTransactionalIngestReadOnceByKafkaSource: posts the emulator sends to
// pipelines/pinterest_ingest.yaml (transactional sink, real Kafka), single
// and batched, are read by the flowrun kafka source (read_committed) in a
// separate pipeline exactly once each: every post answered 200, nothing
// else, no transaction marker taken for a record.
func TestTransactionalIngestReadOnceByKafkaSource(t *testing.T) {
	brokers := testenv.Kafka(t)
	t.Parallel()
	const n, seed = 3000, 11
	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	ing, listen := startIngest(t, map[string]string{"KAFKA_BROKERS": brokers[0], "TOPIC": topic}, nil, 20*time.Second)
	ctx := testContext(t)
	single, err := emulator.Run(ctx, emulator.Config{URL: "http://" + listen + "/v1/posts", Count: n / 2, Posters: 16, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	// The batch run replays the same seed: its posts repeat the single
	// run's, so every unique_id is sent exactly twice.
	batched, err := emulator.Run(ctx, emulator.Config{URL: "http://" + listen + "/v1/posts", Count: n / 2, Posters: 4, Batch: 50, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	if single.Accepted != n/2 || batched.Accepted != n/2 {
		t.Fatalf("accepted %d single and %d batched, want %d each:\n%s\n%s", single.Accepted, batched.Accepted, n/2, single, batched)
	}
	ing.stop(t)

	out := filepath.Join(t.TempDir(), "posts.jsonl")
	rd := flowrun(t, "read", "tests/e2e/testdata/kafka_to_jsonl.yaml", map[string]string{
		"KAFKA_BROKERS": brokers[0], "TOPIC": topic, "GROUP": "flowrun-test-" + topic, "OUT": out,
	}, nil, "--once")
	if code := rd.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("reader exited %d", code)
	}
	rows, _ := readJSONLines[row](t, out, false)
	want := generate(seed, n/2)
	got := map[string]int{}
	noID := 0
	for _, r := range rows {
		if r.UniqueID == nil {
			noID++
			continue
		}
		got[*r.UniqueID]++
	}
	twice := map[string]int{}
	for id, c := range want.ids {
		twice[id] = 2 * c
	}
	if len(rows) != n || noID != 2*want.missingID {
		t.Errorf("the kafka source read %d posts (%d without id), the API accepted %d (%d without id)", len(rows), noID, n, 2*want.missingID)
	}
	if d := diffCounts(twice, got); d != "" {
		t.Errorf("unique_ids read differ from those sent (want/got counts):\n%s", d)
	}
}

// TestTransactionalIngestSigkillNoPartialBatch: 8 clients send batch
// requests of 50 posts to pipelines/pinterest_ingest.yaml (transactional
// sink, real Kafka); the process is SIGKILLed mid-stream, while
// transactions are open, and started again on the same address (so with
// the same transactional ids: the new producers fence the dead ones and
// the broker aborts what they left open). More requests then go to the
// new process. A read_committed consumer must see, for every request,
// either all of its posts or none, each at most once; all of them for
// every request answered 200. The posts of the second process being
// visible at once also shows nothing is left open (an open transaction
// would hold back the last stable offset until transaction_timeout).
func TestTransactionalIngestSigkillNoPartialBatch(t *testing.T) {
	brokers := testenv.Kafka(t)
	t.Parallel()
	const per, clients = 50, 8
	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	sets := map[string]string{"KAFKA_BROKERS": brokers[0], "TOPIC": topic, "LISTEN": listen}
	a := flowrun(t, "ingest A", "pipelines/pinterest_ingest.yaml", sets, nil)
	waitReady(t, a, listen, 20*time.Second)
	ctx := testContext(t)
	url := "http://" + listen + "/v1/posts/batch"

	var mu sync.Mutex
	status := map[int]int{} // request -> HTTP status (0: no answer)
	var nextReq, ok atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	send := func(from int64) {
		nextReq.Store(from)
		stop.Store(false)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 30 * time.Second}
				defer client.CloseIdleConnections()
				for !stop.Load() && ctx.Err() == nil {
					req := int(nextReq.Add(1) - 1)
					code, _, _ := postBatch(ctx, client, url, batchBody(req, per))
					mu.Lock()
					status[req] = code
					mu.Unlock()
					if code == http.StatusOK {
						ok.Add(1)
					}
				}
			}()
		}
	}
	send(0)
	if !eventually(30*time.Second, func() bool { return ok.Load() >= 60 }) {
		t.Fatalf("only %d requests answered 200 within 30s", ok.Load())
	}
	a.signal(t, syscall.SIGKILL)
	a.wait(t, 5*time.Second)
	stop.Store(true)
	wg.Wait()
	killed := int(nextReq.Load())

	b := flowrun(t, "ingest B", "pipelines/pinterest_ingest.yaml", sets, nil)
	waitReady(t, b, listen, 20*time.Second)
	okBefore := ok.Load()
	send(100000)
	if !eventually(30*time.Second, func() bool { return ok.Load() >= okBefore+20 }) {
		t.Fatalf("only %d requests answered 200 by the restarted process within 30s", ok.Load()-okBefore)
	}
	stop.Store(true)
	wg.Wait()
	b.stop(t)

	got := idCounts(t, brokers, topic, sarama.ReadCommitted)
	perReq := map[int]int{}
	for id, c := range got {
		var req, i int
		if _, err := fmt.Sscanf(id, "r%d-%d", &req, &i); err != nil {
			t.Fatalf("unexpected unique_id %q", id)
		}
		if c > 1 {
			t.Errorf("post %s visible %d times", id, c)
		}
		perReq[req]++
	}
	var reqs []int
	for r := range status {
		reqs = append(reqs, r)
	}
	sort.Ints(reqs)
	var whole, none, okN, unanswered, unansweredVisible int
	for _, r := range reqs {
		v, code := perReq[r], status[r]
		switch {
		case v != 0 && v != per:
			t.Errorf("request %d (answered %d) is visible in part: %d of %d posts", r, code, v, per)
		case code == http.StatusOK && v != per:
			t.Errorf("request %d answered 200 but %d of its %d posts are visible", r, v, per)
		case v == per:
			whole++
		default:
			none++
		}
		if code == http.StatusOK {
			okN++
		} else {
			unanswered++
			if v == per {
				unansweredVisible++
			}
		}
	}
	for r := range perReq {
		if _, sent := status[r]; !sent {
			t.Errorf("request %d is visible but was never sent", r)
		}
	}
	t.Logf("%d requests (%d before the kill): %d answered 200, %d not (%d of them visible whole); %d visible whole, %d not at all",
		len(reqs), killed, okN, unanswered, unansweredVisible, whole, none)
}
