// Package hbase is the "hbase" sink: it writes each row as one HBase Put
// through HBase's Thrift2 gateway (operators/hbaseclient). The row key is an
// expression; columns map to family:qualifier; values use the encoding
// documented in operators/hbaseclient and docs/hbase.md. Rows go out in
// putMultiple requests of batch_rows rows, max_in_flight requests at a time
// (one connection each); retryable failures are retried with exponential
// back-off; a request HBase refuses for its data is split in halves until
// the refused rows are found, and those go to the dead-letter output with
// HBase's reason. A batch is acknowledged only when HBase has accepted every
// put of it (or its refused rows are stored as dead letters).
package hbase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/codec/jsonenc"
	"github.com/flowrun/flowrun/operators/hbaseclient"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sinks,
	Spec: spec.Spec{
		Name:    "hbase",
		Summary: "Write rows as HBase puts through the Thrift2 gateway (batched, acked after HBase stored them).",
		Doc: `Each row becomes one Put. 'row_key' is an expression over the row; its
value is the key as text (integers in decimal), bytes as they are. 'columns'
maps input columns to 'family' or 'family:qualifier' (the qualifier defaults
to the column name); 'family' puts every column not listed there into one
family. Values are encoded as HBase's Bytes class does: strings UTF-8,
integers 8-byte big-endian, floats 8-byte IEEE 754 big-endian, booleans one
byte (0xFF/0x00), timestamps 8-byte big-endian microseconds since the epoch,
lists and structs JSON; a null writes no cell. 'flowrun hbase scan' reads them
back the same way.

Rows are sent in putMultiple requests of 'batch_rows' rows (rows of several
batches share a request; a partial one goes out when it has waited a
second, on the runtime's periodic flush, and at the end) with up to
'max_in_flight' requests outstanding, one connection each. Network and
region failures are retried with exponential back-off from 'retry_backoff'
to 'max_backoff', at most 'retries' times; then the batch fails and the
pipeline stops. When HBase refuses the data itself (an unknown column family,
a cell too large, an empty row key) the request is split in halves until the
refused rows are found; each goes to the node's dead_letter output with
HBase's reason (without one, the pipeline stops). A batch is acknowledged
only after HBase accepted every put of it. Puts are idempotent: writing the
same rows again leaves the same table.

'create: true' creates the table with the mapped families when it is missing.`,
		Example: `sinks:
  posts:
    from: clean
    hbase:
      thrift: ${HBASE_THRIFT_ADDR:-127.0.0.1:9090}
      table: pinterest
      row_key: category + "|" + unique_id
      columns: {title: t, description: t, follower_count: "n:followers"}
      create: true
    dead_letter: refused`,
		Config: spec.Obj(
			spec.F("thrift", spec.String, "Thrift2 gateway address host:port (HBASE_THRIFT_ADDR from scripts/services/up.sh hbase).").Def("127.0.0.1:9090"),
			spec.F("table", spec.String, "Table name, optionally namespace:table.").Req(),
			spec.F("row_key", spec.Expr, "Row key: an expression over the row.").Req(),
			spec.F("columns", spec.StringMap, "Input column → family or family:qualifier."),
			spec.F("family", spec.String, "Family for every input column not listed in columns (qualifier = column name)."),
			spec.F("create", spec.Bool, "Create the table and its families when missing.").Def(false),
			spec.F("batch_rows", spec.Int, "Rows per putMultiple request.").Def(int64(1000)),
			spec.F("max_in_flight", spec.Int, "Requests outstanding at once (one connection each).").Def(int64(4)),
			spec.F("retries", spec.Int, "Retries of a request after a retryable failure before the pipeline stops.").Def(int64(8)),
			spec.F("retry_backoff", spec.Duration, "First wait before a retry; doubles up to max_backoff.").Def(200*time.Millisecond),
			spec.F("max_backoff", spec.Duration, "Longest wait between retries.").Def(10*time.Second),
			spec.F("max_cell_bytes", spec.Size, "Largest cell (key, family, qualifier and value) sent; a row with a larger one goes to the dead-letter output. HBase's own limit, hbase.client.keyvalue.maxsize, is 10 MiB by default.").Def(int64(10<<20)),
			spec.F("timeout", spec.Duration, "Socket read/write timeout of one request.").Def(2*time.Minute),
		),
	},
	Prepare: prepare,
}

