package lake

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/lakeio"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/op/optest"
)

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "off", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "at", Type: types.Timestamp, Nullable: true},
}, nil)

func prep(t *testing.T, text string) (op.Constructor, source.Errors) {
	t.Helper()
	return prepWith(t, text, schema)
}

func opResources() op.Resources { return op.Resources{Node: "lake"} }

func prepWith(t testing.TB, text string, schema *arrow.Schema) (op.Constructor, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	f := source.NewFile("p.yaml", []byte(text))
	var errs source.Errors
	v := spec.Decode(f, doc.Content[0], Plugin.Spec.Config, &errs)
	_, ctor := Plugin.Prepare(&validate.Check{Config: v, Errs: &errs, Inputs: []validate.Input{{Name: "in", Schema: schema}}})
	return ctor, errs
}

func TestPrepare(t *testing.T) {
	tests := []struct{ name, cfg, err string }{
		{"folder", `{path: out/lake}`, ""},
		{"partitions", `{path: out/lake, partition_by: {dt: 'at.Format("2006-01-02")'}}`, ""},
		{"s3", `{path: "s3://b/p", s3: {endpoint: "http://127.0.0.1:8333", path_style: true}}`, ""},
		{"scheme", `{path: "gs://b/p"}`, `p.yaml:1:8: 'path' "gs://b/p": only a folder or s3://bucket/prefix is supported`},
		{"bad expr", `{path: x, partition_by: {dt: 'nope + 1'}}`, `nope`},
		{"bad name", `{path: x, partition_by: {"a/b": 'name'}}`, `partition name "a/b" must not be empty or contain / or =`},
		{"rows", `{path: x, file_rows: 0}`, `'file_rows' must be positive`},
		{"age", `{path: x, file_age: 0s}`, `'file_age' must be positive`},
		{"compression", `{path: x, compression: lzo}`, `'compression' must be one of zstd, snappy, gzip, none, not "lzo"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctor, errs := prep(t, tt.cfg)
			if tt.err == "" {
				if len(errs) > 0 || ctor == nil {
					t.Fatalf("unexpected errors %v", errs)
				}
				return
			}
			if !strings.Contains(errs.Error(), tt.err) {
				t.Fatalf("errors = %q, want %q", errs.Error(), tt.err)
			}
		})
	}
}

// lakes returns the lake locations to test: a folder, and a fresh bucket
// prefix on the S3 store.
func lakes(t *testing.T) map[string]string {
	out := map[string]string{"folder": filepath.Join(t.TempDir(), "lake")}
	if testing.Short() {
		return out
	}
	ep := testenv.S3(t)
	out["s3"] = "s3://" + testBucket(t, ep) + "/" + fmt.Sprintf("t%d", time.Now().UnixNano()) + "@" + ep
	return out
}

// testBucket creates (idempotently) the bucket tests use.
func testBucket(t *testing.T, ep string) string {
	t.Helper()
	const b = "flowrun-test"
	req, _ := newPut(ep + "/" + b)
	if err := req(); err != nil {
		t.Fatalf("creating bucket %s at %s: %v", b, ep, err)
	}
	return b
}

func config(loc string, extra string) string {
	path, ep, isS3 := strings.Cut(loc, "@")
	cfg := `{path: "` + path + `", partition_by: {dt: 'at.Format("2006-01-02")', hour: 'at.Format("15")'}` + extra
	if isS3 {
		cfg += `, s3: {endpoint: "` + ep + `", path_style: true}`
	}
	return cfg + "}"
}

func open(t *testing.T, mem memory.Allocator, cfg string) *Sink {
	t.Helper()
	ctor, errs := prep(t, cfg)
	if len(errs) > 0 {
		t.Fatal(errs.Error())
	}
	s, err := ctor(op.Resources{Alloc: mem, Node: "lake"})
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Sink)
}

var base = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)

// rows builds a batch of offsets first..last; offset o is at base + o minutes.
func rows(mem memory.Allocator, first, last int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for o := first; o <= last; o++ {
		b.Field(0).(*array.Int64Builder).Append(o)
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("post %d", o))
		ts, _ := arrow.TimestampFromTime(base.Add(time.Duration(o)*time.Minute), arrow.Microsecond)
		b.Field(2).(*array.TimestampBuilder).Append(ts)
	}
	return b.NewRecordBatch()
}

type acks struct {
	mu   sync.Mutex
	done map[int64]error // by first offset
}

func (a *acks) ack(first, last int64) *batch.Ack {
	return batch.NewAck(func(err error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.done == nil {
			a.done = map[int64]error{}
		}
		a.done[first] = err
	}).WithPositions(batch.Position{Source: "posts", Topic: "pins", Partition: 3, First: first, Last: last})
}

func (a *acks) get(first int64) (error, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	err, ok := a.done[first]
	return err, ok
}

func write(t *testing.T, s *Sink, a *acks, mem memory.Allocator, first, last int64) {
	t.Helper()
	if err := s.Write(context.Background(), batch.Batch{Rec: rows(mem, first, last), Ack: a.ack(first, last)}); err != nil {
		t.Fatal(err)
	}
}

// readBack lists every data file and returns the offsets stored, by file.
func readBack(t *testing.T, st lakeio.Store) (files []string, offs []int64) {
	t.Helper()
	ctx := context.Background()
	var walk func(p string)
	walk = func(p string) {
		ents, err := st.List(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Dir {
				if !strings.HasPrefix(e.Key, "_flowrun") {
					walk(e.Key)
				}
				continue
			}
			if lakeio.IsTemp(lakeio.Base(e.Key)) {
				continue
			}
			files = append(files, e.Key)
			r, err := lakeio.OpenReader(ctx, st, e.Key, 1000, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Records(ctx, nil, func(rec arrow.RecordBatch) error {
				defer rec.Release()
				col := rec.Column(0).(*array.Int64)
				offs = append(offs, col.Int64Values()...)
				return nil
			})
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	walk("")
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	return files, offs
}

func wantOffsets(t *testing.T, got []int64, n int64) {
	t.Helper()
	if int64(len(got)) != n {
		t.Fatalf("%d rows stored, want %d: %v", len(got), n, got)
	}
	for i, o := range got {
		if o != int64(i) {
			t.Fatalf("offset %d stored at place %d (missing or duplicate): %v", o, i, got)
		}
	}
}

func TestWriteAckReadBack(t *testing.T) {
	for name, loc := range lakes(t) {
		t.Run(name, func(t *testing.T) {
			mem := optest.Allocator(t)
			s := open(t, mem, config(loc, ", file_rows: 50"))
			var a acks
			write(t, s, &a, mem, 0, 29)  // 13:00-13:29
			write(t, s, &a, mem, 30, 79) // 13:30-14:19: two hours
			// 80 rows in hour 13... hour 13 holds offsets 0-59 (60 rows ≥ 50): committed.
			if err, ok := a.get(0); !ok || err != nil {
				t.Fatalf("first batch: acked %v err %v; its only file reached file_rows", ok, err)
			}
			if _, ok := a.get(30); ok {
				t.Fatal("second batch acked while its hour-14 rows are in an open file")
			}
			files, _ := readBack(t, s.Store())
			if len(files) != 1 || files[0] != "dt=2026-11-25/hour=13/pins-p3-0000000000000000000-0000000000000000079.parquet" {
				t.Fatalf("committed files %v", files)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err, ok := a.get(30); !ok || err != nil {
				t.Fatalf("second batch after close: acked %v err %v", ok, err)
			}
			files, offs := readBack(t, storeOf(t, loc))
			wantOffsets(t, offs, 80)
			if len(files) != 2 || !strings.HasPrefix(files[1], "dt=2026-11-25/hour=14/pins-p3-0000000000000000030-0000000000000000079") {
				t.Fatalf("files %v", files)
			}
		})
	}
}

// TestReplay: a sink dies with files committed and open; a new one is given
// the partition again from the last committed offset, with other batch
// boundaries. The lake must end with every offset once.
func TestReplay(t *testing.T) {
	for name, loc := range lakes(t) {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewGoAllocator()
			ctx := context.Background()
			s1 := open(t, mem, config(loc, ", file_rows: 40"))
			var a acks
			write(t, s1, &a, mem, 0, 19)
			write(t, s1, &a, mem, 20, 39) // hour 13 reaches 40 rows: committed (0-39)
			write(t, s1, &a, mem, 40, 69) // 13:40-14:09: hour 13 gets 20, hour 14 10
			write(t, s1, &a, mem, 70, 89) // hour 13 reaches 60-... committed? 40..59 = 20 rows: no
			// Suppose Kafka committed only up to offset 19 (the sink acked 0-39,
			// the commit did not happen before the crash). s1 dies: no Close.
			s1.mu.Lock()
			for _, w := range s1.writers {
				w.up.Abort() // what a crash leaves: no visible file
			}
			s1.mu.Unlock()

			s2 := open(t, mem, config(loc, ", file_rows: 1000"))
			var a2 acks
			write(t, s2, &a2, mem, 20, 54)
			write(t, s2, &a2, mem, 55, 99)
			if err := s2.Close(ctx); err != nil {
				t.Fatal(err)
			}
			files, offs := readBack(t, storeOf(t, loc))
			wantOffsets(t, offs, 100)
			// The committed 0-39 file was cut back to 0-19.
			found := false
			for _, f := range files {
				found = found || strings.HasSuffix(f, "pins-p3-0000000000000000000-0000000000000000019.parquet")
			}
			if !found {
				t.Fatalf("files %v: want the hour-13 file cut back to offsets 0-19", files)
			}
			// A third run replaying from 100 (nothing to undo) leaves it alone.
			s3 := open(t, mem, config(loc, ""))
			var a3 acks
			write(t, s3, &a3, mem, 100, 109)
			if err := s3.Close(ctx); err != nil {
				t.Fatal(err)
			}
			_, offs = readBack(t, storeOf(t, loc))
			wantOffsets(t, offs, 110)
		})
	}
}

func TestAge(t *testing.T) {
	mem := memory.NewGoAllocator()
	dir := filepath.Join(t.TempDir(), "lake")
	s := open(t, mem, config(dir, ", file_age: 50ms"))
	var a acks
	write(t, s, &a, mem, 0, 9)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.get(0); ok {
		t.Fatal("acked before file_age")
	}
	time.Sleep(60 * time.Millisecond)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err, ok := a.get(0); !ok || err != nil {
		t.Fatalf("after file_age: acked %v, err %v", ok, err)
	}
	s.Close(context.Background())
}

func TestMaxOpenClosesOldest(t *testing.T) {
	mem := memory.NewGoAllocator()
	dir := filepath.Join(t.TempDir(), "lake")
	s := open(t, mem, config(dir, ", max_open_files: 2"))
	var a acks
	write(t, s, &a, mem, 0, 0)     // hour 13
	write(t, s, &a, mem, 60, 60)   // hour 14
	write(t, s, &a, mem, 120, 120) // hour 15: a third file: hour 13's is committed
	if err, ok := a.get(0); !ok || err != nil {
		t.Fatalf("oldest file's batch: acked %v err %v", ok, err)
	}
	if _, ok := a.get(60); ok {
		t.Fatal("the second file was closed too")
	}
	if len(s.writers) != 2 {
		t.Fatalf("%d files open, want 2", len(s.writers))
	}
	s.Close(context.Background())
}

// TestCommitFailure: a file that cannot be committed fails the acks of
// the batches in it and the write, and leaves no file behind.
func TestCommitFailure(t *testing.T) {
	mem := memory.NewGoAllocator()
	dir := t.TempDir()
	s := open(t, mem, config(filepath.Join(dir, "lake"), ", file_rows: 5"))
	var a acks
	// The hour-13 folder becomes a file: the rename into it fails.
	write(t, s, &a, mem, 0, 3)
	hour := filepath.Join(dir, "lake", "dt=2026-11-25", "hour=13")
	tmp, _ := filepath.Glob(filepath.Join(hour, ".upload-*"))
	if len(tmp) != 1 {
		t.Fatalf("want one upload in progress, got %v", tmp)
	}
	if err := os.Rename(hour, hour+".moved"); err != nil {
		t.Fatal(err)
	}
	err := s.Write(context.Background(), batch.Batch{Rec: rows(mem, 4, 9), Ack: a.ack(4, 9)})
	if err == nil || !strings.Contains(err.Error(), "committing dt=2026-11-25/hour=13/pins-p3-") {
		t.Fatalf("write error %v", err)
	}
	for _, first := range []int64{0, 4} {
		if aerr, ok := a.get(first); !ok || aerr == nil {
			t.Fatalf("batch %d: acked %v with %v, want a failure", first, ok, aerr)
		}
	}
	if err := s.Close(context.Background()); err == nil {
		t.Fatal("close after a failure returned nil")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "lake", "*", "*", "*.parquet")); len(files) != 0 {
		t.Fatalf("files %v", files)
	}
}

// newPut returns a function creating a bucket with an anonymous PUT (the
// test store allows it); an existing bucket is fine.
func newPut(url string) (func() error, error) {
	return func() error {
		req, err := http.NewRequest(http.MethodPut, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusConflict {
			return fmt.Errorf("PUT %s: %s: %s", url, resp.Status, body)
		}
		return nil
	}, nil
}

// storeOf opens the lake at loc independently of any sink.
func storeOf(t *testing.T, loc string) lakeio.Store {
	t.Helper()
	path, ep, _ := strings.Cut(loc, "@")
	st, err := lakeio.Open(context.Background(), path, lakeio.S3Options{Endpoint: ep, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestPartitionFailureGoesToDeadLetters: a row whose partition expression
// fails (a null time here) is a dead letter with the reason; the others
// are written, and the batch is acked once both are stored.
func TestPartitionFailureGoesToDeadLetters(t *testing.T) {
	mem := memory.NewGoAllocator()
	dir := filepath.Join(t.TempDir(), "lake")
	ctor, errs := prep(t, config(dir, ""))
	if len(errs) > 0 {
		t.Fatal(errs.Error())
	}
	dl := &optest.DeadLetters{}
	si, err := ctor(op.Resources{Node: "lake", DeadLetters: dl})
	if err != nil {
		t.Fatal(err)
	}
	s := si.(*Sink)
	b := array.NewRecordBuilder(mem, schema)
	for i := 0; i < 3; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append("p")
		if i == 1 {
			b.Field(2).AppendNull()
		} else {
			ts, _ := arrow.TimestampFromTime(base, arrow.Microsecond)
			b.Field(2).(*array.TimestampBuilder).Append(ts)
		}
	}
	var a acks
	if err := s.Write(context.Background(), batch.Batch{Rec: b.NewRecordBatch(), Ack: a.ack(0, 2)}); err != nil {
		t.Fatal(err)
	}
	if len(dl.Records()) != 1 || !strings.Contains(dl.Records()[0], `"off":1`) || !strings.HasPrefix(dl.Reasons()[0], "lake: partition dt: ") {
		t.Fatalf("dead letters %q %q", dl.Records(), dl.Reasons())
	}
	if _, ok := a.get(0); ok {
		t.Fatal("acked before the file is committed")
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err, ok := a.get(0); !ok || err != nil {
		t.Fatalf("acked %v err %v", ok, err)
	}
	_, offs := readBack(t, storeOf(t, dir))
	if len(offs) != 2 || offs[0] != 0 || offs[1] != 2 {
		t.Fatalf("stored offsets %v", offs)
	}

	// Without a dead-letter output the write fails, naming the row.
	s2 := open(t, mem, config(filepath.Join(t.TempDir(), "lake"), ""))
	b2 := array.NewRecordBuilder(mem, schema)
	b2.Field(0).(*array.Int64Builder).Append(9)
	b2.Field(1).AppendNull()
	b2.Field(2).AppendNull()
	err = s2.Write(context.Background(), batch.Batch{Rec: b2.NewRecordBatch(), Ack: a.ack(9, 9)})
	if err == nil || !strings.Contains(err.Error(), "row 0: lake: partition dt: ") {
		t.Fatalf("write error %v", err)
	}
	if aerr, ok := a.get(9); !ok || aerr == nil {
		t.Fatalf("ack of the failed batch: %v %v", ok, aerr)
	}
}

// TestHeldBytesBound: beyond max_held_bytes of unacknowledged batches the
// oldest file is committed, so a source's in-flight limit is never reached.
func TestHeldBytesBound(t *testing.T) {
	mem := memory.NewGoAllocator()
	s := open(t, mem, config(filepath.Join(t.TempDir(), "lake"), ", max_held_bytes: 3000"))
	var a acks
	for i := int64(0); i < 20; i++ {
		write(t, s, &a, mem, i*10, i*10+9)
		if s.held > 3000 {
			t.Fatalf("after batch %d: %d bytes held", i, s.held)
		}
	}
	if s.Committed == 0 {
		t.Fatal("nothing committed")
	}
	if err, ok := a.get(0); !ok || err != nil {
		t.Fatalf("first batch: %v %v", ok, err)
	}
	s.Close(context.Background())
}

// TestCleanUploads: an upload left by a crash is removed once it is older
// than file_age + 10s; a live one is left alone.
func TestCleanUploads(t *testing.T) {
	mem := memory.NewGoAllocator()
	dir := filepath.Join(t.TempDir(), "lake")
	hour := filepath.Join(dir, "dt=2026-11-25", "hour=13")
	if err := os.MkdirAll(hour, 0o755); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(hour, ".upload-dead.tmp"), filepath.Join(hour, ".upload-live.tmp")
	os.WriteFile(old, []byte("PAR1"), 0o644)
	os.WriteFile(fresh, []byte("PAR1"), 0o644)
	past := time.Now().Add(-2 * time.Minute)
	os.Chtimes(old, past, past)
	s := open(t, mem, config(dir, ", file_age: 1m"))
	var a acks
	write(t, s, &a, mem, 0, 0)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("the crash's upload is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a live upload was removed: %v", err)
	}
	s.Close(context.Background())
}

// TestRecordsCompaction: during a run the commit records are compacted,
// forgetting files committed longer than RecordRetention ago.
func TestRecordsCompaction(t *testing.T) {
	defer func(a int, r time.Duration) { RecordsCompactAt, RecordRetention = a, r }(RecordsCompactAt, RecordRetention)
	RecordsCompactAt, RecordRetention = 3, -time.Hour // everything is old
	mem := memory.NewGoAllocator()
	dir := filepath.Join(t.TempDir(), "lake")
	s := open(t, mem, config(dir, ", file_rows: 1"))
	var a acks
	for i := int64(0); i < 5; i++ {
		write(t, s, &a, mem, i, i)
	}
	recs, _ := filepath.Glob(filepath.Join(dir, "_flowrun", "lake", "*.json"))
	if len(recs) != 5 {
		t.Fatalf("%d records before compaction, want 5", len(recs))
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, _ = filepath.Glob(filepath.Join(dir, "_flowrun", "lake", "*.json"))
	if len(recs) != 1 || len(s.files) != 0 {
		t.Fatalf("after compaction: %d records, %d files remembered", len(recs), len(s.files))
	}
	s.Close(context.Background())
}

func TestTimeFast(t *testing.T) {
	tests := []struct {
		src, layout string
		span        time.Duration
		guard       bool
	}{
		{`at.Format("2006-01-02")`, "2006-01-02", 24 * time.Hour, false},
		{`at == nil ? nil : at.Format("15")`, "15", time.Hour, true},
		{`at.Format("2006-01-02T15")`, "2006-01-02T15", time.Hour, false},
		{`at.Format("2006/01")`, "2006/01", 24 * time.Hour, false},
		{`at.Format("15:04")`, "", 0, false},          // minutes: no fast path
		{`at.Format("3PM")`, "3PM", time.Hour, false}, // 12-hour clock
		{`name.Format("15")`, "", 0, false},           // not a timestamp
		{`off == nil ? nil : at.Format("15")`, "", 0, false},
		{`upper(name)`, "", 0, false},
	}
	for _, tt := range tests {
		_, layout, span, guard := timeFast(tt.src, schema)
		if layout != tt.layout || span != int64(tt.span/time.Microsecond) || guard != tt.guard {
			t.Errorf("%s: layout %q span %d guard %v", tt.src, layout, span, guard)
		}
	}
}

// TestS3Failures: a missing bucket fails the sink's start with the store's
// reason; a bucket that disappears while the sink runs fails the commit,
// the write (naming the file) and the batch's ack.
func TestS3Failures(t *testing.T) {
	ep := testenv.S3(t)
	mem := memory.NewGoAllocator()
	ctor, errs := prep(t, config(fmt.Sprintf("s3://flowrun-missing-%d/lake@%s", time.Now().UnixNano(), ep), ""))
	if len(errs) > 0 {
		t.Fatal(errs.Error())
	}
	if _, err := ctor(op.Resources{Node: "lake"}); err == nil || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Fatalf("start on a missing bucket: %v", err)
	}

	bucket := fmt.Sprintf("flowrun-gone-%d", time.Now().UnixNano())
	put, _ := newPut(ep + "/" + bucket)
	if err := put(); err != nil {
		t.Fatal(err)
	}
	s := open(t, mem, config("s3://"+bucket+"/lake@"+ep, ", file_rows: 2"))
	req, _ := http.NewRequest(http.MethodDelete, ep+"/"+bucket, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("DELETE bucket: %s", resp.Status)
	}
	var a acks
	err = s.Write(context.Background(), batch.Batch{Rec: rows(mem, 0, 2), Ack: a.ack(0, 2)})
	if err == nil || !strings.Contains(err.Error(), "dt=2026-11-25/hour=13/pins-p3-0000000000000000000-0000000000000000002.parquet") {
		t.Fatalf("write error %v, want the file's commit failing", err)
	}
	if aerr, ok := a.get(0); !ok || aerr == nil {
		t.Fatalf("ack: %v %v, want a failure", ok, aerr)
	}
	if err := s.Close(context.Background()); err == nil {
		t.Fatal("close after a failed commit returned nil")
	}
}

// TestSizeRoll: a file is committed once file_size bytes are written.
func TestSizeRoll(t *testing.T) {
	mem := memory.NewGoAllocator()
	dir := filepath.Join(t.TempDir(), "lake")
	s := open(t, mem, config(dir, ", file_size: 1KiB, row_group_rows: 16"))
	var a acks
	write(t, s, &a, mem, 0, 9)
	if _, ok := a.get(0); ok {
		t.Fatal("10 rows already reached 1KiB")
	}
	for i := int64(1); i < 20 && s.Committed == 0; i++ {
		write(t, s, &a, mem, i*10, i*10+9)
	}
	if s.Committed == 0 {
		t.Fatal("no file committed after 200 rows of ~30 bytes")
	}
	if err, ok := a.get(0); !ok || err != nil {
		t.Fatalf("first batch: %v %v", ok, err)
	}
	write(t, s, &a, mem, 1000, 1009) // a new file
	s.Close(context.Background())
	files, offs := readBack(t, storeOf(t, dir))
	if len(files) < 2 {
		t.Fatalf("files %v", files)
	}
	t.Logf("%d files for %d rows", len(files), len(offs))
}

// TestReplayStartInsideABatch: the first replayed batch that reaches the
// sink may start after the source's resume offset (the batches before it
// gave this sink no rows); the earlier run's batch holding that offset is
// replayed whole, so it is dropped from the file being cut.
func TestReplayStartInsideABatch(t *testing.T) {
	mem := memory.NewGoAllocator()
	dir := filepath.Join(t.TempDir(), "lake")
	s1 := open(t, mem, config(dir, ", file_rows: 30"))
	var a acks
	write(t, s1, &a, mem, 0, 9)
	write(t, s1, &a, mem, 10, 29) // committed: segments 0-9, 10-29
	// The source resumes at 10; offsets 10-14 were dead letters this time,
	// so the first batch the sink sees starts at 15.
	s2 := open(t, mem, config(dir, ""))
	var a2 acks
	write(t, s2, &a2, mem, 15, 29)
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, offs := readBack(t, storeOf(t, dir))
	want := []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29}
	if fmt.Sprint(offs) != fmt.Sprint(want) {
		t.Fatalf("offsets %v, want %v", offs, want)
	}
}

// TestMemoryBudget: what open files hold is charged to the pipeline's
// budget; beyond the budget the oldest file is committed; everything is
// released at the end.
func TestMemoryBudget(t *testing.T) {
	mem := memory.NewGoAllocator()
	ctor, errs := prep(t, config(filepath.Join(t.TempDir(), "lake"), ""))
	if len(errs) > 0 {
		t.Fatal(errs.Error())
	}
	budget := op.NewBudget(500)
	si, err := ctor(op.Resources{Node: "lake", Memory: budget})
	if err != nil {
		t.Fatal(err)
	}
	s := si.(*Sink)
	var a acks
	write(t, s, &a, mem, 0, 4)
	if budget.InUse() == 0 {
		t.Fatal("the open file's rows are not charged")
	}
	for i := int64(1); i < 10; i++ {
		write(t, s, &a, mem, i*5, i*5+4)
		if budget.InUse() > 500 {
			t.Fatalf("after batch %d: %d bytes charged", i, budget.InUse())
		}
	}
	if s.Committed == 0 {
		t.Fatal("nothing committed although the budget was exceeded")
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if budget.InUse() != 0 {
		t.Fatalf("%d bytes still charged after close", budget.InUse())
	}
}

// mergedAck is the ack of a batch built from several inputs (an aggregate's
// result): positions of two partitions of one topic and of a second source.
func mergedAck(done *[]error, lo, hi int64) *batch.Ack {
	return batch.NewAck(func(err error) { *done = append(*done, err) }).WithPositions(batch.MergePositions([]batch.Position{
		{Source: "posts", Topic: "pins", Partition: 0, First: lo, Last: hi},
		{Source: "posts", Topic: "pins", Partition: 1, First: lo, Last: hi},
		{Source: "clicks", Topic: "clicks", Partition: 0, First: lo, Last: hi},
	})...)
}

// writeMerged writes rows first..last under a merged ack of offsets lo..hi
// of every input, in pieces of at most piece rows (one ack, several
// batches, as a transform emits them).
func writeMerged(t *testing.T, s *Sink, done *[]error, mem memory.Allocator, first, last, lo, hi, piece int64) {
	t.Helper()
	ack := mergedAck(done, lo, hi)
	n := (last - first + piece) / piece
	ack.Retain(int(n - 1))
	for f := first; f <= last; f += piece {
		if err := s.Write(context.Background(), batch.Batch{Rec: rows(mem, f, min(last, f+piece-1)), Ack: ack}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMergedReplay: batches whose acks cover several partitions and
// sources go to merged-* files listing their positions. A crash leaves some
// committed; the next run reads the inputs again from where the sources
// had committed, grouped differently. The lake ends with every row once: a
// committed merged file holding replayed batches is cut back or removed.
func TestMergedReplay(t *testing.T) {
	for name, loc := range lakes(t) {
		t.Run(name, func(t *testing.T) {
			mem := memory.NewGoAllocator()
			ctx := context.Background()
			s1 := open(t, mem, config(loc, ", file_rows: 60"))
			var d1 []error
			// Row r stands for the aggregate of input offsets r/3 of
			// every partition: rows 0-29 ← offsets 0-9, 30-59 ← 10-19 ...
			writeMerged(t, s1, &d1, mem, 0, 29, 0, 9, 7)
			writeMerged(t, s1, &d1, mem, 30, 59, 10, 19, 7) // hour 13 has 60 rows: committed
			writeMerged(t, s1, &d1, mem, 60, 89, 20, 29, 30)
			if len(d1) != 2 || d1[0] != nil || d1[1] != nil {
				t.Fatalf("acks after the first file: %v", d1)
			}
			files, offs := readBack(t, s1.Store())
			if len(files) != 1 || !strings.HasPrefix(files[0], "dt=2026-11-25/hour=13/merged-") || len(offs) != 60 {
				t.Fatalf("committed before the crash: %v (%d rows)", files, len(offs))
			}
			s1.mu.Lock()
			for _, w := range s1.writers {
				w.up.Abort() // the crash: hour 14's rows never become visible
			}
			s1.mu.Unlock()

			// The sources had committed offsets 0-9 only: offsets 10-29
			// are read again, now as one batch, then new input follows.
			s2 := open(t, mem, config(loc, ", file_rows: 1000"))
			var d2 []error
			writeMerged(t, s2, &d2, mem, 30, 89, 10, 29, 25)
			writeMerged(t, s2, &d2, mem, 90, 99, 30, 32, 25)
			if err := s2.Close(ctx); err != nil {
				t.Fatal(err)
			}
			files, offs = readBack(t, storeOf(t, loc))
			wantOffsets(t, offs, 100)
			for _, f := range files {
				if !strings.Contains(f, "/merged-") {
					t.Fatalf("file %s: want merged-* names", f)
				}
			}

			// A run that reads everything again (the sources committed
			// nothing) replaces every file; its records say what each holds.
			s3 := open(t, mem, config(loc, ""))
			var d3 []error
			writeMerged(t, s3, &d3, mem, 0, 99, 0, 32, 40)
			if err := s3.Close(ctx); err != nil {
				t.Fatal(err)
			}
			_, offs = readBack(t, storeOf(t, loc))
			wantOffsets(t, offs, 100)
			recs, err := lakeio.LoadRecords(ctx, storeOf(t, loc), lakeio.RecordsDir("lake"))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs.Files) != 2 {
				t.Fatalf("records %+v, want the two files of the last run", recs.Files)
			}
			for _, f := range recs.Files {
				if !f.Merged() || len(f.Ranges) != 3 || f.Ranges[0].Source != "clicks" {
					t.Fatalf("record %+v: want the three input ranges", f)
				}
			}
			for _, err := range append(d2, d3...) {
				if err != nil {
					t.Fatalf("ack failed: %v", err)
				}
			}
		})
	}
}

// TestMergedReplayKeepsOtherInputs: a replay of one partition removes only
// the merged batches it reads again; batches of other inputs stay.
func TestMergedReplayKeepsOtherInputs(t *testing.T) {
	mem := memory.NewGoAllocator()
	dir := filepath.Join(t.TempDir(), "lake")
	s1 := open(t, mem, config(dir, ""))
	var d []error
	other := func(first, last, lo, hi int64) {
		ack := batch.NewAck(func(err error) { d = append(d, err) }).WithPositions(
			batch.Position{Source: "posts", Topic: "pins", Partition: 7, First: lo, Last: hi},
			batch.Position{Source: "posts", Topic: "pins", Partition: 8, First: lo, Last: hi})
		if err := s1.Write(context.Background(), batch.Batch{Rec: rows(mem, first, last), Ack: ack}); err != nil {
			t.Fatal(err)
		}
	}
	writeMerged(t, s1, &d, mem, 0, 9, 0, 9, 10)
	other(10, 19, 0, 9) // partitions 7 and 8 only
	writeMerged(t, s1, &d, mem, 20, 29, 10, 19, 10)
	if err := s1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, mem, config(dir, ""))
	writeMerged(t, s2, &d, mem, 20, 29, 10, 19, 10) // partitions 0, 1 and clicks from 10
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, offs := readBack(t, storeOf(t, dir))
	wantOffsets(t, offs, 30)
}

// TestPiecesOfOneAck: a transform may emit several batches under one input's
// ack; the second piece repeats the positions of the first and is no replay.
func TestPiecesOfOneAck(t *testing.T) {
	mem := memory.NewGoAllocator()
	dir := filepath.Join(t.TempDir(), "lake")
	s := open(t, mem, config(dir, ""))
	var a acks
	ack := a.ack(0, 19)
	ack.Retain(1)
	for _, r := range [][2]int64{{0, 9}, {10, 19}} {
		if err := s.Write(context.Background(), batch.Batch{Rec: rows(mem, r[0], r[1]), Ack: ack}); err != nil {
			t.Fatal(err)
		}
	}
	write(t, s, &a, mem, 20, 29)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err, ok := a.get(0); !ok || err != nil {
		t.Fatalf("the split batch: acked %v, err %v", ok, err)
	}
	_, offs := readBack(t, storeOf(t, dir))
	wantOffsets(t, offs, 30)
}

// TestLargeMergedBatchRolls: one batch larger than file_rows (an aggregate's
// whole result) is spread over files of file_rows rows, committed as they
// fill; its ack completes when the last of them is committed.
func TestLargeMergedBatchRolls(t *testing.T) {
	mem := optest.Allocator(t)
	dir := filepath.Join(t.TempDir(), "lake")
	s := open(t, mem, `{path: "`+dir+`", file_rows: 100}`)
	var d []error
	writeMerged(t, s, &d, mem, 0, 249, 0, 9, 250)
	files, offs := readBack(t, s.Store())
	if len(files) != 2 || len(offs) != 200 || len(d) != 0 {
		t.Fatalf("before close: files %v, %d rows, acks %v; want two full files, the batch not acked", files, len(offs), d)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, offs = readBack(t, storeOf(t, dir))
	wantOffsets(t, offs, 250)
	if len(files) != 3 || len(d) != 1 || d[0] != nil {
		t.Fatalf("files %v, acks %v", files, d)
	}
}
