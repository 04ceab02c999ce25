package postgres

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	neturl "net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/internal/cutproxy"
	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/codec/jsondec"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/op/optest"
)

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "at", Type: types.Timestamp, Nullable: true},
	{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
}, nil)

// prep decodes a config and runs Prepare against in.
func prep(t testing.TB, text string, in *arrow.Schema) (op.Constructor, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	f := source.NewFile("p.yaml", []byte(text))
	var errs source.Errors
	v := spec.Decode(f, doc.Content[0], Plugin.Spec.Config, &errs)
	out, ctor := Plugin.Prepare(&validate.Check{Config: v, Errs: &errs, Inputs: []validate.Input{{Name: "in", Schema: in}},
		Pipeline: &ast.Pipeline{Name: "test"}, Node: &ast.Node{Name: "sink"}})
	if out != nil {
		t.Fatal("a sink has no output schema")
	}
	return ctor, errs
}

func TestPrepare(t *testing.T) {
	odd := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64})},
	}, nil)
	tests := []struct {
		name, cfg string
		in        *arrow.Schema
		err       string
	}{
		{"append", `{table: pins}`, schema, ""},
		{"upsert", `{table: s.pins, key: [id], keep: [at]}`, schema, ""},
		{"ignore", `{table: pins, key: [id, n], on_conflict: ignore}`, schema, ""},
		{"no table", `{url: "postgres://localhost/x"}`, schema, "missing required key 'table'"},
		{"bad table", `{table: a.b.c}`, schema, `'table': "a.b.c": want table or schema.table`},
		{"upsert without key", `{table: t, mode: upsert}`, schema, "mode upsert needs 'key'"},
		{"append with key", `{table: t, mode: append, key: [id]}`, schema, "'key' is for mode upsert"},
		{"keep without key", `{table: t, keep: [at]}`, schema, "'keep' is for mode upsert"},
		{"keep a key", `{table: t, key: [id], keep: [id]}`, schema, `'keep' column "id" is a key column`},
		{"unknown key", `{table: t, key: [uid]}`, schema, `'key' names column "uid", which the node's input does not have (columns: id, n, x, ok, at, tags)`},
		{"unmappable", `{table: t}`, odd, `postgres sink cannot write column "s" of type struct<a: int64>`},
		{"pool", `{table: t, pool_size: 0}`, schema, "'pool_size' must be at least 1"},
		{"bad url", `{table: t, url: "postgres://u:sekret@h:notaport/db"}`, schema, "postgres sink: bad 'url'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctor, errs := prep(t, tt.cfg, tt.in)
			if tt.err == "" {
				if len(errs) > 0 || ctor == nil {
					t.Fatalf("unexpected errors %v", errs)
				}
				return
			}
			if !strings.Contains(errs.Error(), tt.err) {
				t.Fatalf("errors = %q, want %q", errs.Error(), tt.err)
			}
			if strings.Contains(errs.Error(), "sekret") {
				t.Fatalf("password in error: %s", errs.Error())
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, conn, want string }{
		{"connect postgres://u:pw1@h:5432/d failed", "postgres://u:pw1@h:5432/d", "connect postgres://u:xxxxx@h:5432/d failed"},
		{"x postgresql://user:p%40ss@h/db y", "", "x postgresql://user:xxxxx@h/db y"},
		{"host=h password=secret user=u", "", "host=h password=xxxxx user=u"},
		{"host=h password='se cret' user=u", "", "host=h password=xxxxx user=u"},
		{"no secrets here", "postgres://h/d", "no secrets here"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in, tt.conn); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := RedactURL("postgres://u:pw@h/d?sslmode=disable"); got != "postgres://u:xxxxx@h/d?sslmode=disable" {
		t.Errorf("RedactURL = %q", got)
	}
}

func TestParseUUID(t *testing.T) {
	for s, ok := range map[string]bool{
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11":   true,
		"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11":   true,
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}": true,
		"a0eebc999c0b4ef8bb6d6bb9bd380a11":       true,
		"not-a-uuid":                             false,
		"":                                       false,
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1":    false,
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111":  false,
		"-a0eebc999c0b4ef8bb6d6bb9bd380a11":      false,
	} {
		if _, got := parseUUID(s); got != ok {
			t.Errorf("parseUUID(%q) ok = %v, want %v", s, got, ok)
		}
	}
}

// ---- against a real PostgreSQL ----

// db is one test's schema in the shared database.
type db struct {
	log    *slog.Logger // nil: none
	t      testing.TB
	url    string
	schema string
	conn   *pgx.Conn
}

func newDB(t testing.TB) *db {
	t.Helper()
	url := testenv.Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t_%s_%d", strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())), rand.IntN(1_000_000))
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	if _, err := conn.Exec(ctx, "create schema "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "drop schema "+pgx.Identifier{name}.Sanitize()+" cascade")
		_ = conn.Close(context.Background())
	})
	return &db{t: t, url: url, schema: name, conn: conn}
}

