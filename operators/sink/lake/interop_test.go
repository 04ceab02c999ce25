package lake

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/runtime/batch"
)

// writeInteropLake writes 1,000 rows of every column kind to a lake at
// path (extra: more sink settings), partitioned by day and hour of "at":
// off 0..999, name null for every tenth, at 15 s apart from 13:00.
func writeInteropLake(t *testing.T, path, extra string) {
	t.Helper()
	wide := arrow.NewSchema([]arrow.Field{
		{Name: "off", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "at", Type: types.Timestamp, Nullable: true},
	}, nil)
	ctor, errs := prepWith(t, `{path: "`+path+`", partition_by: {dt: 'at.Format("2006-01-02")', hour: 'at.Format("15")'}, file_rows: 100`+extra+`}`, wide)
	if len(errs) > 0 {
		t.Fatal(errs.Error())
	}
	s, err := ctor(opResources())
	if err != nil {
		t.Fatal(err)
	}
	sink := s.(*Sink)
	const n = 1000
	b := array.NewRecordBuilder(memory.DefaultAllocator, wide)
	for o := 0; o < n; o++ {
		b.Field(0).(*array.Int64Builder).Append(int64(o))
		if o%10 == 3 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("post %d", o))
		}
		b.Field(2).(*array.Float64Builder).Append(float64(o) / 4)
		b.Field(3).(*array.BooleanBuilder).Append(o%2 == 0)
		lb := b.Field(4).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.StringBuilder).Append("t" + fmt.Sprint(o%3))
		lb.ValueBuilder().(*array.StringBuilder).Append("x")
		ts, _ := arrow.TimestampFromTime(base.Add(time.Duration(o)*time.Minute/4), arrow.Microsecond)
		b.Field(5).(*array.TimestampBuilder).Append(ts)
	}
	rec := b.NewRecordBatch()
	b.Release()
	ack := batch.NewAck(nil).WithPositions(batch.Position{Topic: "pins", Partition: 0, First: 0, Last: n - 1})
	if err := sink.Write(context.Background(), batch.Batch{Rec: rec, Ack: ack}); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

}

// readerLines runs another engine's reader and returns its output lines
// (and the whole output); a failing reader fails the test with its stderr.
func readerLines(t *testing.T, name string, cmd *exec.Cmd) ([]string, []byte) {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s", name, err, msg)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n"), out
}