func init() { op.MustRegister(Plugin) }

// Column is one mapped input column.
type Column struct {
	Index     int
	Name      string
	Family    string
	Qualifier string
}

// Config is an hbase sink's settings.
type Config struct {
	Thrift       string
	Table        string
	RowKey       *exprc.Program
	Columns      []Column
	Create       bool
	BatchRows    int
	MaxInFlight  int
	Retries      int
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	MaxCellBytes int
	Timeout      time.Duration
}

// Families returns the distinct families of the mapping, in order.
func (c *Config) Families() []string {
	var out []string
	seen := map[string]bool{}
	for _, col := range c.Columns {
		if !seen[col.Family] {
			seen[col.Family] = true
			out = append(out, col.Family)
		}
	}
	return out
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	cfg := decode(c)
	in := c.In()
	if in == nil {
		return nil, nil
	}
	return nil, func(r op.Resources) (any, error) { return New(context.Background(), r, cfg, in) }
}

// ConfigOf decodes a checked hbase sink's configuration v for rows of
// schema in: how `flowrun hbase scan` finds a sink's table, columns and
// their encodings.
func ConfigOf(v *spec.Value, in *arrow.Schema) (Config, error) {
	var errs source.Errors
	cfg := decode(&validate.Check{Config: v, Inputs: []validate.Input{{Schema: in}}, Errs: &errs})
	if len(errs) > 0 {
		return cfg, errors.New(errs.Render())
	}
	return cfg, nil
}

func decode(c *validate.Check) Config {
	v := c.Config
	cfg := Config{
		Thrift:       strings.TrimSpace(v.String("thrift")),
		Table:        strings.TrimSpace(v.String("table")),
		Create:       v.Boolean("create"),
		BatchRows:    int(v.Int64("batch_rows")),
		MaxInFlight:  int(v.Int64("max_in_flight")),
		Retries:      int(v.Int64("retries")),
		RetryBackoff: v.Duration("retry_backoff"),
		MaxBackoff:   v.Duration("max_backoff"),
		Timeout:      v.Duration("timeout"),
		MaxCellBytes: int(v.Int64("max_cell_bytes")),
	}
	if cfg.Thrift == "" || !strings.Contains(cfg.Thrift, ":") {
		c.Errorf(v.PosOf("thrift"), "'thrift' must be a host:port address, got %q", cfg.Thrift)
	}
	if ns, q := hbaseclient.SplitTable(cfg.Table); !nameRE.MatchString(q) || (ns != "" && !nameRE.MatchString(ns)) {
		c.Errorf(v.PosOf("table"), "bad table name %q (letters, digits, _ . - and an optional namespace:)", cfg.Table)
	}
	for _, f := range []struct {
		name string
		val  int
	}{{"batch_rows", cfg.BatchRows}, {"max_in_flight", cfg.MaxInFlight}} {
		if f.val < 1 {
			c.Errorf(v.PosOf(f.name), "'%s' must be at least 1", f.name)
		}
	}
	if cfg.Retries < 0 {
		c.Errorf(v.PosOf("retries"), "'retries' must not be negative")
	}
	in := c.In()
	if in == nil {
		return cfg
	}
	if v.Has("row_key") {
		p, errs := exprc.Compile(v.Get("row_key").Expr, in, exprc.Name("row_key"))
		c.Errs.Append(errs)
		if len(errs) == 0 {
			cfg.RowKey = p
		}
	}
	names := make([]string, in.NumFields())
	for i, f := range in.Fields() {
		names[i] = f.Name
	}
	listed := map[string]bool{}
	nerrs := len(*c.Errs)
	for _, e := range v.Get("columns").Entries {
		idx := in.FieldIndices(e.Key)
		if len(idx) == 0 {
			er := c.Errorf(e.KeyPos, "unknown column '%s' in columns", e.Key)
			er.Hint = source.DidYouMean(e.Key, names)
			continue
		}
		fam, qual, _ := strings.Cut(e.Value.Str, ":")
		if qual == "" {
			qual = e.Key
		}
		if !nameRE.MatchString(fam) {
			c.Errorf(e.Value.Pos, "bad column family %q for '%s' (want family or family:qualifier)", fam, e.Key)
			continue
		}
		listed[e.Key] = true
		cfg.Columns = append(cfg.Columns, Column{Index: idx[0], Name: e.Key, Family: fam, Qualifier: qual})
	}
	if fam := strings.TrimSpace(v.String("family")); fam != "" {
		if !nameRE.MatchString(fam) {
			c.Errorf(v.PosOf("family"), "bad column family %q", fam)
		}
		for i, n := range names {
			if !listed[n] {
				cfg.Columns = append(cfg.Columns, Column{Index: i, Name: n, Family: fam, Qualifier: n})
			}
		}
	}
	if len(cfg.Columns) == 0 && len(*c.Errs) == nerrs {
		c.Errorf(v.Pos, "hbase sink writes no column: map some in 'columns' or name a 'family' for all")
	}
	return cfg
}

