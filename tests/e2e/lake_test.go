package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	"github.com/flowrun/flowrun/operators/lakeio"
)

// lakeScan is what a walk over a lake folder found.
type lakeScan struct {
	files, temps int
	folders      int // hour folders holding files
	rows         int
	ids          map[string]int // unique_id → rows ("" for null)
	posts        map[string]int // unique_id → sum of the posts column, when there is one
	names        map[string]bool
	bad          []string // visible files that do not read as Parquet
}

// scanLake reads every visible Parquet file of the lake with pqarrow.
func scanLake(t *testing.T, loc, endpoint string) lakeScan {
	t.Helper()
	s := lakeScan{ids: map[string]int{}, posts: map[string]int{}, names: map[string]bool{}}
	ctx := context.Background()
	st, err := lakeio.Open(ctx, loc, lakeio.S3Options{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var walk func(prefix string)
	walk = func(prefix string) {
		ents, err := st.List(ctx, prefix)
		if err != nil {
			t.Fatalf("listing %s/%s: %v", loc, prefix, err)
		}
		counted := false
		for _, e := range ents {
			name := lakeio.Base(e.Key)
			if e.Dir {
				if name != "_flowrun" {
					walk(e.Key)
				}
				continue
			}
			if lakeio.IsTemp(name) {
				s.temps++
				continue
			}
			if !strings.HasSuffix(name, ".parquet") {
				continue
			}
			s.files++
			s.names[e.Key] = true
			if !counted {
				counted = true
				s.folders++
			}
			s.read(t, st, e.Key)
		}
	}
	walk("")
	return s
}

func (s *lakeScan) read(t *testing.T, st lakeio.Store, key string) {
	r, err := lakeio.OpenReader(context.Background(), st, key, 4096, memory.DefaultAllocator)
	if err != nil {
		s.bad = append(s.bad, key+": "+err.Error())
		return
	}
	defer r.Close()
	sc, _ := r.Schema()
	col := sc.FieldIndices("unique_id")
	if len(col) == 0 {
		s.bad = append(s.bad, key+": no unique_id column")
		return
	}
	col = append(col, sc.FieldIndices("posts")...)
	err = r.Records(context.Background(), col, func(rec arrow.RecordBatch) error {
		defer rec.Release()
		ids := rec.Column(0).(*array.String)
		for i := 0; i < ids.Len(); i++ {
			s.ids[ids.Value(i)]++ // null reads as ""
			if rec.NumCols() > 1 {
				s.posts[ids.Value(i)] += int(rec.Column(1).(*array.Int64).Value(i))
			}
		}
		s.rows += ids.Len()
		return nil
	})
	if err != nil {
		s.bad = append(s.bad, key+": "+err.Error())
	}
}

// TestLakeSurvivesSigkill runs pipelines/pinterest_lake.yaml (Kafka → lake)
// as a process while posts keep arriving, kills it with SIGKILL once it
// has committed files (and holds open ones), checks what a reader sees
// then, restarts it in the same consumer group and lets it catch up.
//
// It proves: after the kill every visible file is a complete Parquet file
// (uploads in progress are hidden dot-files); after the restart the lake
// holds every produced post exactly once — the rows of the files the
// killed process committed past its last Kafka commit are not duplicated
// by the replay, and nothing is lost.
func TestLakeSurvivesSigkill(t *testing.T) {
	brokers := testenv.Kafka(t)
	kafkatest.Kcat(t)
	t.Parallel()
	t.Run("folder", func(t *testing.T) {
		t.Parallel()
		lakeSigkill(t, brokers, filepath.Join(t.TempDir(), "lake"), filepath.Join(t.TempDir(), "dead"), "")
	})
	t.Run("s3", func(t *testing.T) {
		ep := testenv.S3(t)
		t.Parallel()
		req, _ := http.NewRequest(http.MethodPut, ep+"/flowrun-test", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		prefix := fmt.Sprintf("s3://flowrun-test/e2e-%d", time.Now().UnixNano())
		lakeSigkill(t, brokers, prefix+"/lake", prefix+"/dead", ep)
	})
}

func lakeSigkill(t *testing.T, brokers []string, lake, dead, endpoint string) {
	const n, seed, chunk = 6000, 31, 150

	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	want := generate(seed, n)
	// Posts stamped as the ingest API does, over two and a half hours:
	// the lake gets three hour folders.
	t0 := time.Date(2026, 11, 25, 12, 30, 0, 0, time.UTC)
	for i, l := range want.lines {
		at := t0.Add(time.Duration(i) * 1500 * time.Millisecond).Format(time.RFC3339)
		want.lines[i] = strings.TrimSuffix(l, "}") + `,"ingested_at":"` + at + `"}`
	}

	var produced atomic.Int64
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for i := 0; i < n; i += chunk {
			kafkatest.Produce(t, brokers, topic, want.lines[i:min(i+chunk, n)])
			produced.Store(int64(min(i+chunk, n)))
			time.Sleep(150 * time.Millisecond)
		}
	}()

	sets := map[string]string{
		"KAFKA_BROKERS": brokers[0], "TOPIC": topic, "GROUP": topic + "-group", "LAKE": lake,
		"DEAD_LETTERS": dead, "FILE_ROWS": "400", "FILE_AGE": "2s", "S3_ENDPOINT": endpoint,
	}
	a := flowrun(t, "lake A", "pipelines/pinterest_lake.yaml", sets, nil)
	if !eventually(60*time.Second, func() bool { return scanLake(t, lake, endpoint).files >= 4 || a.exited() }) || a.exited() {
		t.Fatalf("no committed files within 60s (exited %v, produced %d)", a.exited(), produced.Load())
	}
	// Let it run on a little so that it holds open files and batches
	// whose offsets are not committed yet.
	time.Sleep(700 * time.Millisecond)
	a.signal(t, syscall.SIGKILL)
	a.wait(t, 10*time.Second)

	after := scanLake(t, lake, endpoint)
	if len(after.bad) > 0 {
		t.Fatalf("after SIGKILL a reader sees broken files:\n%s", strings.Join(after.bad, "\n"))
	}
	t.Logf("after SIGKILL at %d produced: %d complete files, %d rows visible, %d uploads left hidden",
		produced.Load(), after.files, after.rows, after.temps)

	b := flowrun(t, "lake B", "pipelines/pinterest_lake.yaml", sets, nil)
	<-prodDone
	var last lakeScan
	if !eventually(90*time.Second, func() bool {
		last = scanLake(t, lake, endpoint)
		return last.rows >= n || b.exited()
	}) {
		t.Fatalf("the lake holds %d rows after 90s, want %d", last.rows, n)
	}
	// Wait a little more: a duplicate would come in later files.
	time.Sleep(3 * time.Second)
	b.stop(t)
	final := scanLake(t, lake, endpoint)
	if len(final.bad) > 0 {
		t.Fatalf("broken files:\n%s", strings.Join(final.bad, "\n"))
	}
	wantIDs := map[string]int{"": want.missingID}
	for id, c := range want.ids {
		wantIDs[id] += c
	}
	if d := diffCounts(wantIDs, final.ids); d != "" || final.rows != n {
		t.Fatalf("the lake holds %d rows, want %d, each post once (want/got by unique_id):\n%s", final.rows, n, d)
	}
	t.Logf("%d uploads of the killed run still hidden in the folders (removed once older than file_age + 10s)", final.temps)
	if final.folders < 3 {
		t.Errorf("%d partition folders, want the 3 hours of ingested_at", final.folders)
	}
	t.Logf("after restart: %d files in %d folders, %d rows = every post once; log of B:\n%s", final.files, final.folders, final.rows, grepLines(b.out.String(), "lake:"))
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// listLake returns the visible data files of a lake (no reading).
func listLake(t *testing.T, loc, endpoint string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	st, err := lakeio.Open(ctx, loc, lakeio.S3Options{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[string]bool{}
	var walk func(prefix string)
	walk = func(prefix string) {
		ents, err := st.List(ctx, prefix)
		if err != nil {
			t.Fatalf("listing %s/%s: %v", loc, prefix, err)
		}
		for _, e := range ents {
			name := lakeio.Base(e.Key)
			switch {
			case e.Dir && name != "_flowrun":
				walk(e.Key)
			case !e.Dir && !lakeio.IsTemp(name) && strings.HasSuffix(name, ".parquet"):
				out[e.Key] = true
			}
		}
	}
	walk("")
	return out
}

// TestLakeMergedSurvivesSigkill writes batches whose acknowledgements cover
// every partition of a 4-partition topic (tests/e2e/testdata/lake_merged.yaml:
// Kafka --once → aggregate by unique_id → lake, files of 100 rows) and kills
// the process twice with SIGKILL: once while it commits its first files, and
// once while the replay run has removed the first run's files and committed
// some of its own. A third run completes; a fourth finds nothing new.
//
// It proves, on a folder and on SeaweedFS: after each kill every visible
// file reads as complete Parquet; in the end every post's unique_id is in
// the lake exactly once with its count of posts (the merged-* files of the
// killed runs were removed by the replays, not duplicated); a run after the
// offsets were committed changes nothing.
func TestLakeMergedSurvivesSigkill(t *testing.T) {
	brokers := testenv.Kafka(t)
	kafkatest.Kcat(t)
	t.Parallel()
	t.Run("folder", func(t *testing.T) {
		t.Parallel()
		lakeMergedSigkill(t, brokers, filepath.Join(t.TempDir(), "lake"), "")
	})
	t.Run("s3", func(t *testing.T) {
		ep := testenv.S3(t)
		t.Parallel()
		req, _ := http.NewRequest(http.MethodPut, ep+"/flowrun-test", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		lakeMergedSigkill(t, brokers, fmt.Sprintf("s3://flowrun-test/e2e-merged-%d/lake", time.Now().UnixNano()), ep)
	})
}

func lakeMergedSigkill(t *testing.T, brokers []string, lake, endpoint string) {
	const n, seed = 6000, 37
	topic := kafkatest.Topic(t)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	want := generate(seed, n)
	t0 := time.Date(2026, 11, 25, 12, 30, 0, 0, time.UTC)
	for i, l := range want.lines {
		at := t0.Add(time.Duration(i) * 1500 * time.Millisecond).Format(time.RFC3339)
		want.lines[i] = strings.TrimSuffix(l, "}") + `,"ingested_at":"` + at + `"}`
	}
	for i := 0; i < n; i += 1000 {
		kafkatest.Produce(t, brokers, topic, want.lines[i:min(i+1000, n)])
	}
	wantPosts := map[string]int{}
	if want.missingID > 0 {
		wantPosts[""] = want.missingID
	}
	for id, c := range want.ids {
		wantPosts[id] += c
	}
	wantOnce := map[string]int{}
	for id := range wantPosts {
		wantOnce[id] = 1
	}
	sets := map[string]string{
		"KAFKA_BROKERS": brokers[0], "TOPIC": topic, "GROUP": topic + "-group", "LAKE": lake,
		"S3_ENDPOINT": endpoint, "FILE_ROWS": "100",
	}
	const pipeline = "tests/e2e/testdata/lake_merged.yaml"

	// killWhen runs the pipeline and SIGKILLs it as soon as the lake lists
	// at least k files that were not there before it started.
	killWhen := func(name string, k int) map[string]bool {
		before := listLake(t, lake, endpoint)
		p := flowrun(t, name, pipeline, sets, nil, "--once")
		var now map[string]bool
		ok := eventually(120*time.Second, func() bool {
			now = listLake(t, lake, endpoint)
			fresh := 0
			for f := range now {
				if !before[f] {
					fresh++
				}
			}
			return fresh >= k || p.exited()
		})
		if p.exited() || !ok {
			t.Fatalf("%s: exited (%v, code %d) or wrote no %d new files within 120s before it could be killed", name, p.exited(), p.exitCode, k)
		}
		p.signal(t, syscall.SIGKILL)
		p.wait(t, 10*time.Second)
		sc := scanLake(t, lake, endpoint)
		if len(sc.bad) > 0 {
			t.Fatalf("after SIGKILL of %s a reader sees broken files:\n%s", name, strings.Join(sc.bad, "\n"))
		}
		gone := 0
		for f := range before {
			if !sc.names[f] {
				gone++
			}
		}
		t.Logf("%s killed: %d complete files visible (%d of the %d before it removed), %d rows, %d uploads hidden",
			name, sc.files, gone, len(before), sc.rows, sc.temps)
		return sc.names
	}
	afterA := killWhen("merged A", 3)
	for f := range afterA {
		if !strings.Contains(f, "/merged-") {
			t.Fatalf("file %s: the aggregate's batches should go to merged-* files", f)
		}
	}
	killWhen("merged B", 3)

	c := flowrun(t, "merged C", pipeline, sets, nil, "--once")
	if code := c.wait(t, 180*time.Second); code != 0 {
		t.Fatalf("merged C exited %d", code)
	}
	final := scanLake(t, lake, endpoint)
	if len(final.bad) > 0 {
		t.Fatalf("broken files:\n%s", strings.Join(final.bad, "\n"))
	}
	if d := diffCounts(wantOnce, final.ids); d != "" {
		t.Fatalf("the lake holds %d rows for %d distinct posts, want each once (want/got rows by unique_id):\n%s", final.rows, len(wantOnce), d)
	}
	if d := diffCounts(wantPosts, final.posts); d != "" {
		t.Fatalf("posts counted per unique_id differ (want/got):\n%s", d)
	}
	if final.folders < 3 {
		t.Errorf("%d partition folders, want the 3 hours of ingested_at", final.folders)
	}
	t.Logf("after the third run: %d files in %d folders, %d rows = %d posts each once; log of C:\n%s",
		final.files, final.folders, final.rows, n, grepLines(c.out.String(), "lake:"))

	// The offsets are committed now: a fourth run reads nothing and the
	// lake stays as it is.
	d := flowrun(t, "merged D", pipeline, sets, nil, "--once")
	if code := d.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("merged D exited %d", code)
	}
	again := scanLake(t, lake, endpoint)
	if again.rows != final.rows || again.files != final.files {
		t.Fatalf("a run over committed offsets changed the lake: %d rows in %d files, was %d in %d", again.rows, again.files, final.rows, final.files)
	}
}