// TestDuckDBReadsTheLake writes a lake with the sink and reads it back with
// DuckDB (an independent Parquet reader, from PyPI via scripts/duckdb.sh),
// checking row counts, the column types DuckDB sees, the Hive partition
// columns and the values of one row.
func TestDuckDBReadsTheLake(t *testing.T) {
	testenv.Tool(t, "python3", "apt-get install -y python3 python3-venv")
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "..", "..", "scripts", "duckdb.sh")
	dir := filepath.Join(t.TempDir(), "lake")
	writeInteropLake(t, dir, "")

	from := fmt.Sprintf("read_parquet('%s/**/*.parquet', hive_partitioning=true)", dir)
	queries := []string{
		"SELECT count(*), count(DISTINCT hour), sum(off), count(name), min(\"at\")::VARCHAR, max(\"at\")::VARCHAR FROM " + from,
		"SELECT string_agg(column_name || ' ' || column_type, ', ') FROM (DESCRIBE SELECT * FROM " + from + ")",
		"SELECT off, name, score, ok, tags, dt, hour FROM " + from + " WHERE off = 7",
		"SELECT count(*) FROM " + from + " WHERE hour = '14'",
	}
	lines, out := readerLines(t, "duckdb", exec.Command("bash", append([]string{script}, queries...)...))
	want := []string{
		`[1000, 5, 499500, 900, "2026-11-25 13:00:00+00", "2026-11-25 17:09:45+00"]`,
		`["off BIGINT, name VARCHAR, score DOUBLE, ok BOOLEAN, tags VARCHAR[], at TIMESTAMP WITH TIME ZONE, dt DATE, hour BIGINT"]`,
		`[7, "post 7", 1.75, false, ["t1", "x"], "2026-11-25", 13]`,
		`[240]`,
	}
	if len(lines) != len(want) {
		t.Fatalf("duckdb printed:\n%s", out)
	}
	for i := range want {
		var g, w any
		if json.Unmarshal([]byte(lines[i]), &g) != nil || json.Unmarshal([]byte(want[i]), &w) != nil || fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("query %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
}

// TestPyArrowReadsTheLakeOnS3 writes the same lake to the S3 server
// (SeaweedFS) and reads it back with pyarrow's S3 client and dataset reader
// (scripts/pyarrow.sh): what an engine reading the bucket sees — row
// counts, types, the Hive partition columns, one row's values — and that
// the commit records beside the data files are not read as data.
func TestPyArrowReadsTheLakeOnS3(t *testing.T) {
	testenv.Tool(t, "python3", "apt-get install -y python3 python3-venv")
	ep := testenv.S3(t)
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "..", "..", "scripts", "pyarrow.sh")
	bucket := testBucket(t, ep)
	prefix := fmt.Sprintf("interop%d", time.Now().UnixNano())
	writeInteropLake(t, "s3://"+bucket+"/"+prefix, `, s3: {endpoint: "`+ep+`", path_style: true}`)

	const program = `
import json, sys
import pyarrow.compute as pc, pyarrow.dataset as ds, pyarrow.fs as fs
ep, root = sys.argv[1], sys.argv[2]
scheme, host = ep.split("://", 1)
s3 = fs.S3FileSystem(endpoint_override=host, scheme=scheme, anonymous=True, region="us-east-1")
files = [f.path for f in s3.get_file_info(fs.FileSelector(root, recursive=True)) if f.type == fs.FileType.File]
data = ds.dataset(root, filesystem=s3, format="parquet", partitioning="hive")
t = data.to_table()
print(json.dumps([t.num_rows, len(set(t.column("hour").to_pylist())), pc.sum(t.column("off")).as_py(),
                  t.num_rows - t.column("name").null_count, str(pc.min(t.column("at")).as_py()), str(pc.max(t.column("at")).as_py())]))
print(json.dumps([f.name + " " + str(f.type) for f in t.schema]))
row = t.filter(pc.equal(t.column("off"), 7)).to_pylist()[0]
print(json.dumps([row["off"], row["name"], row["score"], row["ok"], row["tags"], str(row["dt"]), row["hour"]]))
print(json.dumps([t.filter(pc.equal(t.column("hour"), 14)).num_rows]))
print(json.dumps([len([f for f in files if f.endswith(".parquet") and "/_" not in f and "/." not in f]), len(files)]))
`
	lines, out := readerLines(t, "pyarrow", exec.Command("bash", script, "-c", program, ep, bucket+"/"+prefix))
	want := []string{
		`[1000, 5, 499500, 900, "2026-11-25 13:00:00+00:00", "2026-11-25 17:09:45+00:00"]`,
		`["off int64", "name string", "score double", "ok bool", "tags list<element: string>", "at timestamp[us, tz=UTC]", "dt string", "hour int32"]`,
		`[7, "post 7", 1.75, false, ["t1", "x"], "2026-11-25", 13]`,
		`[240]`,
	}
	if len(lines) != len(want)+1 {
		t.Fatalf("pyarrow printed:\n%s", out)
	}
	for i := range want {
		var g, w any
		if json.Unmarshal([]byte(lines[i]), &g) != nil || json.Unmarshal([]byte(want[i]), &w) != nil || fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
	// One batch of one source range: one data file per hour folder; the
	// other objects are the sink's commit records under _flowrun/, which
	// the reader skipped (it would fail on JSON read as Parquet).
	var counts []int
	if json.Unmarshal([]byte(lines[len(want)]), &counts) != nil || len(counts) != 2 || counts[0] != 5 || counts[1] <= 5 {
		t.Errorf("files on the bucket: %s", lines[len(want)])
	}
}
