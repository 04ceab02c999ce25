// Package postgres is the "postgres" sink: it loads rows into a PostgreSQL
// table through pgx, by COPY (append) or by COPY into a temporary table
// followed by INSERT … ON CONFLICT (upsert), in transactions of up to
// rows_per_transaction rows spread over pool_size connections. It owns the
// Arrow → SQL type mapping, the start-up check of an existing table (or its
// creation), the handling of rows the database rejects (found by probing
// the failed rows in transactions that are rolled back, and sent alone to
// the dead-letter output with PostgreSQL's message), retries with back-off on connection
// loss and serialization failures, and the redaction of connection URLs in
// everything it reports.
//
// When batches carry source positions the sink also stores, in the same
// transaction as the rows, the next offset of every source partition it has
// written (table flowrun_offsets), skips batches it has already stored, and
// reports those offsets as an op.PositionStore so the source resumes there:
// exactly-once delivery into the table.
//
// pgx is used only inside this folder.
package postgres

import (
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sinks,
	Spec: spec.Spec{
		Name:    "postgres",
		Summary: "Write rows to a PostgreSQL table: COPY appends or upserts by key, with source offsets in the same transaction (exactly-once).",
		Doc: `mode: append loads rows with COPY. mode: upsert (the default when 'key' is
set) copies them into a temporary table and merges them with INSERT … ON
CONFLICT (key) DO UPDATE, or DO NOTHING with on_conflict: ignore; columns
listed in 'keep' are written by the first insert and never updated. Rows
with the same key inside one transaction are reduced to the last one first,
so a batch repeating a key never fails.

Rows are written in transactions of up to rows_per_transaction rows; a
transaction starts when that many rows are waiting or flush_interval after
its first row. Up to pool_size transactions run at once on separate
connections; all batches of one source partition go through the same
connection, so they commit in order.

With create: true the table (and its schema, when the name is qualified) is
created when missing, from the node's schema, with the key as primary key. Otherwise the existing table is read
at start and checked: every column of the node must exist with a type that
can hold it, an upsert needs a primary key or unique index on exactly the
key columns, and a NOT NULL table column without a default must be written
by the node. Type mapping (node type → created SQL type; also accepted in
an existing table):

` + mappingDoc() + `
A column of another type (a struct, a map) is reported by flowrun validate.

A row the database refuses (a constraint, a value too long, an invalid byte
sequence, a string that is not a valid uuid) goes alone to the node's
dead_letter output with PostgreSQL's message as the reason; the rest of its
transaction is stored. The bad rows are found by writing the failed rows
again in transactions that are rolled back: the COPY into the stage (which
has the table's NOT NULL and CHECK constraints) names the failing line, and
other failures (a unique index, a foreign key) are split in halves; then
the transaction runs again without them. Without a dead_letter output
such a row stops the pipeline. Connection loss, serialization failures and
deadlocks roll back and retry the whole transaction with exponential
back-off (retry_backoff doubling up to 10s) for up to retry_for; after that
the batches fail and the pipeline stops. Nothing is dropped silently.

Exactly-once: when the batches carry source positions (a kafka source), the
transaction that writes an input's rows also records, per source topic and
partition, the next offset written, in offsets_table (created when missing,
in the table's schema) under this pipeline's name and this node's name; the
pieces of one input are always committed together. On a replay (after a
crash or a rebalance) a batch whose offsets are already stored is skipped
(except one that had rows the table refused, recorded in
<offsets_table>_rejected: it is written again, idempotently, so a refused
row whose dead letter was lost in a crash is refused again);
an append batch that starts below the stored offset (the replay was cut
differently) inserts only the rows the table does not hold yet (compared on
every column but a dead letter's time). The sink is an op.PositionStore:
the source resumes from the lowest offset its sinks stored, on start and on
every partition assignment. A sink fed only with dead letters (several nodes
send pieces of one input to it) stores offsets and writes replays without
duplicates the same way, but leaves the source to resume from its own
committed offsets, which never pass what the sinks stored.

url is a postgres:// URL or a key=value connection string; empty means
pgx's usual environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
PGSSLMODE, ~/.pgpass). A password is never shown: URLs in errors and logs
are redacted.`,
		Example: `sinks:
  pins:
    from: valid
    postgres:
      url: "${POSTGRES_URL}"
      table: pins
      key: [unique_id]
      keep: [ingested_at]
    dead_letter: dead_letters
  dead_letters:
    postgres: {url: "${POSTGRES_URL}", table: dead_letters, create: true}`,
		Config: spec.Obj(
			spec.F("url", spec.String, "Connection URL (postgres://user:pass@host:5432/db?sslmode=disable) or key=value string; empty uses PGHOST, PGUSER, PGPASSWORD… ").Ex(`"${POSTGRES_URL}"`),
			spec.F("table", spec.String, "Target table, optionally schema-qualified (analytics.pins).").Req(),
			spec.F("mode", spec.Enum, "append (COPY) or upsert (COPY into a temporary table + INSERT … ON CONFLICT); default upsert when key is set, else append.").OneOf("append", "upsert"),
			spec.F("key", spec.StringList, "Upsert key columns (the table's primary key or a unique index)."),
			spec.F("on_conflict", spec.Enum, "upsert: update the existing row (update) or keep it (ignore).").OneOf("update", "ignore").Def("update"),
			spec.F("keep", spec.StringList, "upsert: columns an update leaves as first written (e.g. ingested_at)."),
			spec.F("create", spec.Bool, "Create the table from the node's schema when it does not exist.").Def(false),
			spec.F("pool_size", spec.Int, "Connections, and so transactions in flight at once.").Def(int64(2)),
			spec.F("rows_per_transaction", spec.Int, "Most rows written in one transaction.").Def(int64(20000)),
			spec.F("flush_interval", spec.Duration, "Longest time a row waits before its transaction starts.").Def(200*time.Millisecond),
			spec.F("retry_for", spec.Duration, "How long a transaction is retried on connection loss or serialization failure before the pipeline stops.").Def(5*time.Minute),
			spec.F("retry_backoff", spec.Duration, "First wait between retries; it doubles up to 10s.").Def(100*time.Millisecond),
			spec.F("offsets_table", spec.String, "Table (in the target table's schema unless qualified) holding the source offsets written.").Def("flowrun_offsets"),
		),
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

func mappingDoc() string {
	var b strings.Builder
	b.WriteString("| node type | created as | accepted |\n|---|---|---|\n")
	for _, r := range TypeMapping() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r[0], r[1], r[2])
	}
	return b.String()
}