// Sink writes to HBase. Write, Flush and Close are called from the node's
// goroutine; the senders are goroutines the sink owns and Close joins.
type Sink struct {
	cfg  Config
	res  op.Resources
	in   *arrow.Schema
	key  *exprc.Evaluator
	enc  *jsonenc.Encoder
	encs []hbaseclient.Encoding

	jobs    chan *job
	pending *job // rows waiting for a full request (node goroutine only)
	wg      sync.WaitGroup
	stop    context.CancelFunc
	sendCtx context.Context
	err     atomic.Pointer[error] // first failure that stops the pipeline

	closeOnce sync.Once
	closeErr  error

	// dial opens a connection; tests replace it to inject failures.
	dial func(ctx context.Context) (putter, error)
}

// putter is the part of a connection the senders use.
type putter interface {
	PutMultiple(ctx context.Context, table string, puts []hbaseclient.Put) error
	Broken() bool
	Idle() time.Duration
	Close() error
}

// job is one request: up to batch_rows puts, possibly from several batches.
type job struct {
	puts   []hbaseclient.Put
	owners []owner // per put: its batch and input row
	segs   []*tracker
	// flushed is set by the first periodic Flush that finds the job
	// pending; the next one sends it (see Flush).
	flushed bool
}

// owner is where a put came from, for dead letters.
type owner struct {
	t   *tracker
	row int
}

// tracker counts the unfinished jobs of one batch and holds its record for
// dead letters.
type tracker struct {
	left atomic.Int64
	mu   sync.Mutex
	err  error
	ack  *batch.Ack
	rec  arrow.RecordBatch
	dead []deadRow // rows HBase refused, written when the batch is done
}

type deadRow struct {
	row    int
	reason string
}

