package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/operators/codec/jsonenc"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// stageName is the per-connection temporary table upserts copy into.
const stageName = "flowrun_stage"

// Sink writes to one PostgreSQL table. Write, Flush and Close are called
// from the node's goroutine; transactions run on pool_size workers.
type Sink struct {
	cfg     Config
	res     op.Resources
	pool    *pgxpool.Pool
	table   pgx.Identifier
	stage   pgx.Identifier
	offsets pgx.Identifier
	cols    []string
	kinds   []kind
	uuids   []bool // column i is a uuid in the table
	keep    []bool // column i is in keep: the first row of a key gives it
	keyIdx  []int
	merge   string // upsert: INSERT … SELECT … ON CONFLICT
	dedupe  string // replays of an append: INSERT … SELECT … WHERE NOT EXISTS
	enc     *jsonenc.Encoder
	// deadLetterInput: the sink stores dead letters (record, node, reason,
	// time), which several nodes send for one input.
	deadLetterInput bool

	workers []*worker
	rr      atomic.Uint64
	metrics sinkMetrics
	seed    maphash.Seed

	ctx    context.Context // cancelled when Close gives up on retries
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    atomic.Pointer[error]

	closeOnce sync.Once
	closeErr  error
	closed    bool
}

// New connects, checks (or creates) the table and starts the workers.
func New(r op.Resources, cfg Config) (*Sink, error) {
	cfg.defaults()
	if cfg.Schema == nil {
		return nil, errors.New("postgres sink: no input schema")
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: bad url: %s", Redact(err.Error(), cfg.URL))
	}
	table, err := parseIdent(cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: table %w", err)
	}
	offsets, err := parseIdent(cfg.OffsetsTable)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: offsets_table %w", err)
	}
	if len(offsets) == 1 && len(table) == 2 {
		offsets = pgx.Identifier{table[0], offsets[0]}
	}
	s := &Sink{cfg: cfg, res: r, table: table, offsets: offsets,
		stage: pgx.Identifier{"pg_temp", stageName}, enc: jsonenc.NewEncoder(cfg.Schema), seed: maphash.MakeSeed(),
		deadLetterInput: cfg.Schema.Equal(types.DeadLetterSchema)}
	for _, f := range cfg.Schema.Fields() {
		m, _ := mapOf(f.Type)
		s.cols = append(s.cols, f.Name)
		s.kinds = append(s.kinds, m.kind)
		s.keep = append(s.keep, contains(cfg.Keep, f.Name))
	}
	for _, k := range cfg.Key {
		idx := cfg.Schema.FieldIndices(k)
		if len(idx) == 0 {
			return nil, fmt.Errorf("postgres sink: key column %q is not in the input", k)
		}
		s.keyIdx = append(s.keyIdx, idx[0])
	}
	where := RedactURL(cfg.URL)
	if where == "" {
		where = "the PG* environment"
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	setup, err := pgx.ConnectConfig(ctx, pcfg.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres sink: connect to %s: %w", where, redactErr(err, cfg.URL))
	}
	err = s.prepareTable(ctx, setup)
	_ = setup.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("postgres sink: %w", redactErr(err, cfg.URL))
	}

	pcfg.MaxConns = int32(cfg.PoolSize) + 1 // one spare for offset look-ups
	// The stage has the table's columns, defaults and NOT NULL and CHECK
	// constraints (not its indexes): a row that breaks one of those fails
	// in the COPY, whose error names its line, so a refused row is found
	// without splitting the transaction in halves.
	create := fmt.Sprintf("create temp table if not exists %s (like %s including defaults including constraints including identity including generated) on commit delete rows",
		pgx.Identifier{stageName}.Sanitize(), s.table.Sanitize())
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, create)
		return err
	}
	s.pool, err = pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: %s: %w", where, redactErr(err, cfg.URL))
	}
	s.metrics = newSinkMetrics(r.MetricsOrNop())
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for range cfg.PoolSize {
		w := &worker{s: s, in: make(chan held, 4), flush: make(chan chan struct{})}
		s.workers = append(s.workers, w)
		s.wg.Add(1)
		go w.run()
	}
	return s, nil
}

