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

// TestDuckDBReadsTheLake writes a lake with the sink and reads it back with
// DuckDB (an independent Parquet reader, from PyPI via scripts/duckdb.sh),
// checking row counts, the column types DuckDB sees, the Hive partition
// columns and the values of one row.
func TestDuckDBReadsTheLake(t *testing.T) {
	testenv.Tool(t, "python3", "apt-get install -y python3 python3-venv")
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "..", "..", "scripts", "duckdb.sh")

	wide := arrow.NewSchema([]arrow.Field{
		{Name: "off", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "at", Type: types.Timestamp, Nullable: true},
	}, nil)
	dir := filepath.Join(t.TempDir(), "lake")
	ctor, errs := prepWith(t, `{path: "`+dir+`", partition_by: {dt: 'at.Format("2006-01-02")', hour: 'at.Format("15")'}, file_rows: 100}`, wide)
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

	from := fmt.Sprintf("read_parquet('%s/**/*.parquet', hive_partitioning=true)", dir)
	queries := []string{
		"SELECT count(*), count(DISTINCT hour), sum(off), count(name), min(\"at\")::VARCHAR, max(\"at\")::VARCHAR FROM " + from,
		"SELECT string_agg(column_name || ' ' || column_type, ', ') FROM (DESCRIBE SELECT * FROM " + from + ")",
		"SELECT off, name, score, ok, tags, dt, hour FROM " + from + " WHERE off = 7",
		"SELECT count(*) FROM " + from + " WHERE hour = '14'",
	}
	out, err := exec.Command("bash", append([]string{script}, queries...)...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("duckdb: %v\n%s", err, msg)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
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