// New checks (and with create, makes) the table and starts the senders.
func New(ctx context.Context, r op.Resources, cfg Config, in *arrow.Schema) (*Sink, error) {
	if cfg.MaxInFlight < 1 {
		cfg.MaxInFlight = 4
	}
	if cfg.BatchRows < 1 {
		cfg.BatchRows = 1000
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 200 * time.Millisecond
	}
	if cfg.MaxCellBytes <= 0 {
		cfg.MaxCellBytes = 10 << 20
	}
	if cfg.MaxBackoff < cfg.RetryBackoff {
		cfg.MaxBackoff = cfg.RetryBackoff
	}
	if cfg.RowKey == nil {
		return nil, errors.New("hbase: no row_key")
	}
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: cfg, res: r, in: in, enc: jsonenc.NewEncoder(in), jobs: make(chan *job)}
	s.key = cfg.RowKey.NewEvaluator()
	for _, c := range cfg.Columns {
		s.encs = append(s.encs, hbaseclient.EncodingOf(in.Field(c.Index).Type))
	}
	s.dial = func(ctx context.Context) (putter, error) {
		return hbaseclient.Dial(ctx, cfg.Thrift, hbaseclient.Options{Timeout: cfg.Timeout})
	}
	if err := s.ensureTable(ctx); err != nil {
		return nil, err
	}
	s.start()
	return s, nil
}

func (s *Sink) start() {
	s.sendCtx, s.stop = context.WithCancel(context.Background())
	for range s.cfg.MaxInFlight {
		s.wg.Add(1)
		go s.sender()
	}
}

// EnsureTable checks that the table exists and, with create, creates it with
// the mapped families.
func (s *Sink) ensureTable(ctx context.Context) error {
	c, err := hbaseclient.Dial(ctx, s.cfg.Thrift, hbaseclient.Options{Timeout: s.cfg.Timeout})
	if err != nil {
		return err
	}
	defer c.Close()
	ok, err := c.TableExists(ctx, s.cfg.Table)
	if err != nil {
		return fmt.Errorf("hbase: table %s: %w", s.cfg.Table, err)
	}
	if ok {
		return nil
	}
	if !s.cfg.Create {
		return fmt.Errorf("hbase: table %s does not exist (set 'create: true' to create it with families %s)",
			s.cfg.Table, strings.Join(s.cfg.Families(), ", "))
	}
	if err := c.CreateTable(ctx, s.cfg.Table, s.cfg.Families()); err != nil && !strings.Contains(err.Error(), "TableExistsException") {
		return fmt.Errorf("hbase: create table %s: %w", s.cfg.Table, err)
	}
	s.res.Log.Info("hbase: created table", "table", s.cfg.Table, "families", s.cfg.Families())
	return nil
}

func (s *Sink) fail(err error) {
	s.err.CompareAndSwap(nil, &err)
}

func (s *Sink) failed() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Write encodes b's rows as puts and queues them in requests of batch_rows.
// Rows whose key cannot be made go to the dead-letter output at once.
func (s *Sink) Write(ctx context.Context, b batch.Batch) error {
	if err := s.failed(); err != nil {
		b.Release(err)
		return err
	}
	n := b.Rows()
	if n == 0 {
		b.Release(nil)
		return nil
	}
	rec := b.Rec
	t := &tracker{ack: b.Ack, rec: rec}
	puts, rows, err := s.encode(rec, t)
	if err != nil {
		b.Release(err)
		s.fail(err)
		return err
	}
	t.left.Store(1) // Write's own reference, dropped below
	for len(puts) > 0 {
		if s.pending == nil {
			s.pending = &job{}
		}
		j := s.pending
		k := min(s.cfg.BatchRows-len(j.puts), len(puts))
		t.left.Add(1)
		j.segs = append(j.segs, t)
		j.puts = append(j.puts, puts[:k]...)
		for _, r := range rows[:k] {
			j.owners = append(j.owners, owner{t, r})
		}
		puts, rows = puts[k:], rows[k:]
		if len(j.puts) == s.cfg.BatchRows {
			if err := s.send(ctx); err != nil {
				s.done(t, err)
				return err
			}
		}
	}
	s.done(t, nil)
	return nil
}

// send hands the pending request to a sender (waiting for one while all
// are busy: backpressure).
func (s *Sink) send(ctx context.Context) error {
	j := s.pending
	if j == nil || len(j.puts) == 0 {
		return nil
	}
	s.pending = nil
	select {
	case s.jobs <- j:
		return nil
	case <-ctx.Done():
		for _, t := range j.segs {
			s.done(t, ctx.Err())
		}
		return ctx.Err()
	}
}

