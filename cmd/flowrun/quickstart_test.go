package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	gposts "github.com/flowrun/flowrun/operators/source/generate/posts"
	"github.com/flowrun/flowrun/runtime/op"
)

func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatalf("%s: bad JSON line %q: %v", path, sc.Text(), err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestQuickstartAccountsForEveryPost runs the README's first command on a
// small input and checks the cleaned output by reading it back.
func TestQuickstartAccountsForEveryPost(t *testing.T) {
	const posts = 5000
	out := t.TempDir()
	var stderr bytes.Buffer
	err := runPipeline(context.Background(), op.Default, "../../examples/pinterest_local.yaml",
		runFlags{sets: []string{"POSTS=5000", "OUT=" + out}, batchRows: 512, drainTimeout: 10e9, logLevel: "warn"}, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	pins := readJSONLines(t, filepath.Join(out, "pins.jsonl"))
	dead := readJSONLines(t, filepath.Join(out, "dead_letters.jsonl"))
	if len(pins) == 0 || len(dead) == 0 {
		t.Fatalf("pins=%d dead=%d", len(pins), len(dead))
	}
	seen := map[string]bool{}
	placeholders := []string{"No Title Data Available", "User Info Error", "Image src error.", "No description available", "N,o, ,T,a,g,s"}
	for _, p := range pins {
		id, _ := p["unique_id"].(string)
		if id == "" || p["category"] == nil {
			t.Fatalf("pin without id or category: %v", p)
		}
		if seen[id] {
			t.Fatalf("duplicate unique_id %s", id)
		}
		seen[id] = true
		if _, ok := p["index"]; ok {
			t.Fatalf("index was not renamed: %v", p)
		}
		if _, ok := p["ind"].(json.Number); !ok {
			t.Fatalf("ind missing: %v", p)
		}
		if fc := p["follower_count"]; fc != nil {
			if _, err := fc.(json.Number).Int64(); err != nil {
				t.Fatalf("follower_count not an integer: %v", fc)
			}
		}
		if _, ok := p["downloaded"].(bool); !ok && p["downloaded"] != nil {
			t.Fatalf("downloaded not a bool: %v", p["downloaded"])
		}
		if tags := p["tag_list"]; tags != nil {
			if _, ok := tags.([]any); !ok {
				t.Fatalf("tag_list not a list: %v", tags)
			}
		}
		if m := p["is_image_or_video"]; m != nil && m != "image" && m != "video" && m != "story" {
			t.Fatalf("unexpected media type %v", m)
		}
		if s, _ := p["save_location"].(string); strings.HasPrefix(s, "Local save in") {
			t.Fatalf("save_location keeps its prefix: %q", s)
		}
		for k, v := range p {
			if s, ok := v.(string); ok {
				for _, ph := range placeholders {
					if strings.HasPrefix(s, ph) {
						t.Fatalf("placeholder %q left in %s", s, k)
					}
				}
			}
		}
	}
	for _, d := range dead {
		if d["reason"] == nil || d["node"] == nil || d["record"] == nil {
			t.Fatalf("dead letter lacks record/node/reason: %v", d)
		}
	}
	// Nothing is lost: every generated post is a pin, a duplicate or a dead letter.
	summary := stderr.String()
	if !strings.Contains(summary, "unique") {
		t.Fatalf("summary lacks the dedupe node:\n%s", summary)
	}
	// The generator is seeded (SEED defaults to 42): replay it to know exactly
	// which posts must come out where.
	gen := gposts.New(42)
	wantIDs, wantDead := map[string]bool{}, 0
	for range posts {
		var p gposts.Post
		gen.Next(&p)
		if p.MissingUniqueID || p.MissingCategory || p.UniqueID == "" || p.Category == "" {
			wantDead++
			continue
		}
		wantIDs[p.UniqueID] = true
	}
	if len(pins) != len(wantIDs) || len(dead) != wantDead {
		t.Fatalf("pins=%d dead=%d, want %d unique valid posts and %d dead letters", len(pins), len(dead), len(wantIDs), wantDead)
	}
	for id := range wantIDs {
		if !seen[id] {
			t.Fatalf("post %s is missing from the output", id)
		}
	}

	// The Parquet copy holds the same rows.
	rdr, err := file.OpenParquetFile(filepath.Join(out, "pins.parquet"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if int(tbl.NumRows()) != len(pins) {
		t.Fatalf("parquet rows %d, jsonl rows %d", tbl.NumRows(), len(pins))
	}
}
