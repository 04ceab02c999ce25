package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
	"github.com/flowrun/flowrun/runtime/batch"
)

// The benchmarks load the same cleaned Pinterest rows, already in memory,
// into a keyed table of deploy/postgres/pinterest.sql's shape, four ways:
//
//	BenchmarkRawCopy        pgx CopyFrom of [][]any rows: the limit for append
//	BenchmarkSinkAppend     the sink, mode append, from Arrow batches
//	BenchmarkRawCopyMerge   pgx COPY into a temp table + INSERT … ON CONFLICT DO UPDATE: the limit for upsert
//	BenchmarkSinkUpsert     the sink, mode upsert, batches carrying Kafka positions (exactly-once offsets in each transaction)
//
// Each op writes benchRows rows into an emptied table and reports rows/s.
// Run against a real server:
//
//	go test ./operators/sink/postgres -run '^$' -bench . -benchtime 5x
//
// Numbers are recorded in bench/POSTGRES.md.

const benchRows = 100_000

var pinSchema = arrow.NewSchema([]arrow.Field{
	{Name: "ind", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "unique_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "title", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "description", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "poster_name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "follower_count", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "tag_list", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "is_image_or_video", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "image_src", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "downloaded", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "save_location", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ingested_at", Type: types.Timestamp, Nullable: true},
}, nil)

const pinTable = `(
    unique_id uuid primary key, ind bigint, title text, description text, poster_name text,
    follower_count bigint, tag_list text[], is_image_or_video text, image_src text,
    downloaded boolean, save_location text, category text not null, ingested_at timestamptz)`

// benchData is benchRows cleaned posts with distinct ids, as Arrow batches
// of 1024 rows and as [][]any rows.
type benchData struct {
	recs []arrow.RecordBatch
	rows [][]any
}

func makeBenchData(b *testing.B) *benchData {
	b.Helper()
	gen := posts.New(7)
	var p posts.Post
	d := &benchData{}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, pinSchema)
	defer rb.Release()
	seen := map[string]bool{}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	str := func(i int, s string) {
		if s == "" || strings.HasPrefix(s, "No ") || s == "User Info Error" || s == "null" {
			rb.Field(i).AppendNull()
			return
		}
		rb.Field(i).(*array.StringBuilder).Append(s)
	}
	for len(d.rows) < benchRows {
		gen.Next(&p)
		if p.MissingUniqueID || p.MissingCategory || seen[p.UniqueID] {
			continue
		}
		seen[p.UniqueID] = true
		fc, _ := strconv.ParseInt(strings.TrimRight(p.FollowerCount, "kM"), 10, 64)
		tags := strings.Split(p.TagList, ",")
		ts := at.Add(time.Duration(len(d.rows)) * time.Millisecond)
		loc := strings.TrimPrefix(p.SaveLocation, posts.SaveLocationPrefix)
		rb.Field(0).(*array.Int64Builder).Append(p.Index)
		rb.Field(1).(*array.StringBuilder).Append(p.UniqueID)
		str(2, p.Title)
		str(3, p.Description)
		str(4, p.PosterName)
		rb.Field(5).(*array.Int64Builder).Append(fc)
		lb := rb.Field(6).(*array.ListBuilder)
		lb.Append(true)
		for _, tg := range tags {
			lb.ValueBuilder().(*array.StringBuilder).Append(tg)
		}
		str(7, p.IsImageOrVideo)
		str(8, p.ImageSrc)
		rb.Field(9).(*array.BooleanBuilder).Append(p.Downloaded == 1)
		rb.Field(10).(*array.StringBuilder).Append(loc)
		rb.Field(11).(*array.StringBuilder).Append(p.Category)
		rb.Field(12).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
		row := []any{p.Index, p.UniqueID, nullStr(p.Title), nullStr(p.Description), nullStr(p.PosterName), fc, tags,
			nullStr(p.IsImageOrVideo), nullStr(p.ImageSrc), p.Downloaded == 1, loc, p.Category, ts}
		d.rows = append(d.rows, row)
		if len(d.rows)%1024 == 0 || len(d.rows) == benchRows {
			d.recs = append(d.recs, rb.NewRecordBatch())
		}
	}
	b.Cleanup(func() {
		for _, r := range d.recs {
			r.Release()
		}
	})
	return d
}

func nullStr(s string) any {
	if s == "" || strings.HasPrefix(s, "No ") || s == "User Info Error" || s == "null" {
		return nil
	}
	return s
}

func benchDB(b *testing.B) (*db, *benchData) {
	b.Helper()
	return newDB(b), makeBenchData(b)
}