// prepareTable creates or checks the target table and the offsets table.
func (s *Sink) prepareTable(ctx context.Context, c *pgx.Conn) error {
	info, err := readTableConn(ctx, c, s.table)
	if err != nil {
		return fmt.Errorf("read table %s: %w", s.table.Sanitize(), err)
	}
	if info == nil {
		if !s.cfg.Create {
			return fmt.Errorf("table %s does not exist: set create: true, or create it:\n  %s", s.table.Sanitize(), s.createSQL())
		}
		if len(s.table) == 2 {
			if _, err := c.Exec(ctx, "create schema if not exists "+pgx.Identifier{s.table[0]}.Sanitize()); err != nil && !alreadyExists(err) {
				return fmt.Errorf("create schema %s: %w", pgx.Identifier{s.table[0]}.Sanitize(), err)
			}
		}
		if _, err := c.Exec(ctx, s.createSQL()); err != nil && !alreadyExists(err) {
			return fmt.Errorf("create table %s: %w", s.table.Sanitize(), err)
		}
		if info, err = readTableConn(ctx, c, s.table); err != nil || info == nil {
			return fmt.Errorf("read table %s after creating it: %v", s.table.Sanitize(), err)
		}
	}
	if err := s.check(info); err != nil {
		return fmt.Errorf("table %s does not fit the pipeline:\n  %w", s.table.Sanitize(), err)
	}
	s.uuids = make([]bool, len(s.cols))
	for i, name := range s.cols {
		if tc := info.column(name); tc != nil && tc.typName == "uuid" && (s.kinds[i] == kString || s.kinds[i] == kLargeString) {
			s.uuids[i] = true
		}
	}
	if s.cfg.Mode == "upsert" {
		s.merge = s.mergeSQL()
	}
	s.dedupe = s.dedupeSQL()
	if _, err := c.Exec(ctx, offsetsSQL(s.offsets)); err != nil && !alreadyExists(err) {
		return fmt.Errorf("create offsets table %s: %w", s.offsets.Sanitize(), err)
	}
	if s.res.DeadLetters != nil {
		if _, err := c.Exec(ctx, rejectedSQL(rejectedTable(s.offsets))); err != nil && !alreadyExists(err) {
			return fmt.Errorf("create table %s: %w", rejectedTable(s.offsets).Sanitize(), err)
		}
	}
	return nil
}

func (s *Sink) mergeSQL() string {
	cols := quoteList(s.cols)
	var b strings.Builder
	fmt.Fprintf(&b, "insert into %s (%s) select %s from %s on conflict (%s) ", s.table.Sanitize(), cols, cols, s.stage.Sanitize(), quoteList(s.cfg.Key))
	var set []string
	if s.cfg.OnConflict == "update" {
		for _, c := range s.cols {
			if !contains(s.cfg.Key, c) && !contains(s.cfg.Keep, c) {
				q := pgx.Identifier{c}.Sanitize()
				set = append(set, q+" = excluded."+q)
			}
		}
	}
	if len(set) == 0 {
		b.WriteString("do nothing")
	} else {
		b.WriteString("do update set " + strings.Join(set, ", "))
	}
	return b.String()
}

// dedupeSQL inserts the staged rows the table does not hold yet. Rows are
// compared on every column, except a dead letter's time (when it was
// refused, which differs on a replay).
func (s *Sink) dedupeSQL() string {
	var cond []string
	for _, c := range s.cols {
		if s.deadLetterInput && c == types.DeadTime {
			continue
		}
		q := pgx.Identifier{c}.Sanitize()
		cond = append(cond, "t."+q+" is not distinct from s."+q)
	}
	cols := quoteList(s.cols)
	return fmt.Sprintf("insert into %s (%s) select %s from %s s where not exists (select 1 from %s t where %s)",
		s.table.Sanitize(), cols, cols, s.stage.Sanitize(), s.table.Sanitize(), strings.Join(cond, " and "))
}

func alreadyExists(err error) bool {
	pe := pgErr(err)
	// Two processes creating the same table at once: one sees a unique
	// violation on the catalog, or "already exists".
	return pe != nil && (pe.Code == "42P07" || pe.Code == "23505" || pe.Code == "42710")
}

func (s *Sink) failed() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Sink) fail(err error) {
	s.err.CompareAndSwap(nil, &err)
}

