package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/hbaseclient"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/kafkaclient/kafkatest"
	"github.com/flowrun/flowrun/runtime/schedule"
)

// pin is a cleaned post as pinterest_clean.yaml writes it (pins.jsonl).
type pin struct {
	Ind            *int64   `json:"ind"`
	UniqueID       string   `json:"unique_id"`
	Title          *string  `json:"title"`
	Description    *string  `json:"description"`
	PosterName     *string  `json:"poster_name"`
	FollowerCount  *int64   `json:"follower_count"`
	TagList        []string `json:"tag_list"`
	IsImageOrVideo *string  `json:"is_image_or_video"`
	ImageSrc       *string  `json:"image_src"`
	Downloaded     *bool    `json:"downloaded"`
	SaveLocation   *string  `json:"save_location"`
	Category       string   `json:"category"`
}

// TestBatchLakeToHBase is the batch half end to end, against real Kafka,
// the S3-compatible server (SeaweedFS) and HBase: posts emulated into Kafka
// → the Parquet lake on S3 (one day's
// partition, plus another day's that must not be read) → `flowrun run
// pipelines/pinterest_batch.yaml --interval DAY` → HBase. The rows read
// back through the Thrift2 gateway equal the distinct valid posts cell by
// cell (the expectation is pinterest_clean.yaml's output for the same
// topic, decoded independently, with row keys computed here); the daily
// aggregate table equals a computation in this test; the dead-letter table
// holds the refused posts; a rerun is refused without --force, and a forced
// rerun changes nothing.
func TestBatchLakeToHBase(t *testing.T) {
	brokers := testenv.Kafka(t)
	thrift := testenv.HBase(t)
	s3 := testenv.S3(t)
	kafkatest.Kcat(t)
	const n, seed, day = 3000, 21, "2026-11-24"

	topic, other := kafkatest.Topic(t), kafkatest.Topic(t)+"-next"
	if err := kafkaclient.CreateTopics(brokers, 4, topic, other); err != nil {
		t.Fatal(err)
	}
	// The generator repeats ~1% of ids with other content (another
	// category, even): which version a dedupe keeps then depends on the
	// order partitions are read in. Send each id's first version, plus exact
	// copies of 50 posts (a re-delivery, which the dedupe must drop).
	lines, valid, refused := firstVersions(t, generate(seed, n).lines)
	lines = append(lines, lines[100:150]...)
	kafkatest.Produce(t, brokers, topic, lines)
	kafkatest.Produce(t, brokers, other, generate(seed+1, 200).lines)

	// The lake on the S3-compatible server.
	const bucket = "flowrun-e2e"
	req, _ := http.NewRequest(http.MethodPut, s3+"/"+bucket, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatalf("creating bucket %s at %s: %v", bucket, s3, err)
	} else {
		resp.Body.Close()
	}
	lake := fmt.Sprintf("s3://%s/batch-%d", bucket, time.Now().UnixNano())
	for _, d := range []struct{ topic, day string }{{topic, day}, {other, "2026-11-25"}} {
		p := flowrun(t, "lake "+d.day, "tests/e2e/testdata/lake_day.yaml", map[string]string{
			"KAFKA_BROKERS": brokers[0], "TOPIC": d.topic, "GROUP": d.topic + "-lake", "LAKE": lake, "DAY": d.day,
			"S3_ENDPOINT": s3, "S3_PATH_STYLE": "true", "FILE_ROWS": "400", // several files, for the shards
		}, nil, "--once", "--batch-rows", "200")
		if code := p.wait(t, 90*time.Second); code != 0 {
			t.Fatalf("lake pipeline exited %d", code)
		}
	}
	// The expectation: the same topic through the streaming cleaning.
	out := t.TempDir()
	p := flowrun(t, "clean", "pipelines/pinterest_clean.yaml", map[string]string{
		"KAFKA_BROKERS": brokers[0], "TOPIC": topic, "GROUP": topic + "-clean", "OUT": out,
	}, nil, "--once")
	if code := p.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("clean pipeline exited %d", code)
	}
	pins, _ := readJSONLines[pin](t, filepath.Join(out, "pins.jsonl"), false)
	stamp := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC).UnixMicro()

	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	tables := map[string]string{"HBASE_TABLE": "e2e_pins_" + suffix, "HBASE_DAILY_TABLE": "e2e_daily_" + suffix,
		"HBASE_DEAD_LETTER_TABLE": "e2e_dead_" + suffix}
	t.Cleanup(func() {
		c, err := hbaseclient.Dial(context.Background(), thrift, hbaseclient.Options{})
		if err == nil {
			for _, tb := range tables {
				_ = c.DropTable(context.Background(), tb)
			}
			c.Close()
		}
	})
	sets := map[string]string{"LAKE": lake, "HBASE_THRIFT_ADDR": thrift, "S3_ENDPOINT": s3, "S3_PATH_STYLE": "true"}
	history := t.TempDir()
	for k, v := range tables {
		sets[k] = v
	}
	batch := func(name string, extra ...string) *proc {
		return flowrun(t, name, "pipelines/pinterest_batch.yaml", sets, nil, append([]string{"--interval", day, "--history", history}, extra...)...)
	}
	t0 := time.Now()
	if code := batch("batch").wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("batch exited %d", code)
	}
	t.Logf("batch over %d posts: %s", n, time.Since(t0).Round(time.Millisecond))
	first := readTables(t, thrift, tables)

	// Posts: one row per distinct valid post, cell by cell.
	wantRows := map[string]map[string]any{}
	for _, p := range pins {
		wantRows[rowKey(p.UniqueID, p.Category)] = expectedCells(p, stamp)
	}
	got := first["HBASE_TABLE"]
	if len(got) != len(wantRows) || len(wantRows) != valid {
		t.Errorf("pinterest table: %d rows, want %d (clean pins) = %d (distinct valid ids)", len(got), len(wantRows), valid)
	}
	bad := 0
	for key, cells := range wantRows {
		row, ok := got[key]
		if !ok {
			if bad++; bad < 5 {
				t.Errorf("row %q missing", key)
			}
			continue
		}
		if d := diffCells(cells, row); d != "" {
			if bad++; bad < 5 {
				t.Errorf("row %q:\n%s", key, d)
			}
		}
	}
	// Aggregate: computed here from the same posts.
	wantDaily := dailyExpectation(pins, day)
	gotDaily := map[string]map[string]any{}
	for key, cells := range first["HBASE_DAILY_TABLE"] {
		gotDaily[key] = decodeDaily(t, cells)
	}
	if d := diffRows(wantDaily, gotDaily); d != "" {
		t.Errorf("pinterest_daily:\n%s", d)
	}
	// Dead letters: every refused post once.
	if got := len(first["HBASE_DEAD_LETTER_TABLE"]); got != refused {
		t.Errorf("dead letters: %d rows, want %d (posts without unique_id or category)", got, refused)
	}

	// A rerun is refused; a forced one leaves every table as it was.
	if code := batch("batch again").wait(t, time.Minute); code == 0 {
		t.Fatal("second run of a succeeded interval was not refused")
	}
	if code := batch("batch forced", "--force").wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("forced batch exited %d", code)
	}
	second := readTables(t, thrift, tables)
	for k := range tables {
		if d := diffRows(first[k], second[k]); d != "" {
			t.Errorf("%s changed by the rerun:\n%s", k, d)
		}
	}

	// A run SIGKILLed once its first rows are in HBase, into fresh tables:
	// the history records it interrupted, the next run of the interval is
	// not refused, and the tables end equal to the first run's.
	killed := map[string]string{}
	kSets := map[string]string{}
	for k, v := range sets {
		kSets[k] = v
	}
	for k, v := range tables {
		killed[k] = v + "_k"
		kSets[k] = v + "_k"
	}
	t.Cleanup(func() {
		if c, err := hbaseclient.Dial(context.Background(), thrift, hbaseclient.Options{}); err == nil {
			for _, tb := range killed {
				_ = c.DropTable(context.Background(), tb)
			}
			c.Close()
		}
	})
	kHistory := t.TempDir()
	victim := flowrun(t, "batch killed", "pipelines/pinterest_batch.yaml", kSets, nil, "--interval", day, "--history", kHistory, "--batch-rows", "100")
	waitForRows(t, thrift, killed["HBASE_TABLE"], victim)
	victim.signal(t, syscall.SIGKILL)
	victim.wait(t, 10*time.Second)
	partial := readTables(t, thrift, map[string]string{"HBASE_TABLE": killed["HBASE_TABLE"]})["HBASE_TABLE"]
	t.Logf("killed with %d of %d posts in HBase", len(partial), len(first["HBASE_TABLE"]))
	if code := flowrun(t, "batch after kill", "pipelines/pinterest_batch.yaml", kSets, nil, "--interval", day, "--history", kHistory).wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("the run after the killed one exited %d", code)
	}
	after := readTables(t, thrift, killed)
	for k := range killed {
		if d := diffRows(first[k], after[k]); d != "" {
			t.Errorf("%s after a SIGKILLed run and a rerun differs from the first run:\n%s", k, d)
		}
	}
	kh := loadHistory(t, kHistory)
	var statuses []string
	for _, r := range kh.Runs {
		statuses = append(statuses, fmt.Sprintf("%s attempt %d: %s", r.ID, r.Attempt, r.Status))
	}
	if len(kh.Runs) != 2 || kh.Runs[0].Status != schedule.Interrupted || kh.Runs[1].Status != schedule.Succeeded || kh.Runs[1].Attempt != 2 {
		t.Errorf("history after a killed run and a rerun: %v, want the first interrupted and attempt 2 succeeded", statuses)
	}

	// Two shards (--shard 1/2, 2/2) into fresh tables: every table equals
	// the unsharded run's (each shard run reads the whole day and writes its
	// share of the keys, see docs/schedule.md).
	sharded := map[string]string{}
	for k, v := range tables {
		sharded[k] = v + "_sh"
	}
	for k, v := range sharded {
		tables[k+"_sh"] = v // dropped by the cleanup
	}
	shSets := map[string]string{}
	for k, v := range sets {
		shSets[k] = v
	}
	for k, v := range sharded {
		shSets[k] = v
	}
	shHistory := t.TempDir()
	for _, sh := range []string{"1/2", "2/2"} {
		p := flowrun(t, "batch shard "+sh, "pipelines/pinterest_batch.yaml", shSets, nil, "--interval", day, "--history", shHistory, "--shard", sh)
		if code := p.wait(t, 3*time.Minute); code != 0 {
			t.Fatalf("shard %s exited %d", sh, code)
		}
	}
	// Each shard wrote a share of the posts; together all of them.
	hh := loadHistory(t, shHistory)
	wh := loadHistory(t, history)
	var total, sum int64
	for _, r := range wh.Runs {
		total = r.Rows["pinterest"]
	}
	for _, r := range hh.Runs {
		if r.Shard == "" || r.Status != schedule.Succeeded || r.Rows["pinterest"] == 0 || r.Rows["pinterest"] >= total {
			t.Errorf("shard run %s: %s, %d of %d posts", r.ID, r.Status, r.Rows["pinterest"], total)
		}
		sum += r.Rows["pinterest"]
	}
	if len(hh.Runs) != 2 || sum != total {
		t.Errorf("%d shard runs wrote %d posts, the unsharded run %d", len(hh.Runs), sum, total)
	}
	third := readTables(t, thrift, sharded)
	for _, k := range []string{"HBASE_TABLE", "HBASE_DAILY_TABLE", "HBASE_DEAD_LETTER_TABLE"} {
		if d := diffRows(first[k], third[k]); d != "" {
			t.Errorf("%s of the two shards differs from the unsharded run:\n%s", k, d)
		}
	}
}

