package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/hbaseclient"
	"github.com/flowrun/flowrun/runtime/schedule"
)

// TestBatchShardsEqualUnsharded: pipelines/pinterest_batch.yaml run for one
// day unsharded and, by the scheduler, as 3 shard runs into fresh tables
// leaves exactly the same HBase contents, read back from the real HBase:
// the posts, the daily aggregate (medians, counts, tops per category) and
// the dead letters, cell by cell. The generated posts repeat ~1% of ids,
// some with other content, so the dedupe's choice and the aggregate's
// groups are tested too. Each shard run writes a strict share of the posts.
func TestBatchShardsEqualUnsharded(t *testing.T) {
	addr := testenv.HBase(t)
	dir := t.TempDir()
	lake := filepath.Join(dir, "lake")
	// The scheduler runs the latest complete day (the pipeline has no
	// start:): put the posts there.
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1).Format("2006-01-02")
	if msg, err := flowrun(t, "run", "../../bench/hbase/lake_posts.yaml", "-q", "--batch-rows", "500",
		"--set", "N=3000", "--set", "FILE_ROWS=300", "--set", "LAKE="+lake, "--set", "DAY="+day); err != nil {
		t.Fatalf("writing the lake: %v\n%s", err, msg)
	}

	suffix := fmt.Sprint(time.Now().UnixNano())
	names := []string{"HBASE_TABLE", "HBASE_DAILY_TABLE", "HBASE_DEAD_LETTER_TABLE"}
	tables := func(tag string) map[string]string {
		return map[string]string{"HBASE_TABLE": "shards_pins_" + tag + suffix,
			"HBASE_DAILY_TABLE": "shards_daily_" + tag + suffix, "HBASE_DEAD_LETTER_TABLE": "shards_dead_" + tag + suffix}
	}
	whole, sharded := tables("w"), tables("s")
	t.Cleanup(func() {
		if c, err := hbaseclient.Dial(context.Background(), addr, hbaseclient.Options{}); err == nil {
			for _, m := range []map[string]string{whole, sharded} {
				for _, tb := range m {
					_ = c.DropTable(context.Background(), tb)
				}
			}
			c.Close()
		}
	})
	sets := func(m map[string]string) []string {
		out := []string{"--set", "LAKE=" + lake, "--set", "HBASE_THRIFT_ADDR=" + addr}
		for k, v := range m {
			out = append(out, "--set", k+"="+v)
		}
		return out
	}

	wholeHistory := filepath.Join(dir, "whole")
	if msg, err := flowrun(t, append([]string{"run", "../../pipelines/pinterest_batch.yaml", "--interval", day, "--history", wholeHistory, "-q"}, sets(whole)...)...); err != nil {
		t.Fatalf("unsharded run: %v\n%s", err, msg)
	}
	// The scheduler: the due day as 3 shard runs, 2 at a time.
	shardHistory := filepath.Join(dir, "sharded")
	if msg, err := flowrun(t, append([]string{"schedule", "../../pipelines", "--once", "--shards", "3", "--max-active", "2", "--history", shardHistory}, sets(sharded)...)...); err != nil {
		t.Fatalf("schedule --shards 3: %v\n%s", err, msg)
	}

	// History: three succeeded shard runs, each writing a strict share of
	// the posts the unsharded run wrote.
	load := func(d string) *schedule.History {
		st, err := schedule.OpenStore(d)
		if err != nil {
			t.Fatal(err)
		}
		h, err := st.Load()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	var total int64
	for _, r := range load(wholeHistory).Runs {
		total = r.Rows["pinterest"]
	}
	var sum int64
	shards := map[string]bool{}
	for _, r := range load(shardHistory).Runs {
		if r.Status == schedule.Running {
			continue
		}
		if r.Status != schedule.Succeeded || r.Shard == "" || !strings.HasPrefix(r.ID, "pinterest-batch@"+day) {
			t.Fatalf("scheduled run %s: %s (shard %q) %s", r.ID, r.Status, r.Shard, r.Error)
		}
		if r.Rows["pinterest"] == 0 || r.Rows["pinterest"] >= total {
			t.Errorf("shard %s wrote %d of %d posts: not a share", r.Shard, r.Rows["pinterest"], total)
		}
		shards[r.Shard] = true
		sum += r.Rows["pinterest"]
	}
	if len(shards) != 3 || total == 0 {
		t.Fatalf("shard runs %v, the unsharded run wrote %d posts", shards, total)
	}
	if sum != total {
		t.Errorf("the shard runs wrote %d posts, the unsharded run %d", sum, total)
	}

	// HBase: the same rows and cells in every table.
	c, err := hbaseclient.Dial(context.Background(), addr, hbaseclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range names {
		w, s := readTable(t, c, whole[name]), readTable(t, c, sharded[name])
		if len(w) == 0 {
			t.Fatalf("%s: the unsharded run wrote no row", name)
		}
		if d := diffTables(w, s); d != "" {
			t.Errorf("%s: the 3 shards differ from the unsharded run (%d rows vs %d):\n%s", name, len(s), len(w), d)
		} else {
			t.Logf("%s: %d rows equal", name, len(w))
		}
	}
}

// readTable reads a whole table as row key → family:qualifier → value.
func readTable(t *testing.T, c *hbaseclient.Conn, table string) map[string]map[string]string {
	t.Helper()
	rows, err := c.Scan(context.Background(), table, nil, nil, 0)
	if err != nil {
		t.Fatalf("scanning %s: %v", table, err)
	}
	out := map[string]map[string]string{}
	for _, r := range rows {
		cells := map[string]string{}
		for _, cl := range r.Cells {
			cells[string(cl.Family)+":"+string(cl.Qualifier)] = string(cl.Value)
		}
		out[string(r.Key)] = cells
	}
	return out
}

// diffTables describes up to 5 differences between two scanned tables.
func diffTables(want, got map[string]map[string]string) string {
	var d []string
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		w, inW := want[k]
		g, inG := got[k]
		switch {
		case !inG:
			d = append(d, fmt.Sprintf("row %q missing", k))
		case !inW:
			d = append(d, fmt.Sprintf("row %q extra", k))
		default:
			for q, v := range w {
				if g[q] != v {
					d = append(d, fmt.Sprintf("row %q %s: %q, want %q", k, q, g[q], v))
				}
			}
			for q := range g {
				if _, ok := w[q]; !ok {
					d = append(d, fmt.Sprintf("row %q %s: extra cell", k, q))
				}
			}
		}
		if len(d) >= 5 {
			break
		}
	}
	return strings.Join(d, "\n")
}
