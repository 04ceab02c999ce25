package lake

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
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
	sink "github.com/flowrun/flowrun/operators/sink/lake"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

var full = arrow.NewSchema([]arrow.Field{
	{Name: "off", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "at", Type: types.Timestamp, Nullable: true},
}, nil)

var base = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

// writeLake writes n rows, row o at base + o*10 minutes (so 6 an hour,
// across n/144 days), with the lake sink.
func writeLake(t testing.TB, path, s3 string, n int64) {
	t.Helper()
	writeLakeStep(t, path, s3, n, 10*time.Minute)
}

// writeLakeStep writes n rows, row o at base + o*step.
func writeLakeStep(t testing.TB, path, s3 string, n int64, step time.Duration) {
	t.Helper()
	text := `{path: "` + path + `", partition_by: {dt: 'at.Format("2006-01-02")', hour: 'at.Format("15")'}` + s3 + `}`
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	var errs source.Errors
	v := spec.Decode(source.NewFile("p.yaml", []byte(text)), doc.Content[0], sink.Plugin.Spec.Config, &errs)
	_, ctor := sink.Plugin.Prepare(&validate.Check{Config: v, Errs: &errs, Inputs: []validate.Input{{Name: "in", Schema: full}}})
	if ctor == nil {
		t.Fatal(errs.Error())
	}
	s, err := ctor(op.Resources{Node: "lake"})
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, full)
	for o := int64(0); o < n; o++ {
		b.Field(0).(*array.Int64Builder).Append(o)
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("post %d", o))
		ts, _ := arrow.TimestampFromTime(base.Add(time.Duration(o)*step), arrow.Microsecond)
		b.Field(2).(*array.TimestampBuilder).Append(ts)
	}
	rec := b.NewRecordBatch()
	b.Release()
	ack := batch.NewAck(nil).WithPositions(batch.Position{Topic: "pins", Partition: 0, First: 0, Last: n - 1})
	if err := s.(op.Sink).Write(context.Background(), batch.Batch{Rec: rec, Ack: ack}); err != nil {
		t.Fatal(err)
	}
	if err := s.(op.Closer).Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

type collect struct {
	mu     sync.Mutex
	schema *arrow.Schema
	offs   []int64
	cols   int
}

func (c *collect) Schema() *arrow.Schema { return c.schema }
func (c *collect) Reject(string, string) error {
	return fmt.Errorf("unexpected reject")
}
func (c *collect) Emit(ctx context.Context, b batch.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cols = int(b.Rec.NumCols())
	c.offs = append(c.offs, b.Rec.Column(0).(*array.Int64).Int64Values()...)
	b.Release(nil)
	return nil
}

func prep(t testing.TB, text string) (*arrow.Schema, op.Constructor, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	var errs source.Errors
	v := spec.Decode(source.NewFile("p.yaml", []byte(text)), doc.Content[0], Plugin.Spec.Config, &errs)
	c := &validate.Check{Config: v, Errs: &errs, Schema: func(*spec.Value) *arrow.Schema { return arrow.NewSchema(full.Fields()[:2], nil) }}
	s, ctor := Plugin.Prepare(c)
	return s, ctor, errs
}

func TestPrepareErrors(t *testing.T) {
	tests := []struct{ cfg, err string }{
		{`{path: x, schema: slim, from: "25/11/2026"}`, `p.yaml:1:31: 'from': "25/11/2026" is not a date (2006-01-02) or an RFC 3339 time`},
		{`{path: x, schema: slim, from: "2026-11-26", to: "2026-11-25"}`, `'to' (2026-11-25T00:00:00Z) must be after 'from' (2026-11-26T00:00:00Z)`},
		{`{path: "s3://b/x"}`, `reading s3://b/x needs a declared schema`},
		{`{path: "` + filepath.Join(t.TempDir(), "none") + `"}`, `no parquet file in`},
		{`{path: x, schema: slim, time_partitions: {dt: "nothing"}}`, `time_partitions dt: "nothing" is not a usable Go time layout`},
	}
	for _, tt := range tests {
		_, _, errs := prep(t, tt.cfg)
		if !strings.Contains(errs.Error(), tt.err) {
			t.Errorf("%s: errors %q, want %q", tt.cfg, errs.Error(), tt.err)
		}
	}
}

