package httpsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Request bodies are read into pooled buffers that grow as bytes arrive
// (4 KiB, doubling, never past the announced Content-Length), never sized
// from the Content-Length up front, and every buffer is charged to a
// budget of body bytes before it is used. A connection that announces
// 1 MiB and sends nothing holds 4 KiB; when the budget is spent, requests
// wait for it (within read_timeout) and then get 503, so cheap connections
// cannot grow the process. The same bytes are charged to the pipeline's
// memory budget (op.Resources.Memory), shared with the queues.
const (
	minBodyBuf   = 4 << 10
	firstBodyBuf = 16 << 10 // largest first buffer, even when more is announced
	bodyClasses  = 11       // pooled sizes minBodyBuf<<0 .. minBodyBuf<<10 (4 MiB)
)

var bodyPools [bodyClasses]sync.Pool

// bodyClass is the smallest pooled size class holding n bytes, or -1 when
// n is larger than every class.
func bodyClass(n int) int {
	for k := range bodyClasses {
		if minBodyBuf<<k >= n {
			return k
		}
	}
	return -1
}

func getBodyBuf(size int) *[]byte {
	if k := bodyClass(size); k >= 0 && minBodyBuf<<k == size {
		if b, ok := bodyPools[k].Get().(*[]byte); ok {
			return b
		}
	}
	b := make([]byte, size)
	return &b
}

func putBodyBuf(b *[]byte) {
	if k := bodyClass(len(*b)); k >= 0 && minBodyBuf<<k == len(*b) {
		bodyPools[k].Put(b)
	}
}

// roundBody rounds n up to a pooled size, or returns n past the largest.
func roundBody(n int) int {
	if k := bodyClass(n); k >= 0 {
		return minBodyBuf << k
	}
	return n
}

// budget bounds the bytes of request bodies in memory. First buffers (at
// most firstBodyBuf each) may also use a reserve of limit/8 beyond limit,
// which growing bodies cannot touch: when large bodies fill the budget,
// small posts still get in.
type budget struct {
	mu      sync.Mutex
	limit   int64
	reserve int64
	used    int64
	waiting int
	changed chan struct{} // closed and replaced on a release while some wait
	spike   atomic.Bool   // used went past a quarter of limit since the last trim
	trimMu  sync.Mutex
	trimmed time.Time
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit, reserve: limit / 8, changed: make(chan struct{})}
}

// room is what a charge may fill: limit, plus the reserve for first buffers.
func (b *budget) room(first bool) int64 {
	if first {
		return b.limit + b.reserve
	}
	return b.limit
}

func (b *budget) tryAcquire(n int64, first bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.room(first) {
		return false
	}
	b.used += n
	if b.used > b.limit/4 {
		b.spike.Store(true)
	}
	return true
}

// acquire waits for n bytes until ctx ends.
func (b *budget) acquire(ctx context.Context, n int64, first bool) error {
	if n > b.room(first) {
		return fmt.Errorf("%d bytes exceed the whole budget", n)
	}
	for {
		b.mu.Lock()
		if b.used+n <= b.room(first) {
			b.used += n
			if b.used > b.limit/4 {
				b.spike.Store(true)
			}
			b.mu.Unlock()
			return nil
		}
		b.waiting++
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
			b.mu.Lock()
			b.waiting--
			b.mu.Unlock()
		case <-ctx.Done():
			b.mu.Lock()
			b.waiting--
			b.mu.Unlock()
			return ctx.Err()
		}
	}
}