// Write hands b to the worker of its source partition (or the next one).
func (s *Sink) Write(ctx context.Context, b batch.Batch) error {
	if err := s.failed(); err != nil {
		b.Release(err)
		return err
	}
	if s.closed {
		err := errors.New("postgres sink: write after close")
		b.Release(err)
		return err
	}
	if b.Rows() == 0 && !(b.Final && len(positionsOf(b.Ack)) > 0) {
		// Nothing to write and no positions to store.
		if b.Rec != nil {
			b.Rec.Release()
		}
		b.Ack.Done(nil)
		return nil
	}
	// What the workers hold is charged to the pipeline's budget until the
	// transaction commits; bounded by rows_per_transaction and the
	// workers' queues, so it is charged without waiting.
	n := b.Bytes()
	s.res.Memory.Charge(n)
	w := s.pick(b)
	select {
	case w.in <- held{b: b, bytes: n}:
		return nil
	case <-ctx.Done():
		s.res.Memory.Release(n)
		b.Release(ctx.Err())
		return ctx.Err()
	}
}

// sinkMetrics are the sink's instruments (runtime/metrics's catalogue).
type sinkMetrics struct {
	rows    op.Counter
	latency op.Histogram
	retries op.Counter
	conns   op.Gauge
}

func newSinkMetrics(m op.Metrics) sinkMetrics {
	typ := op.Label{Name: "type", Value: "postgres"}
	return sinkMetrics{
		rows:    m.Counter("flowrun_sink_rows_written_total", "Rows a sink stored.", typ),
		latency: m.Histogram("flowrun_sink_commit_latency_seconds", "Time a sink took to store one batch durably (one transaction).", op.LatencyBuckets, typ),
		retries: m.Counter("flowrun_sink_retries_total", "Writes a sink retried after a retryable error.", typ),
		conns:   m.Gauge("flowrun_sink_connections_in_use", "Connections a sink holds open.", typ),
	}
}

// held is a batch a worker holds, with the bytes charged for it.
type held struct {
	b     batch.Batch
	bytes int64
}

// pick keeps each source partition on one worker so its transactions
// commit in order. An upsert without positions keeps every batch on one
// worker so the last version of a key wins; appends spread freely.
func (s *Sink) pick(b batch.Batch) *worker {
	if len(s.workers) == 1 {
		return s.workers[0]
	}
	if ps := positionsOf(b.Ack); len(ps) > 0 {
		var h maphash.Hash
		h.SetSeed(s.seed)
		h.WriteString(ps[0].Source)
		h.WriteString(ps[0].Topic)
		h.WriteString(strconv.Itoa(int(ps[0].Partition)))
		return s.workers[h.Sum64()%uint64(len(s.workers))]
	}
	if s.cfg.Mode == "upsert" {
		return s.workers[0]
	}
	return s.workers[s.rr.Add(1)%uint64(len(s.workers))]
}