func (d *db) exec(sql string) {
	d.t.Helper()
	if _, err := d.conn.Exec(context.Background(), strings.ReplaceAll(sql, "$S.", pgx.Identifier{d.schema}.Sanitize()+".")); err != nil {
		d.t.Fatalf("%s: %v", sql, err)
	}
}

// strings runs a query returning one text column per row.
func (d *db) strings(sql string) []string {
	d.t.Helper()
	rows, err := d.conn.Query(context.Background(), strings.ReplaceAll(sql, "$S.", pgx.Identifier{d.schema}.Sanitize()+"."))
	if err != nil {
		d.t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		d.t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// open builds a sink over the test's schema: cfg is the YAML mapping
// without url; $S. in it names the test schema.
func (d *db) open(cfg string, in *arrow.Schema, dl op.DeadLetters) (*Sink, error) {
	d.t.Helper()
	cfg = strings.ReplaceAll(cfg, "$S.", d.schema+".")
	cfg = strings.TrimSuffix(strings.TrimSpace(cfg), "}") + fmt.Sprintf(", url: %q}", d.url)
	ctor, errs := prep(d.t, cfg, in)
	if len(errs) > 0 {
		d.t.Fatal(errs.Error())
	}
	s, err := ctor(op.Resources{Node: "sink", Alloc: memory.DefaultAllocator, DeadLetters: dl, Log: d.log})
	if err != nil {
		return nil, err
	}
	sk, ok := s.(*Sink)
	if !ok {
		sk = s.(StoreSink).Sink
	}
	d.t.Cleanup(func() { _ = sk.Close(context.Background()) })
	return sk, nil
}

func (d *db) mustOpen(cfg string, in *arrow.Schema, dl op.DeadLetters) *Sink {
	d.t.Helper()
	s, err := d.open(cfg, in, dl)
	if err != nil {
		d.t.Fatal(err)
	}
	return s
}

func records(t *testing.T, mem memory.Allocator, in *arrow.Schema, lines ...string) arrow.RecordBatch {
	t.Helper()
	dec := jsondec.NewDecoder(in, mem, jsondec.Options{})
	defer dec.Release()
	for _, l := range lines {
		if err := dec.Append([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	return dec.Flush()
}

func write(t *testing.T, s *Sink, a *acks, rec arrow.RecordBatch) {
	t.Helper()
	if err := s.Write(context.Background(), batch.Batch{Rec: rec, Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
}

func TestAppendCreate(t *testing.T) {
	d := newDB(t)
	mem := optest.Allocator(t)
	s := d.mustOpen(`{table: $S.pins, create: true}`, schema, nil)
	var a acks
	write(t, s, &a, records(t, mem, schema,
		`{"id":"a","n":1,"x":1.5,"ok":true,"at":"2024-01-02T03:04:05.123456Z","tags":["x","y"]}`,
		`{"id":null,"n":null,"x":null,"ok":null,"at":null,"tags":null}`))
	write(t, s, &a, records(t, mem, schema, `{"id":"a","n":2,"tags":[]}`, `{"id":"é ✓","n":-9007199254740993}`))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, errs := a.Get(); n != 2 || len(errs) > 0 {
		t.Fatalf("acks = %d %v, want 2 without errors", n, errs)
	}
	got := d.strings(`select concat_ws('|', coalesce(id,'NULL'), coalesce(n::text,'NULL'), coalesce(x::text,'NULL'), coalesce(ok::text,'NULL'),
		coalesce(to_char(at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),'NULL'), coalesce(tags::text,'NULL')) from $S.pins order by n nulls last`)
	want := []string{
		"é ✓|-9007199254740993|NULL|NULL|NULL|NULL",
		"a|1|1.5|true|2024-01-02 03:04:05.123456|{x,y}",
		"a|2|NULL|NULL|NULL|{}",
		"NULL|NULL|NULL|NULL|NULL|NULL",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	types := d.strings(`select column_name || ' ' || data_type from information_schema.columns where table_schema = '` + d.schema + `' and table_name = 'pins' order by ordinal_position`)
	if strings.Join(types, ", ") != "id text, n bigint, x double precision, ok boolean, at timestamp with time zone, tags ARRAY" {
		t.Fatalf("created columns: %s", strings.Join(types, ", "))
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal("second close:", err)
	}
}

func TestUpsert(t *testing.T) {
	d := newDB(t)
	mem := optest.Allocator(t)
	s := d.mustOpen(`{table: $S.pins, key: [id], keep: [at], create: true, rows_per_transaction: 100000, flush_interval: 1h}`, schema, nil)
	var a acks
	// The same key twice in one batch and again in the next batch of the
	// same transaction: the last one wins, at keeps the first value.
	write(t, s, &a, records(t, mem, schema,
		`{"id":"a","n":1,"at":"2024-01-01T00:00:00Z"}`,
		`{"id":"b","n":1,"at":"2024-01-01T00:00:00Z"}`,
		`{"id":"a","n":2,"at":"2024-01-02T00:00:00Z"}`))
	write(t, s, &a, records(t, mem, schema, `{"id":"a","n":3,"at":"2024-01-03T00:00:00Z"}`))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A later transaction updates a, keeping its first at.
	write(t, s, &a, records(t, mem, schema, `{"id":"a","n":4,"x":0.5,"at":"2024-01-04T00:00:00Z"}`, `{"id":"c","n":1}`))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := d.strings(`select id || ' ' || n || ' ' || coalesce(x::text, '-') || ' ' || coalesce(to_char(at at time zone 'UTC', 'MM-DD'), '-') from $S.pins order by id`)
	want := "a 4 0.5 01-01|b 1 - 01-01|c 1 - -"
	if strings.Join(got, "|") != want {
		t.Fatalf("rows %q, want %q", strings.Join(got, "|"), want)
	}
	if n, errs := a.Get(); n != 3 || len(errs) > 0 {
		t.Fatalf("acks = %d %v", n, errs)
	}

	// on_conflict: ignore keeps the first row.
	s2 := d.mustOpen(`{table: $S.pins, key: [id], on_conflict: ignore}`, schema, nil)
	write(t, s2, &a, records(t, mem, schema, `{"id":"a","n":99}`, `{"id":"d","n":7}`, `{"id":"d","n":8}`))
	if err := s2.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = d.strings(`select id || ' ' || n from $S.pins order by id`)
	if strings.Join(got, "|") != "a 4|b 1|c 1|d 8" {
		t.Fatalf("after ignore: %q", strings.Join(got, "|"))
	}
}

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestExistingTable checks the start-up check of existing tables; the
// messages are compared verbatim with testdata/table_check.golden (the
// test's schema name shown as S).
func TestExistingTable(t *testing.T) {
	d := newDB(t)
	d.exec(`create table $S.ok (id text primary key, n bigint, x numeric, ok boolean, at timestamp, tags varchar[], extra text default 'e')`)
	d.exec(`create table $S.bad (id integer, n text, x double precision, ok boolean, at timestamptz, must text not null)`)
	d.exec(`create table $S.nokey (id text, n bigint, x float8, ok bool, at timestamptz, tags text[])`)
	if _, err := d.open(`{table: $S.ok, key: [id]}`, schema, nil); err != nil {
		t.Fatalf("compatible table refused: %v", err)
	}
	var got strings.Builder
	for _, cfg := range []string{`{table: $S.bad}`, `{table: $S.nokey, key: [id]}`, `{table: $S.missing, key: [id]}`} {
		_, err := d.open(cfg, schema, nil)
		if err == nil {
			t.Fatalf("%s accepted", cfg)
		}
		fmt.Fprintf(&got, "%s\n%s\n\n", strings.ReplaceAll(cfg, "$S.", "S."), strings.ReplaceAll(err.Error(), pgx.Identifier{d.schema}.Sanitize(), "S"))
	}
	const golden = "testdata/table_check.golden"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got.String() != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got.String(), want)
	}
}

func TestConnectErrorRedacted(t *testing.T) {
	u, err := neturl.Parse(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = neturl.UserPassword(u.User.Username(), "Sekret-77")
	bad := u.String()
	ctor, errs := prep(t, fmt.Sprintf(`{table: pins, url: %q}`, bad), schema)
	if len(errs) > 0 {
		t.Fatal(errs.Error())
	}
	_, err = ctor(op.Resources{Node: "sink"})
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if strings.Contains(err.Error(), "Sekret-77") || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("error: %v", err)
	}
	if !strings.Contains(err.Error(), "flowrun:xxxxx@") {
		t.Fatalf("error does not name the redacted URL: %v", err)
	}
}

var badSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "code", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

func TestBadRowsToDeadLetters(t *testing.T) {
	for _, mode := range []string{"append", "upsert"} {
		t.Run(mode, func(t *testing.T) {
			d := newDB(t)
			mem := optest.Allocator(t)
			d.exec(`create table $S.t (id uuid primary key, code varchar(3), n bigint check (n >= 0))`)
			cfg := `{table: $S.t}`
			if mode == "upsert" {
				cfg = `{table: $S.t, key: [id]}`
			}
			var dl optest.DeadLetters
			s := d.mustOpen(cfg, badSchema, &dl)
			var lines []string
			bad := map[int]string{
				3:   `{"id":"not-a-uuid","code":"a","n":1}`,
				10:  `{"id":"00000000-0000-0000-0000-00000000000a","code":"toolong","n":1}`,
				50:  `{"id":"00000000-0000-0000-0000-000000000032","code":"a","n":-1}`,
				51:  `{"id":null,"code":"a","n":1}`,
				199: `{"id":"00000000-0000-0000-0000-0000000000c7","code":"a\u0000b","n":1}`,
			}
			for i := range 200 {
				if l, ok := bad[i]; ok {
					lines = append(lines, l)
					continue
				}
				lines = append(lines, fmt.Sprintf(`{"id":"00000000-0000-0000-0000-%012x","code":"ok","n":%d}`, i, i))
			}
			var a acks
			write(t, s, &a, records(t, mem, badSchema, lines[:120]...))
			write(t, s, &a, records(t, mem, badSchema, lines[120:]...))
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n, errs := a.Get(); n != 2 || len(errs) > 0 {
				t.Fatalf("acks %d %v", n, errs)
			}
			if got := d.strings(`select count(*)::text from $S.t`); got[0] != "195" {
				t.Fatalf("rows stored = %s, want 195", got[0])
			}
			if len(dl.Records()) != 5 {
				t.Fatalf("dead letters = %d, want 5: %q", len(dl.Records()), dl.Reasons())
			}
			all := strings.Join(dl.Reasons(), "\n")
			for _, want := range []string{
				`invalid input syntax for type uuid: "not-a-uuid"`,
				`value too long for type character varying(3) (SQLSTATE 22001)`,
				`violates check constraint "t_n_check"`,
				`null value in column "id"`,
				`invalid byte sequence for encoding "UTF8": 0x00 (SQLSTATE 22021)`,
			} {
				if !strings.Contains(all, want) {
					t.Errorf("reasons lack %q:\n%s", want, all)
				}
			}
			if !strings.Contains(strings.Join(dl.Records(), "\n"), `"code":"toolong"`) {
				t.Errorf("records: %q", dl.Records())
			}
		})
	}
}

func TestBadRowWithoutDeadLetterFails(t *testing.T) {
	d := newDB(t)
	mem := optest.Allocator(t)
	d.exec(`create table $S.t (id uuid, code varchar(3), n bigint)`)
	s := d.mustOpen(`{table: $S.t}`, badSchema, nil)
	var a acks
	write(t, s, &a, records(t, mem, badSchema, `{"id":"00000000-0000-0000-0000-000000000001","code":"ok"}`, `{"id":"00000000-0000-0000-0000-000000000002","code":"long"}`))
	err := s.Flush(context.Background())
	if err == nil || !strings.Contains(err.Error(), "row rejected (postgres: value too long for type character varying(3)") ||
		!strings.Contains(err.Error(), "no dead_letter output") || !strings.Contains(err.Error(), `"code":"long"`) {
		t.Fatalf("flush error: %v", err)
	}
	if n, errs := a.Get(); n != 1 || len(errs) != 1 {
		t.Fatalf("acks %d %v, want the batch failed", n, errs)
	}
	if got := d.strings(`select count(*)::text from $S.t`); got[0] != "0" {
		t.Fatalf("rows stored = %s, want 0 (the transaction rolled back)", got[0])
	}
	if err := s.Write(context.Background(), batch.Batch{Rec: records(t, mem, badSchema, `{"code":"a"}`), Ack: a.New()}); err == nil {
		t.Fatal("write after failure accepted")
	}
}

// TestRetryAcrossOutage cuts the connection between the sink and the
// server (a proxy in the test) while batches are being written: the sink
// retries with back-off and every row lands once.
func TestRetryAcrossOutage(t *testing.T) {
	d := newDB(t)
	mem := optest.Allocator(t)
	px := newProxy(t, d.url)
	d2 := *d
	d2.url = px.url
	var logs syncBuf
	d2.log = slog.New(slog.NewTextHandler(&logs, nil))
	s := d2.mustOpen(`{table: $S.t, key: [id], create: true, retry_backoff: 20ms, flush_interval: 10ms}`, schema, nil)
	var a acks
	for i := range 40 {
		if i == 10 {
			px.cut()
			go func() { time.Sleep(700 * time.Millisecond); px.resume() }()
		}
		write(t, s, &a, records(t, mem, schema, fmt.Sprintf(`{"id":"k%d","n":%d}`, i, i), fmt.Sprintf(`{"id":"k%d","n":%d}`, i+100, i)))
		time.Sleep(30 * time.Millisecond)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, errs := a.Get(); n != 40 || len(errs) > 0 {
		t.Fatalf("acks %d %v", n, errs)
	}
	if got := d.strings(`select count(*)::text || ' ' || sum(n)::text from $S.t`); got[0] != "80 1560" {
		t.Fatalf("count, sum = %s, want 80 1560", got[0])
	}
	if px.cuts == 0 {
		t.Fatal("the proxy never cut a connection")
	}
	// The retries were logged, with the URL redacted.
	if out := logs.String(); !strings.Contains(out, "retrying") {
		t.Errorf("no retry logged:\n%s", out)
	} else if u, _ := url.Parse(d2.url); u != nil {
		if pw, ok := u.User.Password(); ok && strings.Contains(out, ":"+pw+"@") {
			t.Errorf("a password in the logs:\n%s", out)
		}
	}
}

// syncBuf is a buffer the sink's goroutines may log into.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proxy struct {
	*cutproxy.Proxy
	url  string
	cuts int64
}

func (p *proxy) cut()    { p.Cut() }
func (p *proxy) resume() { p.Resume(); p.cuts = p.Cuts.Load() }

// newProxy starts a cuttable proxy in front of the server of url and
// returns it with url rewritten to go through it.
func newProxy(t *testing.T, url string) *proxy {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cutproxy.Start(net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	u := strings.Replace(url, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), p.Addr, 1)
	if u == url {
		t.Fatalf("cannot route %s through the proxy", RedactURL(url))
	}
	return &proxy{Proxy: p, url: u}
}

// acks counts acknowledgements (optest.Acks) and makes acks with positions.
type acks struct{ optest.Acks }

// pos is an ack covering offsets [first, last] of partition part.
func (a *acks) pos(part int32, first, last int64) *batch.Ack {
	return a.New().WithPositions(batch.Position{Source: "src", Topic: "tp", Partition: part, First: first, Last: last})
}

func writeFinal(t *testing.T, s *Sink, rec arrow.RecordBatch, ack *batch.Ack, final bool) {
	t.Helper()
	if err := s.Write(context.Background(), batch.Batch{Rec: rec, Ack: ack, Final: final}); err != nil {
		t.Fatal(err)
	}
}

func idRows(t *testing.T, mem memory.Allocator, from, to int, tag string) arrow.RecordBatch {
	t.Helper()
	var lines []string
	for i := from; i < to; i++ {
		lines = append(lines, fmt.Sprintf(`{"id":"k%d","n":%d,"tags":[%q]}`, i, i, tag))
	}
	return records(t, mem, schema, lines...)
}

// TestExactlyOnce: rows and the offsets they cover commit together; a
// replay (the same offsets again, cut the same way or differently) adds
// nothing; Resume reports the next offsets; a marker stores positions.
func TestExactlyOnce(t *testing.T) {
	for _, mode := range []string{"append", "upsert"} {
		t.Run(mode, func(t *testing.T) {
			d := newDB(t)
			mem := optest.Allocator(t)
			cfg := `{table: $S.t, create: true, flush_interval: 1h}`
			if mode == "upsert" {
				cfg = `{table: $S.t, key: [id], create: true, flush_interval: 1h}`
			}
			var a acks
			s := d.mustOpen(cfg, schema, nil)
			// Offsets 0..299 of partition 0, rows k0..k299; offsets 0..99 of
			// partition 1 are a marker (every row was filtered out).
			writeFinal(t, s, idRows(t, mem, 0, 100, "first"), a.pos(0, 0, 99), true)
			writeFinal(t, s, idRows(t, mem, 100, 150, "first"), a.pos(0, 100, 199), false) // not final: held
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := d.strings(`select count(*)::text from $S.t`); got[0] != "100" {
				t.Fatalf("after a non-final piece: %s rows, want 100 (the piece waits for its ack's last)", got[0])
			}
			writeFinal(t, s, idRows(t, mem, 150, 200, "first"), a.pos(0, 100, 199), true)
			writeFinal(t, s, nil, a.pos(1, 0, 99), true)
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n, errs := a.Get(); n != 4 || len(errs) > 0 {
				t.Fatalf("acks %d %v", n, errs)
			}
			got, err := StoreSink{s}.Resume(context.Background(), "src", "tp")
			if err != nil || got[0] != 200 || got[1] != 100 || len(got) != 2 {
				t.Fatalf("Resume = %v, %v; want 0:200 1:100", got, err)
			}
			_ = s.Close(context.Background())

			// A restart replays from offset 100, cut differently: [100,249]
			// holds k100..k249, of which k100..k199 are stored already.
			s2 := d.mustOpen(cfg, schema, nil)
			writeFinal(t, s2, idRows(t, mem, 0, 100, "replay"), a.pos(0, 0, 99), true)
			writeFinal(t, s2, idRows(t, mem, 100, 250, "first"), a.pos(0, 100, 249), true)
			writeFinal(t, s2, idRows(t, mem, 250, 300, "first"), a.pos(0, 250, 299), true)
			if err := s2.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := d.strings(`select count(*)::text || ' ' || count(distinct id)::text || ' ' || count(*) filter (where tags = '{replay}')::text from $S.t`); got[0] != "300 300 0" {
				t.Fatalf("rows, distinct ids, replayed = %s, want 300 300 0", got[0])
			}
			if got := d.strings(`select partition || ':' || next_offset from $S.flowrun_offsets where pipeline = 'test' and sink = 'sink' order by 1`); strings.Join(got, " ") != "0:300 1:100" {
				t.Fatalf("offsets %v", got)
			}
		})
	}
}

// TestDeadLetterSinkExactlyOnce: a dead-letter sink hears of one input from
// several nodes (each piece final on its own path) and replays of them:
// every dead letter is stored once.
func TestDeadLetterSinkExactlyOnce(t *testing.T) {
	d := newDB(t)
	mem := optest.Allocator(t)
	dl := func(node string, recs ...string) arrow.RecordBatch {
		var lines []string
		for _, r := range recs {
			lines = append(lines, fmt.Sprintf(`{"record":%q,"node":%q,"reason":"bad","time":"2026-01-01T00:00:00Z"}`, r, node))
		}
		return records(t, mem, types.DeadLetterSchema, lines...)
	}
	var a acks
	open := func() *Sink {
		s := d.mustOpen(`{table: $S.dead, create: true}`, types.DeadLetterSchema, nil)
		if _, isStore := any(s).(op.PositionStore); isStore {
			t.Fatal("a dead-letter sink must not be a position store")
		}
		return s
	}
	s := open()
	ack := a.pos(0, 0, 99)
	ack.Retain(1)
	writeFinal(t, s, dl("clean", "r1", "r2"), ack, true)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	writeFinal(t, s, dl("valid", "r3"), ack, true) // a second node's piece of the same input
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = s.Close(context.Background())
	s2 := open()
	writeFinal(t, s2, dl("clean", "r1", "r2"), a.pos(0, 0, 49), true)
	writeFinal(t, s2, dl("valid", "r3", "r4"), a.pos(0, 50, 149), true)
	if err := s2.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := d.strings(`select string_agg(node || '/' || record, ' ' order by record) from $S.dead`); got[0] != "clean/r1 clean/r2 valid/r3 valid/r4" {
		t.Fatalf("dead letters: %s", got[0])
	}
}

var canonicalUUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// FuzzParseUUID: parseUUID never panics, accepts every canonical UUID and
// gives back its bytes, and accepts nothing that is not 32 hex digits.
func FuzzParseUUID(f *testing.F) {
	for _, s := range []string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "not-a-uuid", "", "--", "a0eebc999c0b4ef8bb6d6bb9bd380a11"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, ok := parseUUID(s)
		if canonicalUUID.MatchString(s) {
			if !ok {
				t.Fatalf("canonical %q refused", s)
			}
			if got := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]); got != strings.ToLower(s) {
				t.Fatalf("%q parsed as %s", s, got)
			}
		}
		if ok {
			hex := strings.Trim(strings.ReplaceAll(s, "-", ""), "{}")
			if len(hex) != 32 {
				t.Fatalf("accepted %q (%d hex digits)", s, len(hex))
			}
		}
	})
}
