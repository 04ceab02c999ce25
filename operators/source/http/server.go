package httpsrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/operators/codec/jsondec"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

// Config is the source's configuration; zero values take the defaults.
type Config struct {
	Listen, Path, BatchPath string
	// Schema is the schema of a post, without the stamp column.
	Schema *arrow.Schema
	Stamp  string
	// MaxBody bounds a request body in bytes.
	MaxBody int64
	// MaxBodyMemory bounds the bytes of all request bodies held at once
	// (being read or being decoded).
	MaxBodyMemory int64
	// MaxInflight bounds the requests reading or waiting for their acks.
	MaxInflight int
	AckTimeout  time.Duration
	// ReadTimeout bounds reading one request; ReadHeaderTimeout is half of it.
	ReadTimeout time.Duration
	// Linger is how long a coalesced batch waits for more rows (5ms).
	Linger time.Duration
	// ShutdownTimeout bounds a graceful stop: finishing requests, then
	// waiting for the acks of emitted batches (default min(AckTimeout, 10s)).
	ShutdownTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.BatchPath == "" {
		c.BatchPath = DefaultBatchPath
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxBodyMemory <= 0 {
		c.MaxBodyMemory = max(DefaultMaxBodyMemory, c.MaxBody)
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.Linger <= 0 {
		c.Linger = DefaultLinger
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = min(c.AckTimeout, 10*time.Second)
	}
}

// ErrStopping fails requests that arrive or still wait while the source stops.
var ErrStopping = errors.New("the ingest API is stopping")

// waiter is one request waiting for the ack of the batch holding its rows.
// It is answered exactly once through done.
type waiter struct {
	rows int
	at   time.Time         // arrival, for the stamp column
	done chan error        // buffered: the ack callback never blocks
	rec  arrow.RecordBatch // rows of its own (a batch request, rows sent again), nil for shared-decoder rows
	// sent counts the emissions of its rows; alone asks for a batch of its
	// own (to find out whose rows a sink rejected).
	sent  int
	alone bool
}

// emission is one emitted batch and the requests whose rows it holds, in
// row order. rec is kept (only when several requests share the batch) until
// the ack, to send the rows of the others again if a sink rejects some.
type emission struct {
	rec     arrow.RecordBatch
	rows    int
	waiters []*waiter
}

// rejectedPost is the answer of a request one of whose posts a sink can
// never store (op.RejectedRows): 422, nothing of the request stored.
type rejectedPost struct {
	index  int // the post within its request, -1 when unknown
	reason string
}

func (e *rejectedPost) Error() string { return "post can never be stored: " + e.reason }

// Source is the http source. Run serves until its context ends; it is also
// an http.Handler so tests can drive it without a listener.
type Source struct {
	cfg      Config
	res      op.Resources
	schema   *arrow.Schema // output schema
	stampCol int           // -1 without a stamp column
	log      *slog.Logger

	sem         chan struct{} // one slot per request decoding or waiting for its ack
	budget      *budget       // bytes of request bodies in memory
	stopping    atomic.Bool   // readyz fails; new requests get 503
	abandon     chan struct{} // closed when waiting requests must give up
	stopCtx     context.Context
	stopAll     context.CancelFunc // cancels stopCtx with abandon
	abandonOnce sync.Once
	ready       chan struct{}
	addr        atomic.Pointer[string]

	mu      sync.Mutex
	dec     *jsondec.Decoder // shared decoder of single posts
	shared  []*waiter        // requests whose rows are in dec, in order
	parts   []*waiter        // batch requests with their own records
	rows    int              // rows pending in dec and parts
	closed  bool             // no more rows accepted
	wake    chan struct{}    // cap 1: rows arrived or the batch is full
	decPool chan *jsondec.Decoder

	pendingAcks atomic.Int64 // emitted batches whose acks have not run
	stored      atomic.Int64 // rows whose acks succeeded (op.StoredRows)
	metrics     *requestMetrics
}

// New returns an http source; it listens only when Run starts.
func New(cfg Config, r op.Resources) (*Source, error) {
	cfg.defaults()
	if cfg.Schema == nil {
		return nil, errors.New("http: no schema")
	}
	out, err := OutputSchema(cfg.Schema, cfg.Stamp)
	if err != nil {
		return nil, err
	}
	if r.Alloc == nil {
		r.Alloc = memory.DefaultAllocator
	}
	if r.Clock == nil {
		r.Clock = op.SystemClock{}
	}
	if r.BatchRows <= 0 {
		r.BatchRows = 1024
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	s := &Source{
		cfg: cfg, res: r, schema: out, stampCol: -1, log: r.Log, metrics: newRequestMetrics(r.MetricsOrNop()),
		sem:     make(chan struct{}, cfg.MaxInflight),
		budget:  newBudget(cfg.MaxBodyMemory),
		abandon: make(chan struct{}),
		ready:   make(chan struct{}),
		wake:    make(chan struct{}, 1),
		decPool: make(chan *jsondec.Decoder, 8),
	}
	s.stopCtx, s.stopAll = context.WithCancel(context.Background())
	if cfg.Stamp != "" {
		s.stampCol = out.FieldIndices(cfg.Stamp)[0]
	}
	s.dec = jsondec.NewDecoder(out, r.Alloc, jsondec.Options{})
	return s, nil
}

// Schema is the output schema (the post schema plus the stamp column).
func (s *Source) Schema() *arrow.Schema { return s.schema }

// Ready is closed once Run listens.
func (s *Source) Ready() <-chan struct{} { return s.ready }

// Addr is the address Run listens on (after Ready), e.g. "127.0.0.1:8080".
func (s *Source) Addr() string {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// Run serves the API and emits batches until ctx ends, then stops
// gracefully: it stops accepting connections, lets running requests finish,
// emits the pending batch, waits (bounded) for the acks in flight, and
// returns nil. An Emit error ends Run with that error.
func (s *Source) Run(ctx context.Context, out op.Output) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.releaseAll()
		return fmt.Errorf("http: %w", err)
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: max(s.cfg.ReadTimeout/2, time.Millisecond),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.ReadTimeout + s.cfg.AckTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	close(s.ready)
	s.log.Info("ingest API listening", "addr", addr, "path", s.cfg.Path, "batch_path", s.cfg.BatchPath)

	var runErr error
	runErr = s.loop(ctx, out, ctx.Done(), serveErr)

	// Graceful stop: no new connections; running requests still get their
	// rows flushed by the loop while Shutdown waits for them.
	s.stopping.Store(true)
	s.stopAll() // requests waiting for body memory give up now
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)
	shCtx, cancel := context.WithDeadline(context.Background(), deadline)
	shutDone := make(chan error, 1)
	go func() { shutDone <- srv.Shutdown(shCtx) }()
	emitCtx := context.WithoutCancel(ctx)
	if runErr == nil {
		s.signal(true) // rows pending when the first loop ended
		runErr = s.loop(emitCtx, out, nil, shutDone)
	} else {
		// The pipeline failed: answer every waiting request now.
		s.failPending(runErr)
		s.abandonOnce.Do(func() { close(s.abandon); s.stopAll() })
		<-shutDone
	}
	cancel()
	if err := srv.Close(); err != nil {
		s.log.Debug("closing server", "err", err)
	}
	<-serveErr

	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if err := s.flush(emitCtx, out); err != nil && runErr == nil {
		runErr = err
	}
	// Wait for the acks of emitted batches, bounded.
	for s.pendingAcks.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := s.pendingAcks.Load(); n > 0 {
		s.log.Warn("stopped with batches not yet acknowledged", "batches", n)
	}
	s.abandonOnce.Do(func() { close(s.abandon); s.stopAll() })
	// Every request holding a slot now finishes promptly; take all slots so
	// none still uses a decoder when they are released.
	for range cap(s.sem) {
		s.sem <- struct{}{}
	}
	s.releaseAll()
	return runErr
}

// loop flushes batches until stop is closed or done delivers.
func (s *Source) loop(ctx context.Context, out op.Output, stop <-chan struct{}, done <-chan error) error {
	var (
		timer  *time.Timer
		timerC <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-stop:
			return nil
		case err := <-done:
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		case <-s.wake:
			s.mu.Lock()
			rows := s.rows
			s.mu.Unlock()
			switch {
			// A full batch goes at once; so does anything when no batch
			// is in flight, since waiting then only adds latency. While
			// one is in flight, posts gather for up to Linger.
			case rows >= s.res.BatchRows || (rows > 0 && s.pendingAcks.Load() == 0):
				timerC = nil
				if err := s.flush(ctx, out); err != nil {
					return err
				}
			case rows > 0 && timerC == nil:
				if timer == nil {
					timer = time.NewTimer(s.cfg.Linger)
				} else {
					timer.Reset(s.cfg.Linger)
				}
				timerC = timer.C
			}
		case <-timerC:
			timerC = nil
			if err := s.flush(ctx, out); err != nil {
				return err
			}
		}
	}
}

// flush emits every pending row: the rows of single posts and of batch
// requests together in one batch, and requests that must go alone each in
// a batch of their own. Each batch's ack answers the requests in it.
func (s *Source) flush(ctx context.Context, out op.Output) error {
	s.mu.Lock()
	if s.rows == 0 {
		s.mu.Unlock()
		return nil
	}
	var recs []arrow.RecordBatch
	var waiters, alone []*waiter
	if s.dec.Rows() > 0 {
		recs = append(recs, s.dec.Flush())
	}
	waiters = append(waiters, s.shared...)
	for _, p := range s.parts {
		if p.alone {
			alone = append(alone, p)
			continue
		}
		recs = append(recs, p.rec)
		p.rec = nil
		waiters = append(waiters, p)
	}
	s.shared, s.parts, s.rows = s.shared[:0], s.parts[:0], 0
	s.mu.Unlock()

	var first error
	if len(waiters) > 0 {
		first = s.emit(ctx, out, recs, waiters)
	}
	for _, w := range alone {
		rec := w.rec
		w.rec = nil
		if first != nil {
			rec.Release()
			w.done <- first
			continue
		}
		first = s.emit(ctx, out, []arrow.RecordBatch{rec}, []*waiter{w})
	}
	return first
}

// emit sends recs (consumed) as one batch answering waiters.
func (s *Source) emit(ctx context.Context, out op.Output, recs []arrow.RecordBatch, waiters []*waiter) error {
	rec, err := s.assemble(recs, waiters)
	if err != nil {
		for _, w := range waiters {
			w.done <- err
		}
		return err
	}
	em := &emission{rows: int(rec.NumRows()), waiters: waiters}
	if len(waiters) > 1 {
		rec.Retain()
		em.rec = rec
	}
	for _, w := range waiters {
		w.sent++
	}
	s.pendingAcks.Add(1)
	ack := batch.NewAck(func(err error) {
		s.settle(em, err)
		s.pendingAcks.Add(-1)
	})
	if err := out.Emit(ctx, batch.Batch{Rec: rec, Ack: ack}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return nil
}

// settle answers the requests of an emitted batch from its ack. A sink that
// stored some rows and failed others (op.FailedRows) fails only the
// requests of the failed rows. A sink that
// rejected rows it can never store (op.RejectedRows) stored none of the
// batch: the requests those rows came from get 422, and the rows of the
// others are sent again, so one bad post never fails its neighbours. When a
// transform changed the rows on the way, the indexes are not the source's:
// every request is then sent again alone, and the one rejected alone is
// the one at fault.
func (s *Source) settle(em *emission, err error) {
	defer func() {
		if em.rec != nil {
			em.rec.Release()
		}
	}()
	if err == nil {
		s.stored.Add(int64(em.rows))
		for _, w := range em.waiters {
			w.done <- nil
		}
		return
	}
	var fr *op.FailedRows
	if errors.As(err, &fr) && fr.Rows == em.rows && len(em.waiters) > 1 {
		// Some rows were stored and some not (an outage of part of the
		// store): requests whose rows were all stored are done; the others
		// get the failure, and their clients retry.
		row, k, failed := 0, 0, 0
		for _, w := range em.waiters {
			lo, hi := row, row+w.rows
			row = hi
			for k < len(fr.Index) && fr.Index[k] < lo {
				k++
			}
			if k < len(fr.Index) && fr.Index[k] < hi {
				failed++
				w.done <- err
				continue
			}
			s.stored.Add(int64(w.rows))
			w.done <- nil
		}
		s.log.Warn("posts not stored", "requests", failed, "of_requests", len(em.waiters), "rows", len(fr.Index), "err", fr.Err)
		return
	}
	var rj *op.RejectedRows
	if !errors.As(err, &rj) || len(rj.Index) == 0 {
		s.log.Warn("posts not stored", "requests", len(em.waiters), "rows", em.rows, "err", err)
		for _, w := range em.waiters {
			w.done <- err
		}
		return
	}
	if len(em.waiters) == 1 {
		w := em.waiters[0]
		index := -1 // unknown: a transform changed the rows on the way
		switch {
		case w.rows == 1:
			index = 0
		case rj.Rows == em.rows:
			index = rj.Index[0]
		}
		s.reject(w, index, rj.Reasons[0])
		return
	}
	if rj.Rows != em.rows {
		row := 0
		for _, w := range em.waiters {
			s.resend(w, em.rec.NewSlice(int64(row), int64(row+w.rows)), true, err)
			row += w.rows
		}
		return
	}
	row, k := 0, 0
	for _, w := range em.waiters {
		lo, hi := row, row+w.rows
		row = hi
		for k < len(rj.Index) && rj.Index[k] < lo {
			k++
		}
		if k < len(rj.Index) && rj.Index[k] < hi {
			s.reject(w, rj.Index[k]-lo, rj.Reasons[k])
			continue
		}
		s.resend(w, em.rec.NewSlice(int64(lo), int64(hi)), false, err)
	}
}

func (s *Source) reject(w *waiter, index int, reason string) {
	s.log.Warn("post rejected: it can never be stored", "index", index, "posts_in_request", w.rows, "reason", reason)
	w.done <- &rejectedPost{index: index, reason: reason}
}

// resend queues w's rows (rec, consumed) for the next batch; alone asks for
// a batch of their own. A request is sent at most three times.
func (s *Source) resend(w *waiter, rec arrow.RecordBatch, alone bool, cause error) {
	if w.sent >= 3 {
		rec.Release()
		w.done <- cause
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		rec.Release()
		w.done <- ErrStopping
		return
	}
	w.rec, w.alone = rec, alone
	s.parts = append(s.parts, w)
	before := s.rows
	s.rows += w.rows
	s.signal(before == 0 || s.rows >= s.res.BatchRows)
	s.mu.Unlock()
}

// assemble joins recs (consuming them) and fills the stamp column's nulls
// with each request's arrival time.
func (s *Source) assemble(recs []arrow.RecordBatch, waiters []*waiter) (arrow.RecordBatch, error) {
	rec := recs[0]
	if len(recs) > 1 {
		var err error
		rec, err = concat(s.res.Alloc, s.schema, recs)
		for _, r := range recs {
			r.Release()
		}
		if err != nil {
			return nil, fmt.Errorf("http: joining batches: %w", err)
		}
	}
	if s.stampCol < 0 {
		return rec, nil
	}
	col := rec.Column(s.stampCol).(*array.Timestamp)
	if col.NullN() == 0 {
		return rec, nil
	}
	unit := col.DataType().(*arrow.TimestampType).Unit
	b := array.NewTimestampBuilder(s.res.Alloc, col.DataType().(*arrow.TimestampType))
	defer b.Release()
	b.Reserve(col.Len())
	row := 0
	for _, w := range waiters {
		ts, err := arrow.TimestampFromTime(w.at, unit)
		if err != nil {
			ts = 0
		}
		for range w.rows {
			if col.IsNull(row) {
				b.Append(ts)
			} else {
				b.Append(col.Value(row))
			}
			row++
		}
	}
	for ; row < col.Len(); row++ { // not reached: waiters cover every row
		b.AppendNull()
	}
	arr := b.NewArray()
	defer arr.Release()
	cols := make([]arrow.Array, rec.NumCols())
	copy(cols, rec.Columns())
	cols[s.stampCol] = arr
	stamped := array.NewRecordBatch(s.schema, cols, rec.NumRows())
	rec.Release()
	return stamped, nil
}

func concat(alloc memory.Allocator, schema *arrow.Schema, recs []arrow.RecordBatch) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, schema.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	parts := make([]arrow.Array, len(recs))
	var n int64
	for _, r := range recs {
		n += r.NumRows()
	}
	for i := range cols {
		for k, r := range recs {
			parts[k] = r.Column(i)
		}
		c, err := array.Concatenate(parts, alloc)
		if err != nil {
			return nil, err
		}
		cols[i] = c
	}
	return array.NewRecordBatch(schema, cols, n), nil
}

// failPending stops accepting rows and fails every request whose rows
// were not emitted yet with err.
func (s *Source) failPending(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPendingLocked(err)
}

func (s *Source) failPendingLocked(err error) {
	s.closed = true
	if s.dec != nil && s.dec.Rows() > 0 {
		s.dec.Flush().Release()
	}
	for _, p := range s.parts {
		if p.rec != nil {
			p.rec.Release()
			p.rec = nil
		}
		p.done <- err
	}
	for _, w := range s.shared {
		w.done <- err
	}
	s.parts, s.shared, s.rows = nil, nil, 0
}

// releaseAll frees the decoders and any rows never emitted.
func (s *Source) releaseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPendingLocked(ErrStopping)
	if s.dec != nil {
		s.dec.Release()
		s.dec = nil
	}
	for {
		select {
		case d := <-s.decPool:
			d.Release()
		default:
			return
		}
	}
}