func TestReadRangeProjection(t *testing.T) {
	locs := map[string][2]string{"folder": {filepath.Join(t.TempDir(), "lake"), ""}}
	if !testing.Short() {
		ep := testenv.S3(t)
		req, _ := http.NewRequest(http.MethodPut, ep+"/flowrun-test", nil)
		if resp, err := http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		} else {
			resp.Body.Close()
		}
		locs["s3"] = [2]string{fmt.Sprintf("s3://flowrun-test/src%d", time.Now().UnixNano()), `, s3: {endpoint: "` + ep + `", path_style: true}`}
	}
	for name, loc := range locs {
		t.Run(name, func(t *testing.T) {
			writeLake(t, loc[0], loc[1], 3*144) // three days
			tests := []struct {
				name, rng string
				first, n  int64
			}{
				{"all", ``, 0, 432},
				{"one day", `, from: "2026-11-26", to: "2026-11-27"`, 144, 144},
				{"an interval", `, from: "2026-11-25T13:00:00Z", to: "2026-11-25T15:00:00Z"`, 13 * 6, 12},
				{"open end", `, from: "2026-11-27T23:00:00Z"`, 3*144 - 6, 6},
				{"nothing", `, from: "2027-01-01"`, 0, 0},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					schema, ctor, errs := prep(t, `{path: "`+loc[0]+`", schema: slim`+tt.rng+loc[1]+`}`)
					if len(errs) > 0 {
						t.Fatal(errs.Error())
					}
					src, _ := ctor(op.Resources{BatchRows: 50})
					out := &collect{schema: schema}
					if err := src.(op.Source).Run(context.Background(), out); err != nil {
						t.Fatal(err)
					}
					if int64(len(out.offs)) != tt.n {
						t.Fatalf("%d rows, want %d", len(out.offs), tt.n)
					}
					for i, o := range out.offs {
						if o != tt.first+int64(i) {
							t.Fatalf("row %d is offset %d, want %d", i, o, tt.first+int64(i))
						}
					}
					if tt.n > 0 && out.cols != 2 {
						t.Fatalf("%d columns read, want the 2 of the schema", out.cols)
					}
				})
			}
			// Pruning: a one-hour plan lists one file.
			st, err := lakeio.Open(context.Background(), loc[0], lakeio.S3Options{Endpoint: strings.TrimSuffix(strings.TrimPrefix(loc[1], `, s3: {endpoint: "`), `", path_style: true}`), PathStyle: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			from, _ := ParseTime("2026-11-26T05:00:00Z")
			to, _ := ParseTime("2026-11-26T06:00:00Z")
			files, err := Plan(context.Background(), st, Config{From: from, To: to, Layouts: DefaultLayouts})
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 1 || !strings.HasPrefix(files[0].Key, "dt=2026-11-26/hour=05/") {
				t.Fatalf("plan %v", files)
			}
		})
	}
}

func TestReadSkipsUploadsInProgress(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lake")
	writeLake(t, dir, "", 6)
	st, _ := lakeio.Open(context.Background(), dir, lakeio.S3Options{})
	up, err := st.Create(context.Background(), "dt=2026-11-25/hour=00/")
	if err != nil {
		t.Fatal(err)
	}
	up.Write([]byte("PAR1 partial"))
	defer up.Abort()
	schema, ctor, errs := prep(t, `{path: "`+dir+`", schema: slim}`)
	if len(errs) > 0 {
		t.Fatal(errs.Error())
	}
	src, _ := ctor(op.Resources{})
	out := &collect{schema: schema}
	if err := src.(op.Source).Run(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	if len(out.offs) != 6 {
		t.Fatalf("%d rows", len(out.offs))
	}
}

// TestProgressLine: a read logs files, rows and bytes of the total.
func TestProgressLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lake")
	writeLake(t, dir, "", 3*6) // three hour folders
	schema, ctor, errs := prep(t, `{path: "`+dir+`", schema: slim, progress_every: 1ns}`)
	if len(errs) > 0 {
		t.Fatal(errs.Error())
	}
	var buf bytes.Buffer
	src, _ := ctor(op.Resources{Node: "posts", Log: slog.New(slog.NewTextHandler(&buf, nil))})
	if err := src.(op.Source).Run(context.Background(), &collect{schema: schema}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("progress lines:\n%s", buf.String())
	}
	last := lines[len(lines)-1]
	for _, want := range []string{"lake read progress", "node=posts", "files=3/3", "rows=18", "bytes="} {
		if !strings.Contains(last, want) {
			t.Fatalf("last progress line %q lacks %q", last, want)
		}
	}
	if !strings.Contains(lines[0], "files=1/3") {
		t.Fatalf("first progress line %q", lines[0])
	}
}