func reportRows(b *testing.B, elapsed time.Duration) {
	b.ReportMetric(float64(benchRows)*float64(b.N)/elapsed.Seconds(), "rows/s")
}

func BenchmarkRawCopy(b *testing.B) {
	d, data := benchDB(b)
	d.exec("create table $S.pins " + pinTable)
	ctx := context.Background()
	cols := pinSchema.Fields()
	names := make([]string, len(cols))
	for i, f := range cols {
		names[i] = f.Name
	}
	b.ReportAllocs()
	var busy time.Duration
	for b.Loop() {
		d.exec("truncate $S.pins")
		t0 := time.Now()
		if _, err := d.conn.CopyFrom(ctx, pgx.Identifier{d.schema, "pins"}, names, pgx.CopyFromRows(data.rows)); err != nil {
			b.Fatal(err)
		}
		busy += time.Since(t0)
	}
	reportRows(b, busy)
}

func BenchmarkRawCopyMerge(b *testing.B) {
	for _, conns := range []int{1, 2} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			d, data := benchDB(b)
			d.exec("create table $S.pins " + pinTable)
			ctx := context.Background()
			names := make([]string, pinSchema.NumFields())
			for i, f := range pinSchema.Fields() {
				names[i] = f.Name
			}
			pool, err := pgxpool.New(ctx, d.url)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			set := []string{}
			for _, n := range names[2:] {
				set = append(set, n+" = excluded."+n)
			}
			set = append(set, "ind = excluded.ind")
			merge := fmt.Sprintf("insert into %s (%s) select %s from stage on conflict (unique_id) do update set %s",
				pgx.Identifier{d.schema, "pins"}.Sanitize(), strings.Join(names, ", "), strings.Join(names, ", "), strings.Join(set, ", "))
			const txnRows = 20_000
			b.ReportAllocs()
			var busy time.Duration
			for b.Loop() {
				d.exec("truncate $S.pins")
				t0 := time.Now()
				errs := make(chan error, conns)
				for c := range conns {
					go func() {
						errs <- func() error {
							conn, err := pool.Acquire(ctx)
							if err != nil {
								return err
							}
							defer conn.Release()
							if _, err := conn.Exec(ctx, "create temp table if not exists stage on commit delete rows as select "+strings.Join(names, ", ")+" from "+pgx.Identifier{d.schema, "pins"}.Sanitize()+" with no data"); err != nil {
								return err
							}
							for from := c * txnRows; from < benchRows; from += conns * txnRows {
								tx, err := conn.Begin(ctx)
								if err != nil {
									return err
								}
								if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stage"}, names, pgx.CopyFromRows(data.rows[from:min(from+txnRows, benchRows)])); err != nil {
									return err
								}
								if _, err := tx.Exec(ctx, merge); err != nil {
									return err
								}
								if err := tx.Commit(ctx); err != nil {
									return err
								}
							}
							return nil
						}()
					}()
				}
				for range conns {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
				busy += time.Since(t0)
			}
			reportRows(b, busy)
		})
	}
}

func benchSink(b *testing.B, cfg string, positions bool) {
	d, data := benchDB(b)
	d.exec("create table $S.pins " + pinTable)
	b.ReportAllocs()
	var busy time.Duration
	for i := 0; b.Loop(); i++ {
		d.exec("truncate $S.pins")
		d.exec("drop table if exists $S.flowrun_offsets")
		s, err := d.open(cfg, pinSchema, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		t0 := time.Now()
		for j, rec := range data.recs {
			rec.Retain()
			var ack *batch.Ack
			if positions {
				// Four partitions, as from a Kafka source.
				part := int32(j % 4)
				off := int64(j/4) * 1024
				ack = batch.NewAck(nil).WithPositions(batch.Position{Source: "posts", Topic: "pinterest.posts", Partition: part, First: off, Last: off + rec.NumRows() - 1})
			}
			if err := s.Write(ctx, batch.Batch{Rec: rec, Ack: ack, Final: true}); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		busy += time.Since(t0)
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, busy)
}

func BenchmarkSinkAppend(b *testing.B) {
	benchSink(b, `{table: $S.pins, flush_interval: 1h, pool_size: 1}`, false)
}

func BenchmarkSinkUpsert(b *testing.B) {
	for _, pool := range []int{1, 2} {
		b.Run(fmt.Sprintf("pool=%d", pool), func(b *testing.B) {
			benchSink(b, fmt.Sprintf(`{table: $S.pins, key: [unique_id], keep: [ingested_at], flush_interval: 1h, pool_size: %d}`, pool), true)
		})
	}
}