// StoredRows implements op.StoredRows: the posts stored, each counted once
// however often it was sent.
func (s *Source) StoredRows() int64 { return s.stored.Load() }

// Close implements op.Closer. Run releases everything itself; Close frees
// the decoder of a source that was built but never run. Call it only when
// Run is not running.
func (s *Source) Close(context.Context) error {
	s.stopAll()
	s.releaseAll()
	return nil
}

// ---- HTTP ----

// serve routes one request (ServeHTTP measures it).
func (s *Source) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case s.cfg.Path:
		s.ingest(w, r, false)
	case s.cfg.BatchPath:
		s.ingest(w, r, true)
	case "/healthz":
		if !getOnly(w, r) {
			return
		}
		writeJSON(w, http.StatusOK, okBody)
	case "/readyz":
		if !getOnly(w, r) {
			return
		}
		switch {
		case s.stopping.Load():
			writeError(w, http.StatusServiceUnavailable, "stopping")
		case len(s.sem) >= cap(s.sem):
			writeError(w, http.StatusServiceUnavailable, "saturated: too many requests waiting for acknowledgement")
		default:
			writeJSON(w, http.StatusOK, okBody)
		}
	default:
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	}
}

var okBody = []byte(`{"status":"ok"}` + "\n")

func getOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET")
	return false
}