// encode turns every row of rec into a put; rows without a usable key are
// recorded as dead in t.
func (s *Sink) encode(rec arrow.RecordBatch, t *tracker) ([]hbaseclient.Put, []int, error) {
	n := int(rec.NumRows())
	s.key.Bind(rec)
	// One arena for every key and value of the batch; cells point into it.
	// Sized on the first pass and only grown (re-slicing keeps old views).
	arena := make([]byte, 0, n*64)
	type span struct{ off, end int }
	keys := make([]span, n)
	vals := make([]span, n*len(s.cfg.Columns))
	present := make([]bool, n*len(s.cfg.Columns))
	ok := make([]bool, n)
	cols := make([]arrow.Array, len(s.cfg.Columns))
	getters := make([]arrowx.Getter, len(s.cfg.Columns))
	for i, c := range s.cfg.Columns {
		cols[i] = rec.Column(c.Index)
		if s.encs[i] == hbaseclient.EncJSON {
			getters[i] = arrowx.NewGetter(cols[i])
		}
	}
	for row := range n {
		k, err := s.key.Eval(row)
		if err != nil {
			t.dead = append(t.dead, deadRow{row, "row_key: " + err.Error()})
			continue
		}
		off := len(arena)
		switch x := k.(type) {
		case nil:
			t.dead = append(t.dead, deadRow{row, "row_key is null"})
			continue
		case []byte:
			arena = append(arena, x...)
		default:
			str, isText := arrowx.Text(k)
			if !isText {
				t.dead = append(t.dead, deadRow{row, fmt.Sprintf("row_key: %T is not a text or bytes value", k)})
				continue
			}
			arena = append(arena, str...)
		}
		if len(arena) == off {
			t.dead = append(t.dead, deadRow{row, "row_key is empty"})
			continue
		}
		keys[row] = span{off, len(arena)}
		ok[row] = true
		cells := 0
		tooBig := ""
		for i, c := range s.cfg.Columns {
			off := len(arena)
			var isSet bool
			arena, isSet = appendValue(arena, cols[i], getters[i], row)
			if isSet {
				vals[row*len(s.cfg.Columns)+i] = span{off, len(arena)}
				present[row*len(s.cfg.Columns)+i] = true
				cells++
				// What HBase counts: the KeyValue's serialized size.
				if size := len(arena) - off + keys[row].end - keys[row].off + len(c.Family) + len(c.Qualifier) + 20; size > s.cfg.MaxCellBytes && tooBig == "" {
					tooBig = fmt.Sprintf("cell %s:%s of %d bytes exceeds max_cell_bytes (%d)", c.Family, c.Qualifier, size, s.cfg.MaxCellBytes)
				}
			}
		}
		if tooBig != "" {
			t.dead = append(t.dead, deadRow{row, tooBig})
			ok[row] = false
			continue
		}
		if cells == 0 {
			// HBase refuses a Put without cells; a row of nulls has nothing to store.
			t.dead = append(t.dead, deadRow{row, "every mapped column is null: nothing to store"})
			ok[row] = false
		}
	}
	puts := make([]hbaseclient.Put, 0, n)
	rows := make([]int, 0, n)
	fams := make([][]byte, len(s.cfg.Columns))
	quals := make([][]byte, len(s.cfg.Columns))
	for i, c := range s.cfg.Columns {
		fams[i], quals[i] = []byte(c.Family), []byte(c.Qualifier)
	}
	allCells := make([]hbaseclient.Cell, 0, n*len(s.cfg.Columns))
	for row := range n {
		if !ok[row] {
			continue
		}
		start := len(allCells)
		for i := range s.cfg.Columns {
			x := row*len(s.cfg.Columns) + i
			if !present[x] {
				continue
			}
			allCells = append(allCells, hbaseclient.Cell{Family: fams[i], Qualifier: quals[i],
				Value: arena[vals[x].off:vals[x].end:vals[x].end]})
		}
		puts = append(puts, hbaseclient.Put{Row: arena[keys[row].off:keys[row].end:keys[row].end],
			Cells: allCells[start:len(allCells):len(allCells)]})
		rows = append(rows, row)
	}
	if len(t.dead) > 0 && s.res.DeadLetters == nil {
		d := t.dead[0]
		return nil, nil, fmt.Errorf("hbase: row %d refused: %s (no dead_letter output)", d.row, d.reason)
	}
	return puts, rows, nil
}