// loadHistory reads the run history kept in dir.
func loadHistory(t *testing.T, dir string) *schedule.History {
	t.Helper()
	st, err := schedule.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitForRows waits until table has a row, failing the test when p exits
// first (the kill would then test nothing).
func waitForRows(t *testing.T, addr, table string, p *proc) {
	t.Helper()
	c, err := hbaseclient.Dial(context.Background(), addr, hbaseclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s ended before any row reached %s: nothing to kill", p.name, table)
		}
		// The table does not exist until the sink creates it.
		if rows, err := c.Scan(context.Background(), table, nil, nil, 1); err == nil && len(rows) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no row reached %s within 2 minutes", table)
}

// firstVersions keeps the first post of each unique_id (and every post
// without one) and counts the distinct valid ids and the posts the cleaning
// refuses (no unique_id or no category; distinct as records).
func firstVersions(t *testing.T, lines []string) (out []string, valid, refused int) {
	t.Helper()
	seen := map[string]bool{}
	for _, l := range lines {
		var p struct {
			UniqueID string `json:"unique_id"`
			Category string `json:"category"`
		}
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatal(err)
		}
		if p.UniqueID != "" && p.UniqueID != "null" {
			if seen[p.UniqueID] {
				continue
			}
			seen[p.UniqueID] = true
		}
		out = append(out, l)
		if p.UniqueID == "" || p.UniqueID == "null" || p.Category == "" || p.Category == "null" {
			refused++
		} else {
			valid++
		}
	}
	return out, valid, refused
}