// TestNullTimeFolders: rows whose time is null (folder
// __HIVE_DEFAULT_PARTITION__) are read by an unbounded read only.
func TestNullTimeFolders(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lake")
	writeLake(t, dir, "", 6)
	st, _ := lakeio.Open(context.Background(), dir, lakeio.S3Options{})
	if err := lakeio.WriteAll(context.Background(), st, "dt=__HIVE_DEFAULT_PARTITION__/hour=__HIVE_DEFAULT_PARTITION__/x.parquet", mustCopy(t, dir)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rng  string
		rows int
	}{{``, 12}, {`, from: "2026-11-25"`, 6}, {`, to: "2026-11-26"`, 6}} {
		schema, ctor, errs := prep(t, `{path: "`+dir+`", schema: slim`+tt.rng+`}`)
		if len(errs) > 0 {
			t.Fatal(errs.Error())
		}
		src, _ := ctor(op.Resources{})
		out := &collect{schema: schema}
		if err := src.(op.Source).Run(context.Background(), out); err != nil {
			t.Fatal(err)
		}
		if len(out.offs) != tt.rows {
			t.Errorf("range %q: %d rows, want %d", tt.rng, len(out.offs), tt.rows)
		}
	}
}

// mustCopy returns the bytes of the lake's first data file.
func mustCopy(t *testing.T, dir string) []byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "dt=*", "hour=*", "*.parquet"))
	if len(files) == 0 {
		t.Fatal("no file")
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestShardsPartitionTheRead: for several N, the N shards of a read are
// disjoint and their union is the unsharded read, row for row.
func TestShardsPartitionTheRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lake")
	writeLake(t, path, "", 3*144) // 72 hour files
	read := func(sh op.Shard) []int64 {
		schema, ctor, errs := prep(t, `{path: "`+path+`", schema: slim, from: "2026-11-25", to: "2026-11-28"}`)
		if len(errs) > 0 {
			t.Fatal(errs.Error())
		}
		src, _ := ctor(op.Resources{BatchRows: 50, Shard: sh})
		out := &collect{schema: schema}
		if err := src.(op.Source).Run(context.Background(), out); err != nil {
			t.Fatal(err)
		}
		return out.offs
	}
	all := read(op.Shard{})
	if len(all) != 3*144 {
		t.Fatalf("unsharded read %d rows, want %d", len(all), 3*144)
	}
	for _, n := range []int{1, 2, 3, 4, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			seen := map[int64]int{}
			for i := 1; i <= n; i++ {
				offs := read(op.Shard{Index: i, Count: n})
				if n > 1 && (len(offs) == 0 || len(offs) == len(all)) {
					t.Errorf("shard %d/%d read %d of %d rows: not a share", i, n, len(offs), len(all))
				}
				for _, o := range offs {
					if prev, dup := seen[o]; dup {
						t.Fatalf("row %d read by shard %d/%d and by shard %d/%d", o, prev, n, i, n)
					}
					seen[o] = i
				}
			}
			if len(seen) != len(all) {
				t.Fatalf("shards read %d distinct rows, unsharded %d", len(seen), len(all))
			}
			for _, o := range all {
				if _, ok := seen[o]; !ok {
					t.Fatalf("row %d read by no shard", o)
				}
			}
		})
	}
}

// TestShardNoneReadsEverything: with shard: none a sharded run reads every
// file (the pipeline splits its rows by key itself), and the source tells
// validation that only shard: files splits the input.
func TestShardNoneReadsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lake")
	writeLake(t, path, "", 144) // 24 hour files
	for _, tt := range []struct {
		shard string
		rows  func(int) bool
		split bool
	}{
		{"", func(n int) bool { return n > 0 && n < 144 }, true},
		{", shard: files", func(n int) bool { return n > 0 && n < 144 }, true},
		{", shard: none", func(n int) bool { return n == 144 }, false},
	} {
		cfg := `{path: "` + path + `", schema: slim` + tt.shard + `}`
		schema, ctor, errs := prep(t, cfg)
		if len(errs) > 0 {
			t.Fatal(errs.Error())
		}
		src, _ := ctor(op.Resources{BatchRows: 50, Shard: op.Shard{Index: 2, Count: 3}})
		out := &collect{schema: schema}
		if err := src.(op.Source).Run(context.Background(), out); err != nil {
			t.Fatal(err)
		}
		if !tt.rows(len(out.offs)) {
			t.Errorf("%s: shard 2/3 read %d of 144 rows", cfg, len(out.offs))
		}
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(cfg), &doc); err != nil {
			t.Fatal(err)
		}
		v := spec.Decode(source.NewFile("p.yaml", []byte(cfg)), doc.Content[0], Plugin.Spec.Config, &errs)
		if got := Plugin.SourceFlow(v, false).SplitByShard; got != tt.split {
			t.Errorf("%s: SplitByShard %v, want %v", cfg, got, tt.split)
		}
	}
}