// appendValue appends the encoding of one cell; false for null.
func appendValue(dst []byte, a arrow.Array, get arrowx.Getter, row int) ([]byte, bool) {
	if a.IsNull(row) {
		return dst, false
	}
	switch x := a.(type) {
	case *array.String:
		return append(dst, x.Value(row)...), true
	case *array.LargeString:
		return append(dst, x.Value(row)...), true
	case *array.Binary:
		return append(dst, x.Value(row)...), true
	case *array.Int64:
		return hbaseclient.AppendInt64(dst, x.Value(row)), true
	case *array.Int32:
		return hbaseclient.AppendInt64(dst, int64(x.Value(row))), true
	case *array.Int16:
		return hbaseclient.AppendInt64(dst, int64(x.Value(row))), true
	case *array.Int8:
		return hbaseclient.AppendInt64(dst, int64(x.Value(row))), true
	case *array.Uint64:
		return hbaseclient.AppendInt64(dst, int64(x.Value(row))), true
	case *array.Uint32:
		return hbaseclient.AppendInt64(dst, int64(x.Value(row))), true
	case *array.Uint16:
		return hbaseclient.AppendInt64(dst, int64(x.Value(row))), true
	case *array.Uint8:
		return hbaseclient.AppendInt64(dst, int64(x.Value(row))), true
	case *array.Float64:
		return hbaseclient.AppendFloat64(dst, x.Value(row)), true
	case *array.Float32:
		return hbaseclient.AppendFloat64(dst, float64(x.Value(row))), true
	case *array.Boolean:
		return hbaseclient.AppendBool(dst, x.Value(row)), true
	case *array.Timestamp:
		unit := x.DataType().(*arrow.TimestampType).Unit
		return hbaseclient.AppendInt64(dst, x.Value(row).ToTime(unit).UnixMicro()), true
	case *array.Date32:
		return hbaseclient.AppendInt64(dst, int64(x.Value(row))), true
	case *array.Date64:
		return hbaseclient.AppendInt64(dst, int64(x.Value(row))/86_400_000), true
	}
	if get == nil { // a type EncodingOf maps elsewhere but no case above handles
		get = arrowx.NewGetter(a)
	}
	b, err := json.Marshal(get(row))
	if err != nil {
		b, _ = json.Marshal(fmt.Sprint(get(row)))
	}
	return append(dst, b...), true
}

// sender owns one connection and sends jobs until the queue closes.
func (s *Sink) sender() {
	defer s.wg.Done()
	var conn putter
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for j := range s.jobs {
		err := s.put(&conn, j.puts, j.owners)
		for _, t := range j.segs {
			s.done(t, err)
		}
	}
}