// release returns n bytes; it reports whether nothing is in use any more.
func (b *budget) release(n int64) (idle bool) {
	b.mu.Lock()
	b.used -= n
	idle = b.used == 0
	if b.waiting > 0 {
		close(b.changed)
		b.changed = make(chan struct{})
	}
	b.mu.Unlock()
	return idle
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// trim hands memory back to the operating system after a spike of body
// bytes has passed, at most every few seconds: the buffers of the spike are
// garbage (or idle in the pools, which two collections empty), and the Go
// runtime would otherwise return them only slowly.
func (b *budget) trim() {
	if !b.spike.Load() {
		return
	}
	if !b.trimMu.TryLock() {
		return
	}
	defer b.trimMu.Unlock()
	if time.Since(b.trimmed) < 5*time.Second || !b.spike.CompareAndSwap(true, false) {
		return
	}
	b.trimmed = time.Now()
	debug.FreeOSMemory() // pooled buffers move to the pools' victim caches
	debug.FreeOSMemory() // and are freed here
}

// body is a request body in a pooled buffer charged to the budget.
type body struct {
	buf     *[]byte
	n       int
	charged int64
}

func (b *body) bytes() []byte { return (*b.buf)[:b.n] }

// readError is a failed body read with its answer.
type readError struct {
	status int
	msg    string
}

func (e *readError) Error() string { return e.msg }

// readBody reads r's body (at most max_body bytes) into a growing pooled
// buffer charged to the budget. The caller releases it with releaseBody.
func (s *Source) readBody(w http.ResponseWriter, r *http.Request) (*body, *readError) {
	rd := http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	cl := r.ContentLength
	size := minBodyBuf
	if cl > 0 {
		size = roundBody(int(min(cl, firstBodyBuf)))
	}
	b := &body{}
	if err := s.charge(r, b, int64(size)); err != nil {
		return nil, err
	}
	b.buf = getBodyBuf(size)
	for {
		buf := *b.buf
		if b.n == len(buf) {
			if cl >= 0 && int64(b.n) >= cl {
				return b, nil // every announced byte is here
			}
			if int64(b.n) >= s.cfg.MaxBody {
				// Full at max_body: only the end of the body may follow.
				var one [1]byte
				k, err := rd.Read(one[:])
				switch {
				case k == 0 && errors.Is(err, io.EOF):
					return b, nil
				case k == 0 && err == nil:
					continue
				}
				s.releaseBody(b)
				if err == nil {
					err = &http.MaxBytesError{Limit: s.cfg.MaxBody}
				}
				return nil, bodyReadError(err, s.cfg)
			}
			next := min(len(buf)*2, roundBody(int(s.cfg.MaxBody)))
			if cl > 0 {
				next = min(next, roundBody(int(cl)))
			}
			if next <= len(buf) {
				next = len(buf) + minBodyBuf
			}
			if err := s.charge(r, b, int64(next-len(buf))); err != nil {
				s.releaseBody(b)
				return nil, err
			}
			nb := getBodyBuf(next)
			copy(*nb, buf[:b.n])
			putBodyBuf(b.buf)
			b.buf = nb
			buf = *nb
		}
		k, err := rd.Read(buf[b.n:])
		b.n += k
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		s.releaseBody(b)
		return nil, bodyReadError(err, s.cfg)
	}
}

// Waits for body memory. The first buffer of a request may wait up to
// read_timeout: the request holds nothing yet. A buffer that must grow
// waits at most growWait while holding the bytes already read, then the
// request gets 503: with many large bodies arriving at once, none waits for
// the others to finish while holding memory they need (they would all wait
// for read_timeout, and real clients with them).
const growWait = time.Second

// charge adds n bytes to b's share of the source's body budget and of the
// pipeline's memory budget, waiting for them when either is spent.
func (s *Source) charge(r *http.Request, b *body, n int64) *readError {
	if s.budget.tryAcquire(n, b.charged == 0) {
		if s.res.Memory.TryAcquire(n) {
			b.charged += n
			return nil
		}
		s.budget.release(n)
	}
	return s.chargeWait(r, b, n)
}

func (s *Source) chargeWait(r *http.Request, b *body, n int64) *readError {
	var ctx context.Context
	cancel := func() {}
	defer func() { cancel() }()
	wait := func() context.Context {
		if ctx == nil {
			d := s.cfg.ReadTimeout
			if b.charged > 0 {
				d = min(d, growWait)
			}
			var stop func() bool
			c, cancelTimeout := context.WithTimeout(r.Context(), d)
			stop = context.AfterFunc(s.stopCtx, cancelTimeout) // the source stops: give up
			ctx, cancel = c, func() { stop(); cancelTimeout() }
		}
		return ctx
	}
	if first := b.charged == 0; !s.budget.tryAcquire(n, first) {
		if err := s.budget.acquire(wait(), n, first); err != nil {
			if s.stopping.Load() {
				return &readError{status: http.StatusServiceUnavailable, msg: ErrStopping.Error()}
			}
			return &readError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("request bodies in flight fill max_body_memory (%d bytes); retry later", s.cfg.MaxBodyMemory)}
		}
	}
	if mem := s.res.Memory; !mem.TryAcquire(n) {
		if err := mem.Acquire(wait(), n); err != nil {
			s.budget.release(n)
			if s.stopping.Load() {
				return &readError{status: http.StatusServiceUnavailable, msg: ErrStopping.Error()}
			}
			return &readError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("the pipeline's memory budget (%d bytes) is spent; retry later", mem.Limit())}
		}
	}
	b.charged += n
	return nil
}

func (s *Source) releaseBody(b *body) {
	if b == nil || b.buf == nil {
		return
	}
	putBodyBuf(b.buf)
	b.buf = nil
	s.res.Memory.Release(b.charged)
	if s.budget.release(b.charged) {
		s.budget.trim()
	}
	b.charged = 0
}

// bodyReadError answers a failed body read without the error's own text,
// which names socket addresses.
func bodyReadError(err error, cfg Config) *readError {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return &readError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body is larger than max_body (%d bytes)", cfg.MaxBody)}
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &readError{status: http.StatusRequestTimeout, msg: fmt.Sprintf("request body not received within read_timeout (%s)", cfg.ReadTimeout)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &readError{status: http.StatusBadRequest, msg: "the body ended before its Content-Length"}
	}
	return &readError{status: http.StatusBadRequest, msg: "reading the request body failed"}
}