// Flush commits every batch written so far and reports a failure.
func (s *Sink) Flush(ctx context.Context) error {
	if err := s.failed(); err != nil {
		return err
	}
	if s.closed {
		return nil
	}
	replies := make([]chan struct{}, len(s.workers))
	for i, w := range s.workers {
		replies[i] = make(chan struct{})
		select {
		case w.flush <- replies[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, r := range replies {
		select {
		case <-r:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.failed()
}

// Close commits what is pending, stops the workers (giving up on retries
// when ctx ends) and closes the pool. Safe to call twice.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closed = true
		for _, w := range s.workers {
			close(w.in)
		}
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.cancel()
			<-done
		}
		s.cancel()
		s.pool.Close()
		s.closeErr = s.failed()
	})
	return s.closeErr
}

// worker owns one stream of transactions.
type worker struct {
	s     *Sink
	in    chan held
	flush chan chan struct{}
}

// closes tells whether a transaction may end after b: b is the last piece
// of its ack's rows, or carries no positions. An ack's pieces are committed
// together, so its rows are never stored without its positions.
// A dead-letter sink hears of one input from several nodes, some of whose
// pieces are never final (a sink's refused rows): it commits any batch,
// and writes replays without duplicates instead (see readStored).
func (s *Sink) closes(b batch.Batch) bool {
	return s.deadLetterInput || b.Final || len(positionsOf(b.Ack)) == 0
}

func (w *worker) run() {
	defer w.s.wg.Done()
	var (
		pend  []held
		rows  int
		timer = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	// commit writes the pending batches up to the last one that closes its
	// ack (all of them when all is set: the input ended).
	commit := func(all bool) {
		end := len(pend)
		if !all {
			for end > 0 && !w.s.closes(pend[end-1].b) {
				end--
			}
		}
		if end == 0 {
			if len(pend) > 0 {
				timer.Reset(w.s.cfg.FlushInterval) // look again later
			}
			return
		}
		timer.Stop()
		w.s.commit(pend[:end])
		rest := append([]held(nil), pend[end:]...)
		pend, rows = rest, 0
		for _, h := range pend {
			rows += h.b.Rows()
		}
		if len(pend) > 0 {
			timer.Reset(w.s.cfg.FlushInterval)
		}
	}
	add := func(h held) {
		if len(pend) == 0 {
			timer.Reset(w.s.cfg.FlushInterval)
		}
		pend = append(pend, h)
		rows += h.b.Rows()
		if rows >= w.s.cfg.TxnRows {
			commit(false)
		}
	}
	for {
		select {
		case h, ok := <-w.in:
			if !ok {
				commit(true)
				return
			}
			add(h)
		case <-timer.C:
			commit(false)
		case reply := <-w.flush:
			// Everything written before Flush is in the channel already.
		drain:
			for {
				select {
				case h, ok := <-w.in:
					if !ok {
						break drain
					}
					add(h)
				default:
					break drain
				}
			}
			commit(false)
			close(reply)
		}
	}
}

// reject is one row the database refused.
type reject struct {
	ref    rowRef
	reason string
}

// commit writes pend in one transaction (retrying), sends refused rows to
// the dead-letter output and acknowledges every batch.
func (s *Sink) commit(hs []held) {
	if len(hs) == 0 {
		return
	}
	pend := make([]batch.Batch, len(hs))
	for i, h := range hs {
		pend[i] = h.b
	}
	release := func(err error) {
		for _, h := range hs {
			h.b.Release(err)
			s.res.Memory.Release(h.bytes)
		}
	}
	if err := s.failed(); err != nil {
		release(err)
		return
	}
	t0 := time.Now()
	rejects, err := s.writeRetrying(pend)
	if err == nil {
		s.metrics.latency.Observe(time.Since(t0).Seconds())
		rows := 0
		for _, b := range pend {
			rows += b.Rows()
		}
		s.metrics.rows.Add(float64(rows - len(rejects)))
		s.metrics.conns.Set(float64(s.pool.Stat().TotalConns()))
	}
	if err == nil && len(rejects) > 0 {
		err = s.deadLetters(pend, rejects)
	}
	if err != nil {
		s.fail(err)
	}
	release(err)
}

func (s *Sink) deadLetters(pend []batch.Batch, rejects []reject) error {
	var buf []byte
	for _, r := range rejects {
		b := pend[r.ref.b]
		buf = s.enc.AppendRow(buf[:0], b.Rec, int(r.ref.r))
		b.Ack.Retain(1)
		if err := s.res.DeadLetters.Reject(b.Ack, string(buf), r.reason); err != nil {
			b.Ack.Done(err)
			return fmt.Errorf("postgres sink: dead letter: %w", err)
		}
	}
	return nil
}

// writeRetrying runs the transaction until it commits, fails for good, or
// retry_for has passed.
func (s *Sink) writeRetrying(pend []batch.Batch) ([]reject, error) {
	deadline := time.Now().Add(s.cfg.RetryFor)
	backoff := s.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		rejects, err := s.writeTxn(s.ctx, pend)
		if err == nil {
			if attempt > 1 {
				s.log().Info("postgres: transaction committed after retries", "attempts", attempt)
			}
			return rejects, nil
		}
		err = redactErr(err, s.cfg.URL)
		if !retryable(err) || s.ctx.Err() != nil {
			return nil, fmt.Errorf("postgres sink: table %s: %w", s.table.Sanitize(), err)
		}
		if time.Now().Add(backoff).After(deadline) {
			return nil, fmt.Errorf("postgres sink: table %s: gave up after %d attempts over %s: %w", s.table.Sanitize(), attempt, s.cfg.RetryFor, err)
		}
		s.metrics.retries.Add(1)
		s.log().Warn("postgres: transaction failed, retrying", "table", s.table.Sanitize(), "attempt", attempt, "in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
			return nil, fmt.Errorf("postgres sink: table %s: stopped while retrying: %w", s.table.Sanitize(), err)
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (s *Sink) log() interface {
	Info(string, ...any)
	Warn(string, ...any)
} {
	if s.res.Log != nil {
		return s.res.Log
	}
	return nopLog{}
}

type nopLog struct{}

func (nopLog) Info(string, ...any) {}
func (nopLog) Warn(string, ...any) {}

// retryable tells a transient failure (the connection, the server going
// away, a serialization failure or deadlock) from a permanent one.
func retryable(err error) bool {
	var f *fatal
	if errors.As(err, &f) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if pe := pgErr(err); pe != nil {
		switch {
		case pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock
			return true
		case strings.HasPrefix(pe.Code, "08"): // connection exception
			return true
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "53300": // shutdown, starting, too many connections
			return true
		}
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	// Anything else that is not a PostgreSQL error came from the network
	// layer (a closed connection, a reset): retry.
	return true
}

// rowError tells whether err is about the data of some row (so splitting
// the transaction isolates it) rather than the connection or the SQL.
func rowError(err error) bool {
	var re *rowErr
	if errors.As(err, &re) {
		return true
	}
	pe := pgErr(err)
	if pe == nil {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "21": // data exception, integrity constraint, cardinality
		return true
	}
	return pe.Code == "54000" // program limit exceeded (e.g. index row too large)
}

// rowErr is a row pgx cannot encode for its column (an invalid uuid).
type rowErr struct {
	at  int // index in the rows being written
	msg string
}

func (e *rowErr) Error() string { return e.msg }

var copyLine = regexp.MustCompile(`^COPY [^,]+, line (\d+)`)

// failedRow returns the index (in the rows written) that err names, if any.
func failedRow(err error, n int) (int, bool) {
	var re *rowErr
	if errors.As(err, &re) && re.at >= 0 && re.at < n {
		return re.at, true
	}
	if pe := pgErr(err); pe != nil {
		if m := copyLine.FindStringSubmatch(pe.Where); m != nil {
			if line, err := strconv.Atoi(m[1]); err == nil && line >= 1 && line <= n {
				return line - 1, true
			}
		}
	}
	return 0, false
}

// reason is the dead-letter reason for a refused row: PostgreSQL's message
// (the stage's name replaced by the table's, where the stage refused it).
func (s *Sink) reason(err error) string {
	return strings.ReplaceAll(reason(err), `"`+stageName+`"`, `"`+s.table[len(s.table)-1]+`"`)
}

func reason(err error) string {
	var re *rowErr
	if errors.As(err, &re) {
		return re.msg
	}
	if pe := pgErr(err); pe != nil {
		msg := pe.Message
		// "Failing row contains (…)" repeats the record, and would differ
		// between a first attempt and a replay (kept columns): left out.
		if pe.Detail != "" && !strings.HasPrefix(pe.Detail, "Failing row contains") {
			msg += " (" + pe.Detail + ")"
		}
		if pe.ColumnName != "" && !strings.Contains(msg, pe.ColumnName) {
			msg += " [column " + pe.ColumnName + "]"
		}
		return "postgres: " + msg + " (SQLSTATE " + pe.Code + ")"
	}
	return err.Error()
}

// rowRef is one row of the pending batches; fb, fr is the row whose keep
// columns it takes (the first of its key in the transaction).
type rowRef struct{ b, r, fb, fr int32 }

// writeTxn writes pend (minus what is already stored) in one transaction.
func (s *Sink) writeTxn(ctx context.Context, pend []batch.Batch) ([]reject, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	var (
		rejects []reject
		bad     = map[rowRef]bool{}
	)
	// Usually one pass. When rows are refused, they are found by probes in
	// transactions of their own that are rolled back (savepoints would do
	// too, but hundreds of subtransactions in one transaction make every
	// row check of PostgreSQL slow), and the transaction runs again
	// without them.
	for attempt := 0; ; attempt++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return nil, err
		}
		eo, err := s.readStored(ctx, tx, pend)
		if err != nil {
			_ = tx.Rollback(context.Background())
			return nil, err
		}
		rows, dd := s.plan(pend, eo)
		rows, dd = without(rows, bad), without(dd, bad)
		if len(rows) > 0 {
			err = s.writeRows(ctx, tx, pend, rows, false, len(dd) > 0)
		}
		if err == nil && len(dd) > 0 {
			err = s.writeRows(ctx, tx, pend, dd, true, false)
		}
		if err == nil {
			err = s.storePositions(ctx, tx, eo)
		}
		if err == nil {
			err = s.storeRejected(ctx, tx, pend, rejects)
		}
		if err == nil {
			if err := tx.Commit(ctx); err != nil {
				return nil, err
			}
			return rejects, nil
		}
		_ = tx.Rollback(context.Background())
		if !rowError(err) || attempt >= 3 {
			return nil, err
		}
		before := len(rejects)
		if err := s.isolate(ctx, conn, pend, rows, false, &rejects); err != nil {
			return nil, err
		}
		if err := s.isolate(ctx, conn, pend, dd, true, &rejects); err != nil {
			return nil, err
		}
		if len(rejects) == before {
			return nil, err // no single row fails alone: not a row's fault
		}
		for _, r := range rejects[before:] {
			bad[r.ref] = true
		}
		if s.res.DeadLetters == nil {
			r := rejects[0]
			rec := s.enc.AppendRow(nil, pend[r.ref.b].Rec, int(r.ref.r))
			return nil, &fatal{fmt.Errorf("row rejected (%s) and the node has no dead_letter output to keep it: %s", r.reason, truncate(string(rec), 300))}
		}
	}
}

func without(rows []rowRef, bad map[rowRef]bool) []rowRef {
	if len(bad) == 0 {
		return rows
	}
	out := rows[:0:0]
	for _, r := range rows {
		if !bad[r] {
			out = append(out, r)
		}
	}
	return out
}

// isolate finds the rows PostgreSQL refuses among rows: it writes them in
// a transaction that is rolled back, and when that fails on a row's data
// splits them (at the row the error names, else in halves) until each bad
// row stands alone; those are added to out with the database's reason.
func (s *Sink) isolate(ctx context.Context, conn *pgxpool.Conn, pend []batch.Batch, rows []rowRef, dedupe bool, out *[]reject) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	err = s.writeRows(ctx, tx, pend, rows, dedupe, false)
	if rbErr := tx.Rollback(ctx); rbErr != nil && err == nil {
		return rbErr
	}
	switch {
	case err == nil:
		return nil
	case !rowError(err):
		return err
	case len(rows) == 1:
		*out = append(*out, reject{ref: rows[0], reason: s.reason(err)})
		return nil
	}
	if i, ok := failedRow(err, len(rows)); ok {
		// The error names the row: it is bad, the others are probed on.
		if err := s.isolate(ctx, conn, pend, rows[:i], dedupe, out); err != nil {
			return err
		}
		*out = append(*out, reject{ref: rows[i], reason: s.reason(err)})
		return s.isolate(ctx, conn, pend, rows[i+1:], dedupe, out)
	}
	mid := len(rows) / 2
	if err := s.isolate(ctx, conn, pend, rows[:mid], dedupe, out); err != nil {
		return err
	}
	return s.isolate(ctx, conn, pend, rows[mid:], dedupe, out)
}

// fatal marks an error no retry can fix.
type fatal struct{ err error }

func (f *fatal) Error() string { return f.err.Error() }
func (f *fatal) Unwrap() error { return f.err }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// writeRows copies rows into the table (append) or into the stage and
// merges them (upsert), or with dedupe inserts from the stage the rows the
// table does not hold yet. clear empties the stage afterwards, for use
// when the stage is used twice in one transaction (a commit empties it
// otherwise).
func (s *Sink) writeRows(ctx context.Context, tx pgx.Tx, pend []batch.Batch, rows []rowRef, dedupe, clear bool) error {
	src := s.newSource(pend, rows)
	staged := dedupe || s.cfg.Mode == "upsert"
	target := s.table
	if staged {
		target = s.stage
	}
	_, err := tx.CopyFrom(ctx, target, s.cols, src)
	if err != nil {
		if src.err != nil {
			return src.err
		}
		return err
	}
	if !staged {
		return nil
	}
	then := s.merge
	if dedupe {
		then = s.dedupe
	}
	if _, err := tx.Exec(ctx, then); err != nil {
		return err
	}
	if clear {
		// (delete, not truncate: a truncate under a savepoint makes a new
		// file each time)
		_, err = tx.Exec(ctx, "delete from "+s.stage.Sanitize())
	}
	return err
}

// plan lists the rows to write (rows) and, for an append, those to write
// only if the table does not hold them yet (dd): batches already stored are
// left out, and for an upsert only the last row of each key is kept (last
// wins).
func (s *Sink) plan(pend []batch.Batch, eo *eoState) (rows, dd []rowRef) {
	n := 0
	for _, b := range pend {
		n += b.Rows()
	}
	rows = make([]rowRef, 0, n)
	for bi, b := range pend {
		act := eo.action(bi)
		if act == doSkip {
			continue
		}
		for r := range b.Rows() {
			ref := rowRef{int32(bi), int32(r), int32(bi), int32(r)}
			if act == doDedupe {
				dd = append(dd, ref)
			} else {
				rows = append(rows, ref)
			}
		}
	}
	if s.cfg.Mode != "upsert" || len(rows) < 2 {
		return rows, dd
	}
	last := make(map[string]int, len(rows))
	first := make(map[string]int, len(rows))
	keys := make([]string, len(rows))
	nullKey := make([]bool, len(rows))
	var buf []byte
	for i, ref := range rows {
		k, ok := s.keyOf(pend[ref.b].Rec, int(ref.r), &buf)
		if !ok {
			nullKey[i] = true
			continue
		}
		keys[i] = k
		last[k] = i
		if _, seen := first[k]; !seen {
			first[k] = i
		}
	}
	if len(last) == len(rows) {
		return rows, dd
	}
	out := make([]rowRef, 0, len(last))
	for i, ref := range rows {
		if nullKey[i] || last[keys[i]] == i {
			if !nullKey[i] {
				f := rows[first[keys[i]]]
				ref.fb, ref.fr = f.b, f.r
			}
			out = append(out, ref)
		}
	}
	return out, dd
}

// keyOf renders row's key columns as one string; ok is false when a key
// column is null (such a row is written as is and refused by the table).
func (s *Sink) keyOf(rec arrow.RecordBatch, row int, buf *[]byte) (string, bool) {
	if len(s.keyIdx) == 1 {
		col := rec.Column(s.keyIdx[0])
		if col.IsNull(row) {
			return "", false
		}
		if str, ok := col.(*array.String); ok {
			return str.Value(row), true
		}
	}
	b := (*buf)[:0]
	for _, i := range s.keyIdx {
		col := rec.Column(i)
		if col.IsNull(row) {
			return "", false
		}
		b = append(b, col.ValueStr(row)...)
		b = append(b, 0)
	}
	*buf = b
	return string(b), true
}

// copySource is pgx's CopyFromSource over Arrow columns.
type copySource struct {
	s    *Sink
	rows []rowRef
	cols [][]column // per batch, per column
	i    int
	vals []any
	err  error
}

func (s *Sink) newSource(pend []batch.Batch, rows []rowRef) *copySource {
	src := &copySource{s: s, rows: rows, i: -1, vals: make([]any, len(s.cols)), cols: make([][]column, len(pend))}
	for bi, b := range pend {
		if b.Rec == nil {
			continue // a position marker
		}
		cs := make([]column, len(s.cols))
		for c := range cs {
			cs[c] = column{kind: s.kinds[c], arr: b.Rec.Column(c)}
		}
		src.cols[bi] = cs
	}
	return src
}

func (c *copySource) Next() bool {
	c.i++
	return c.i < len(c.rows)
}

func (c *copySource) Values() ([]any, error) {
	ref := c.rows[c.i]
	cols := c.cols[ref.b]
	for i := range cols {
		var v any
		if c.s.keep[i] {
			v = c.cols[ref.fb][i].value(int(ref.fr))
		} else {
			v = cols[i].value(int(ref.r))
		}
		if c.s.uuids[i] && v != nil {
			u, ok := parseUUID(v.(string))
			if !ok {
				c.err = &rowErr{at: c.i, msg: fmt.Sprintf("postgres: invalid input syntax for type uuid: %q [column %s]", v, c.s.cols[i])}
				return nil, c.err
			}
			v = u
		}
		c.vals[i] = v
	}
	return c.vals, nil
}

func (c *copySource) Err() error { return nil }

// parseUUID accepts what PostgreSQL's uuid input accepts in practice: 32
// hex digits, optionally hyphenated in groups and wrapped in braces.
func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
		s = s[1 : len(s)-1]
	}
	n := 0
	hi := true
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == '-' {
			if i == 0 || i == len(s)-1 || !hi || s[i-1] == '-' {
				return u, false
			}
			continue
		}
		var v byte
		switch {
		case ch >= '0' && ch <= '9':
			v = ch - '0'
		case ch >= 'a' && ch <= 'f':
			v = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			v = ch - 'A' + 10
		default:
			return u, false
		}
		if n >= 16 {
			return u, false
		}
		if hi {
			u[n] = v << 4
		} else {
			u[n] |= v
			n++
		}
		hi = !hi
	}
	return u, n == 16 && hi
}