// put stores puts, retrying retryable failures and splitting on permanent
// ones; refused rows are recorded as dead in their batch's tracker.
func (s *Sink) put(conn *putter, puts []hbaseclient.Put, owners []owner) error {
	ctx := s.sendCtx
	backoff := s.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		var err error
		// A connection idle for long is closed by the gateway: dial anew
		// rather than spend a retry on it.
		if *conn == nil || (*conn).Broken() || (*conn).Idle() > hbaseclient.MaxIdle {
			if *conn != nil {
				(*conn).Close()
				*conn = nil
			}
			var c putter
			c, err = s.dial(ctx)
			if err == nil {
				*conn = c
			}
		}
		if err == nil {
			err = (*conn).PutMultiple(ctx, s.cfg.Table, puts)
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch hbaseclient.Classify(err) {
		case hbaseclient.Permanent:
			if len(puts) == 1 {
				t := owners[0].t
				t.mu.Lock()
				t.dead = append(t.dead, deadRow{owners[0].row, err.Error()})
				t.mu.Unlock()
				if s.res.DeadLetters == nil {
					return fmt.Errorf("hbase: row %q refused (no dead_letter output): %w", puts[0].Row, err)
				}
				return nil
			}
			h := len(puts) / 2
			return errors.Join(s.put(conn, puts[:h], owners[:h]), s.put(conn, puts[h:], owners[h:]))
		case hbaseclient.Fatal:
			return fmt.Errorf("hbase: put into %s: %w", s.cfg.Table, err)
		}
		if attempt >= s.cfg.Retries {
			return fmt.Errorf("hbase: put into %s failed after %d retries: %w", s.cfg.Table, attempt, err)
		}
		s.res.Log.Warn("hbase: put failed, retrying", "table", s.cfg.Table, "attempt", attempt+1, "backoff", backoff, "err", err)
		select {
		case <-s.after(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

func (s *Sink) after(d time.Duration) <-chan time.Time {
	if s.res.Clock != nil {
		return s.res.Clock.After(d)
	}
	return time.After(d)
}

// done drops one reference of t; the last one writes the dead letters and
// finishes the batch's ack.
func (s *Sink) done(t *tracker, err error) {
	if err != nil {
		t.mu.Lock()
		if t.err == nil {
			t.err = err
		}
		t.mu.Unlock()
		// A batch HBase did not store stops the pipeline: the rows are
		// not lost (the source replays what was not acknowledged) but the
		// run must not report success.
		s.fail(err)
	}
	if t.left.Add(-1) != 0 {
		return
	}
	t.mu.Lock()
	err = t.err
	dead := t.dead
	t.mu.Unlock()
	if err == nil && len(dead) > 0 {
		dl := s.res.DeadLetters
		var buf []byte
		for _, d := range dead {
			buf = s.enc.AppendRow(buf[:0], t.rec, d.row)
			t.ack.Retain(1)
			if e := dl.Reject(t.ack, string(buf), d.reason); e != nil {
				t.ack.Done(e)
				err = e
				s.fail(e)
				break
			}
		}
	}
	t.rec.Release()
	t.ack.Done(err)
}

// Flush sends the rows waiting for a full request once they have waited
// one flush interval, and reports a failure of the senders. The runtime
// calls it every second: a request pending at one call is sent at the
// next, so a row waits at most two intervals, while rows that flow faster
// than batch_rows a second fill whole requests instead of being cut into a
// partial one every second (each request costs HBase a WAL sync and an
// RPC). Close sends the rest at the end of the input.
func (s *Sink) Flush(ctx context.Context) error {
	if err := s.failed(); err != nil {
		return err
	}
	if j := s.pending; j != nil && !j.flushed {
		j.flushed = true
		return nil
	}
	if err := s.send(ctx); err != nil {
		return err
	}
	return s.failed()
}

// Close waits for the requests in flight (bounded by ctx; then it cancels
// them) and joins the senders.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		sendErr := s.send(ctx)
		close(s.jobs)
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		var waitErr error
		select {
		case <-done:
		case <-ctx.Done():
			s.stop()
			<-done
			waitErr = fmt.Errorf("hbase: close: %w", ctx.Err())
		}
		s.stop()
		s.closeErr = errors.Join(s.failed(), waitErr)
		if s.closeErr == nil && sendErr != nil {
			s.closeErr = sendErr
		}
	})
	return s.closeErr
}