// Config is a postgres sink's settings.
type Config struct {
	URL           string
	Table         string
	Mode          string // append or upsert
	Key           []string
	OnConflict    string // update or ignore
	Keep          []string
	Create        bool
	PoolSize      int
	TxnRows       int
	FlushInterval time.Duration
	RetryFor      time.Duration
	RetryBackoff  time.Duration
	OffsetsTable  string
	// Pipeline names the pipeline in the offsets table.
	Pipeline string
	// Schema is the node's input schema: the columns written.
	Schema *arrow.Schema
}

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = "append"
		if len(c.Key) > 0 {
			c.Mode = "upsert"
		}
	}
	if c.OnConflict == "" {
		c.OnConflict = "update"
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 2
	}
	if c.TxnRows <= 0 {
		c.TxnRows = 20000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 200 * time.Millisecond
	}
	if c.RetryFor <= 0 {
		c.RetryFor = 5 * time.Minute
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.OffsetsTable == "" {
		c.OffsetsTable = "flowrun_offsets"
	}
}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	v := c.Config
	cfg := Config{
		URL:           v.String("url"),
		Table:         strings.TrimSpace(v.String("table")),
		Mode:          v.String("mode"),
		Key:           v.Strings("key"),
		OnConflict:    v.String("on_conflict"),
		Keep:          v.Strings("keep"),
		Create:        v.Boolean("create"),
		PoolSize:      int(v.Int64("pool_size")),
		TxnRows:       int(v.Int64("rows_per_transaction")),
		FlushInterval: v.Duration("flush_interval"),
		RetryFor:      v.Duration("retry_for"),
		RetryBackoff:  v.Duration("retry_backoff"),
		OffsetsTable:  strings.TrimSpace(v.String("offsets_table")),
		Schema:        c.In(),
	}
	if c.Pipeline != nil {
		cfg.Pipeline = c.Pipeline.Name
	}
	if c.Node != nil && cfg.Pipeline == "" {
		cfg.Pipeline = "pipeline"
	}
	ok := true
	bad := func(field, format string, args ...any) {
		c.Errorf(v.PosOf(field), format, args...)
		ok = false
	}
	if _, err := pgxpool.ParseConfig(cfg.URL); err != nil {
		bad("url", "postgres sink: bad 'url': %s", Redact(err.Error(), cfg.URL))
	}
	if cfg.Table == "" {
		bad("table", "postgres sink needs a 'table'")
	} else if _, err := parseIdent(cfg.Table); err != nil {
		bad("table", "'table': %v", err)
	}
	if cfg.OffsetsTable != "" {
		if _, err := parseIdent(cfg.OffsetsTable); err != nil {
			bad("offsets_table", "'offsets_table': %v", err)
		}
	}
	if cfg.Mode == "upsert" && len(cfg.Key) == 0 {
		bad("mode", "mode upsert needs 'key': the columns of the table's primary key or a unique index")
	}
	if cfg.Mode == "append" && len(cfg.Key) > 0 {
		bad("key", "'key' is for mode upsert; mode append inserts every row")
	}
	if len(cfg.Keep) > 0 && (cfg.Mode == "append" || len(cfg.Key) == 0) {
		bad("keep", "'keep' is for mode upsert")
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"pool_size", cfg.PoolSize}, {"rows_per_transaction", cfg.TxnRows}} {
		if f.n < 1 {
			bad(f.name, "'%s' must be at least 1", f.name)
		}
	}
	if in := cfg.Schema; in != nil {
		for _, f := range in.Fields() {
			if _, mappable := mapOf(f.Type); !mappable {
				e := c.Errorf(v.Pos, "postgres sink cannot write column %q of type %s", f.Name, types.Name(f.Type))
				e.Hint = "cast or drop it before the sink; supported: int64, int32, float64, string, bool, timestamp, binary, list<string>, list<int64>, list<float64>"
				ok = false
			}
		}
		for _, list := range []string{"key", "keep"} {
			for _, k := range v.Strings(list) {
				if _, found := in.FieldsByName(k); !found {
					bad(list, "'%s' names column %q, which the node's input does not have (columns: %s)", list, k, fieldNames(in))
				}
			}
		}
		for _, k := range cfg.Keep {
			for _, kk := range cfg.Key {
				if k == kk {
					bad("keep", "'keep' column %q is a key column; keys are never updated", k)
				}
			}
		}
	}
	if !ok {
		return nil, nil
	}
	return nil, func(r op.Resources) (any, error) {
		s, err := New(r, cfg)
		if err != nil {
			return nil, err
		}
		if s.deadLetterInput {
			return s, nil
		}
		return StoreSink{s}, nil
	}
}

func fieldNames(s *arrow.Schema) string {
	var names []string
	for _, f := range s.Fields() {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}