// readTables scans every table: env name → row key → family:qualifier → value.
func readTables(t *testing.T, addr string, tables map[string]string) map[string]map[string]map[string]any {
	t.Helper()
	c, err := hbaseclient.Dial(context.Background(), addr, hbaseclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := map[string]map[string]map[string]any{}
	for k, tb := range tables {
		rows, err := c.Scan(context.Background(), tb, nil, nil, 0)
		if err != nil {
			t.Fatalf("scan %s: %v", tb, err)
		}
		m := map[string]map[string]any{}
		for _, r := range rows {
			cells := map[string]any{}
			for _, cell := range r.Cells {
				cells[string(cell.Family)+":"+string(cell.Qualifier)] = string(cell.Value)
			}
			m[string(r.Key)] = cells
		}
		out[k] = m
	}
	return out
}

// rowKey is the pipeline's key: a salt 10-99 from the FNV-1a hash of the
// unique_id (as flowrun's hash(): the 64-bit sum as a signed int), then
// category and unique_id.
func rowKey(id, category string) string {
	h := fnv.New64a()
	h.Write([]byte(id))
	s := int64(h.Sum64()) % 90
	if s < 0 {
		s = -s
	}
	return fmt.Sprintf("%d|%s|%s", 10+s, category, id)
}

func be64(v int64) string { return string(hbaseclient.AppendInt64(nil, v)) }

// expectedCells encodes a clean pin the way docs/hbase.md says, from the
// definition there (not from the sink's code): strings UTF-8, integers and
// timestamps 8-byte big-endian, booleans 0xFF/0x00, lists JSON; null → no cell.
func expectedCells(p pin, ingestedAtMicro int64) map[string]any {
	c := map[string]any{"t:unique_id": p.UniqueID, "t:category": p.Category, "n:ingested_at": be64(ingestedAtMicro)}
	str := func(k string, v *string) {
		if v != nil {
			c[k] = *v
		}
	}
	str("t:title", p.Title)
	str("t:description", p.Description)
	str("t:poster_name", p.PosterName)
	str("t:is_image_or_video", p.IsImageOrVideo)
	str("t:image_src", p.ImageSrc)
	str("t:save_location", p.SaveLocation)
	if p.TagList != nil {
		b, _ := json.Marshal(p.TagList)
		c["t:tag_list"] = string(b)
	}
	if p.FollowerCount != nil {
		c["n:follower_count"] = be64(*p.FollowerCount)
	}
	if p.Ind != nil {
		c["n:ind"] = be64(*p.Ind)
	}
	if p.Downloaded != nil {
		if *p.Downloaded {
			c["n:downloaded"] = "\xff"
		} else {
			c["n:downloaded"] = "\x00"
		}
	}
	return c
}

// dailyExpectation computes pinterest_daily from the posts: per category,
// posts, median and top follower count, and the media-type mix.
func dailyExpectation(pins []pin, day string) map[string]map[string]any {
	type acc struct {
		n, images, videos, stories int64
		followers                  []float64
		top                        *int64
	}
	by := map[string]*acc{}
	for _, p := range pins {
		a := by[p.Category]
		if a == nil {
			a = &acc{}
			by[p.Category] = a
		}
		a.n++
		if p.FollowerCount != nil {
			a.followers = append(a.followers, float64(*p.FollowerCount))
			if a.top == nil || *p.FollowerCount > *a.top {
				v := *p.FollowerCount
				a.top = &v
			}
		}
		if p.IsImageOrVideo != nil {
			switch *p.IsImageOrVideo {
			case "image":
				a.images++
			case "video":
				a.videos++
			case "story":
				a.stories++
			}
		}
	}
	out := map[string]map[string]any{}
	for cat, a := range by {
		row := map[string]any{"category": cat, "day": day, "posts": a.n, "images": a.images, "videos": a.videos, "stories": a.stories}
		if len(a.followers) > 0 {
			sort.Float64s(a.followers)
			m := len(a.followers) / 2
			med := a.followers[m]
			if len(a.followers)%2 == 0 {
				med = (a.followers[m-1] + a.followers[m]) / 2
			}
			row["median_followers"] = med
			row["top_followers"] = *a.top
		}
		out[cat+"|"+day] = row
	}
	return out
}

func decodeDaily(t *testing.T, cells map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range cells {
		b := []byte(v.(string))
		name := strings.TrimPrefix(k, "s:")
		var enc hbaseclient.Encoding
		switch name {
		case "category", "day":
			enc = hbaseclient.EncString
		case "median_followers":
			enc = hbaseclient.EncFloat64
		default:
			enc = hbaseclient.EncInt64
		}
		d, err := hbaseclient.Decode(enc, b)
		if err != nil {
			t.Fatalf("daily %s: %v", k, err)
		}
		out[name] = d
	}
	return out
}

func diffCells(want, got map[string]any) string {
	var b strings.Builder
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			fmt.Fprintf(&b, "  %s: missing, want %q\n", k, w)
		} else if !equalValue(w, g) {
			fmt.Fprintf(&b, "  %s: got %q, want %q\n", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "  %s: unexpected %q\n", k, g)
		}
	}
	return b.String()
}

func equalValue(a, b any) bool {
	fa, okA := a.(float64)
	fb, okB := b.(float64)
	if okA && okB {
		return math.Abs(fa-fb) < 1e-9
	}
	return a == b
}

func diffRows(want, got map[string]map[string]any) string {
	var b strings.Builder
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			fmt.Fprintf(&b, "row %q missing\n", k)
			continue
		}
		if d := diffCells(w, g); d != "" {
			fmt.Fprintf(&b, "row %q:\n%s", k, d)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "row %q unexpected\n", k)
		}
	}
	return b.String()
}
