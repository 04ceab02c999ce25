package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/hbaseclient"
)

// TestHBaseScanReadsBack: a pipeline writes generated posts to HBase, and
// `flowrun hbase scan FILE --sink` prints them decoded as the sink encoded
// them (integers from 8-byte big-endian, lists from JSON); without the
// pipeline, cells come out as family:qualifier text.
func TestHBaseScanReadsBack(t *testing.T) {
	addr := testenv.HBase(t)
	table := fmt.Sprintf("cli_scan_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		if c, err := hbaseclient.Dial(context.Background(), addr, hbaseclient.Options{}); err == nil {
			_ = c.DropTable(context.Background(), table)
			c.Close()
		}
	})
	file := filepath.Join(t.TempDir(), "to_hbase.yaml")
	pipeline := `flowrun: 1
sources:
  posts: {generate: {count: 40, seed: 5}}
transforms:
  small:
    from: posts
    select: [index, unique_id, category, follower_count]
sinks:
  out:
    from: small
    hbase:
      thrift: "` + addr + `"
      table: ` + table + `
      row_key: 'string(index)'
      columns: {category: t, index: "n:ind"}
      family: x
      create: true
`
	if err := os.WriteFile(file, []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := flowrun(t, "run", file, "-q"); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	out, err := flowrun(t, "hbase", "scan", file, "--sink", "out", "--limit", "3")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("scan printed %d rows, want 3:\n%s", len(lines), out)
	}
	for _, l := range lines {
		var row map[string]any
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatal(err)
		}
		// index was written as an 8-byte big-endian int64 and reads back as the number.
		if key, _ := row["row_key"].(string); key == "" || row["index"] != mustFloat(t, key) || row["category"] == nil {
			t.Fatalf("row %v", row)
		}
	}
	prefix := strings.SplitN(strings.SplitN(lines[1], `"row_key":"`, 2)[1], `"`, 2)[0]
	one, err := flowrun(t, "hbase", "scan", file, "--sink", "out", "--prefix", prefix)
	if err != nil || strings.Count(one, "\n") != 1 || !strings.Contains(one, `"row_key":"`+prefix+`"`) {
		t.Fatalf("prefix scan %q: %v\n%s", prefix, err, one)
	}
	raw, err := flowrun(t, "hbase", "scan", "--table", table, "--thrift", addr, "--limit", "1")
	if err != nil || !strings.Contains(raw, `"n:ind":{"hex":"00000000000`) || !strings.Contains(raw, `"x:unique_id":"`) {
		t.Fatalf("raw scan: %v\n%s", err, raw)
	}
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