// postError is a 400 about one post.
type postError struct {
	index int
	field string
	msg   string
}

func (e *postError) Error() string { return e.msg }

func (s *Source) ingest(w http.ResponseWriter, r *http.Request, many bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use POST")
		return
	}
	ndjson, msg := contentType(r.Header.Get("Content-Type"))
	if msg != "" {
		writeError(w, http.StatusUnsupportedMediaType, msg)
		return
	}
	if r.ContentLength > s.cfg.MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is larger than max_body (%d)", r.ContentLength, s.cfg.MaxBody))
		return
	}
	if s.stopping.Load() {
		writeError(w, http.StatusServiceUnavailable, ErrStopping.Error())
		return
	}
	// The body is read before the request takes an in-flight slot, so slow
	// senders (bounded by read_timeout and by the body budget) never keep
	// real clients out.
	arrived := s.res.Clock.Now()
	body, rerr := s.readBody(w, r)
	if rerr != nil {
		// The rest of the body was not read: the connection cannot be reused.
		w.Header().Set("Connection", "close")
		if rerr.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, rerr.status, rerr.msg)
		return
	}
	released := false
	defer func() {
		if !released {
			s.releaseBody(body)
		}
	}()
	select {
	case s.sem <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "too many requests waiting for acknowledgement; retry later")
		return
	}
	defer func() { <-s.sem }()

	wt := &waiter{at: arrived, done: make(chan error, 1)}
	var err error
	if many {
		err = s.addBatch(body.bytes(), ndjson, wt)
	} else {
		err = s.addOne(body.bytes(), wt)
	}
	// The decoders copied the posts: the body's memory goes back now, not
	// after the (much longer) wait for the ack.
	s.releaseBody(body)
	released = true
	if err != nil {
		var pe *postError
		if errors.As(err, &pe) {
			writePostError(w, pe)
			return
		}
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	timer := time.NewTimer(s.cfg.AckTimeout)
	defer timer.Stop()
	select {
	case err = <-wt.done:
	case <-timer.C:
		err = fmt.Errorf("posts not confirmed as stored within ack_timeout (%s); they may still be written", s.cfg.AckTimeout)
	case <-s.abandon:
		// The ack may have been answered just before the source gave up
		// on the rest: its reason is the better answer.
		select {
		case err = <-wt.done:
		default:
			err = ErrStopping
		}
	case <-r.Context().Done():
		return // the client is gone
	}
	if err != nil {
		var rp *rejectedPost
		if errors.As(err, &rp) {
			writePostErrorStatus(w, http.StatusUnprocessableEntity, &postError{index: rp.index, msg: rp.Error()})
			return
		}
		writeError(w, http.StatusServiceUnavailable, "posts not stored: "+err.Error())
		return
	}
	if wt.rows == 1 {
		writeJSON(w, http.StatusOK, acceptedOne)
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"accepted":`+strconv.Itoa(wt.rows)+"}\n"))
}

var acceptedOne = []byte(`{"accepted":1}` + "\n")

// contentType accepts JSON and NDJSON in UTF-8 (no charset parameter, or
// utf-8); otherwise it returns the 415 message.
func contentType(ct string) (ndjson bool, msg string) {
	const want = "; use application/json or application/x-ndjson"
	if ct == "" {
		return false, "missing Content-Type" + want
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, "unsupported Content-Type " + strconv.Quote(ct) + want
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return false, "unsupported charset " + strconv.Quote(cs) + ": posts must be UTF-8"
	}
	switch mt {
	case "application/json":
		return false, ""
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
		return true, ""
	}
	return false, "unsupported Content-Type " + strconv.Quote(ct) + want
}

// addOne appends one post to the shared decoder.
func (s *Source) addOne(body []byte, w *waiter) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrStopping
	}
	if err := s.dec.Append(body); err != nil {
		s.mu.Unlock()
		pe := decodeError(0, err)
		if t := firstByte(body); t == '[' {
			pe.msg += "; send several posts to " + s.cfg.BatchPath
		}
		return pe
	}
	w.rows = 1
	s.shared = append(s.shared, w)
	s.rows++
	s.signal(s.rows == 1 || s.rows >= s.res.BatchRows)
	s.mu.Unlock()
	return nil
}

// addBatch decodes a batch body into its own record (all or nothing) and
// queues it for the next batch.
func (s *Source) addBatch(body []byte, ndjson bool, w *waiter) error {
	d := s.getDecoder()
	var n int
	var err error
	add := func(i int, post []byte) error {
		if err := d.Append(post); err != nil {
			return decodeError(i, err)
		}
		return nil
	}
	switch {
	case !ndjson && firstByte(body) == '[':
		n, err = splitArray(body, add)
	case isOneValue(body):
		// One object, perhaps pretty-printed over several lines.
		n, err = 1, add(0, body)
		if err != nil {
			n = 0
		}
	default:
		n, err = splitLines(body, add)
	}
	if err == nil && n == 0 {
		err = &postError{index: 0, msg: "the request holds no posts"}
	}
	rec := d.Flush()
	s.putDecoder(d)
	if err != nil {
		rec.Release()
		return err
	}
	w.rows, w.rec = n, rec
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		rec.Release()
		w.rec = nil
		return ErrStopping
	}
	s.parts = append(s.parts, w)
	before := s.rows
	s.rows += n
	s.signal(before == 0 || s.rows >= s.res.BatchRows)
	s.mu.Unlock()
	return nil
}

func (s *Source) signal(cond bool) {
	if !cond {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Source) getDecoder() *jsondec.Decoder {
	select {
	case d := <-s.decPool:
		return d
	default:
		return jsondec.NewDecoder(s.schema, s.res.Alloc, jsondec.Options{})
	}
}

func (s *Source) putDecoder(d *jsondec.Decoder) {
	s.mu.Lock()
	closed := s.closed && s.dec == nil
	s.mu.Unlock()
	if !closed {
		select {
		case s.decPool <- d:
			return
		default:
		}
	}
	d.Release()
}

// decodeError turns a jsondec error into a postError naming the field.
func decodeError(index int, err error) *postError {
	msg := err.Error()
	pe := &postError{index: index, msg: msg}
	if rest, ok := strings.CutPrefix(msg, "field '"); ok {
		if end := strings.IndexByte(rest, '\''); end >= 0 {
			pe.field = strings.TrimSuffix(rest[:end], "[]")
		}
	}
	return pe
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b := append([]byte(`{"error":`), quoteJSON(msg)...)
	writeJSON(w, status, append(b, "}\n"...))
}

func writePostError(w http.ResponseWriter, e *postError) {
	writePostErrorStatus(w, http.StatusBadRequest, e)
}

func writePostErrorStatus(w http.ResponseWriter, status int, e *postError) {
	b := append([]byte(`{"error":`), quoteJSON(e.msg)...)
	if e.field != "" {
		b = append(b, `,"field":`...)
		b = append(b, quoteJSON(e.field)...)
	}
	if e.index >= 0 {
		b = append(b, `,"index":`...)
		b = strconv.AppendInt(b, int64(e.index), 10)
	}
	writeJSON(w, status, append(b, "}\n"...))
}

func quoteJSON(s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		return []byte(`""`)
	}
	return b
}
