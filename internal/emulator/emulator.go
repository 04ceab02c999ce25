// Package emulator drives the ingest API the way a fleet of producers
// would: it posts Pinterest records drawn from the seeded posts generator
// (the same seed sends the same records), at a chosen overall rate with
// random (exponential) gaps, from several concurrent posters, and retries
// with exponential back-off and jitter on 408, 429, 502-504 and connection
// errors, honouring Retry-After. One failed request never stops a run: a
// post that still fails after MaxRetries retries is counted as failed with
// its reason. Run returns a Report of what was sent, accepted, rejected,
// retried and failed, the achieved rate and latency percentiles.
//
// `flowrun emulate` is a thin command over Run.
package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowrun/flowrun/operators/source/generate/posts"
)

// Config describes one run. Zero values take the defaults noted.
type Config struct {
	// URL is the single-post endpoint, e.g. http://127.0.0.1:8080/v1/posts.
	URL string
	// Batch > 1 sends Batch posts per request as NDJSON to BatchURL
	// (default: URL + "/batch").
	Batch    int
	BatchURL string
	// Rate is the overall target in posts per second; 0 sends as fast as the
	// posters can.
	Rate float64
	// Posters is the number of concurrent workers (default 8).
	Posters int
	// Count is the number of posts to send; 0 means no limit (then Duration
	// or the context ends the run).
	Count int64
	// Duration stops dispatching new posts after this long (0: no limit).
	// Requests already started still finish, with their retries.
	Duration time.Duration
	// Seed selects the generated posts; equal seeds send equal posts.
	Seed int64
	// MaxRetries is how often one request is retried before its posts count
	// as failed (default 8).
	MaxRetries int
	// Backoff is the first retry delay, doubling up to MaxBackoff
	// (defaults 50ms and 5s); each delay is jittered to 50–100%.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one attempt (default 30s).
	Timeout time.Duration
	// Client is the HTTP client (default: one with a pooled transport).
	Client *http.Client
	// Progress, when set, receives a one-line status every ProgressEvery
	// (default 250ms), each starting with '\r', and a final newline.
	Progress      io.Writer
	ProgressEvery time.Duration
}

func (c *Config) defaults() error {
	if c.URL == "" {
		return errors.New("emulator: no URL")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("emulator: URL %q must be http(s)://host:port/path", c.URL)
	}
	if c.Batch > 1 && c.BatchURL == "" {
		c.BatchURL = strings.TrimSuffix(c.URL, "/") + "/batch"
	}
	if c.Batch < 1 {
		c.Batch = 1
	}
	if c.Posters <= 0 {
		c.Posters = 8
	}
	if c.Rate < 0 || c.Count < 0 || c.Duration < 0 {
		return errors.New("emulator: rate, count and duration must not be negative")
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = 8
	}
	if c.Backoff <= 0 {
		c.Backoff = 50 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 250 * time.Millisecond
	}
	return nil
}

// Latency holds percentiles of accepted requests in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Report is what a run did. Counts are posts unless named requests.
type Report struct {
	Sent     int64 `json:"sent"`     // posts sent at least once
	Accepted int64 `json:"accepted"` // posts the API confirmed (200)
	Rejected int64 `json:"rejected"` // posts refused for good (4xx other than 408 and 429)
	// RejectedBy counts rejected posts by "status reason".
	RejectedBy map[string]int64 `json:"rejected_by,omitempty"`
	Requests   int64            `json:"requests"` // HTTP attempts, retries included
	Retried    int64            `json:"retried"`  // retry attempts
	// RetriedBy counts retry attempts by reason ("429", "503", "connection refused" ...).
	RetriedBy map[string]int64 `json:"retried_by,omitempty"`
	Failed    int64            `json:"failed"` // posts given up after MaxRetries
	// FailedBy counts failed posts by the reason of their last attempt.
	FailedBy map[string]int64 `json:"failed_by,omitempty"`
	// LastError is an example of the most recent failure, for diagnosis.
	LastError string `json:"last_error,omitempty"`

	Elapsed time.Duration `json:"-"`
	Seconds float64       `json:"elapsed_seconds"`
	// Rate is the achieved send rate (posts sent per second); AcceptedRate
	// counts accepted posts only.
	Rate         float64 `json:"rate"`
	AcceptedRate float64 `json:"accepted_rate"`
	// Latency is of accepted requests: the successful attempt only.
	Latency Latency `json:"latency"`
}

// String renders the report for a terminal.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent      %d posts in %d requests over %s (%.1f posts/s)\n", r.Sent, r.Requests, r.Elapsed.Round(time.Millisecond), r.Rate)
	fmt.Fprintf(&b, "accepted  %d (%.1f/s)\n", r.Accepted, r.AcceptedRate)
	fmt.Fprintf(&b, "rejected  %d%s\n", r.Rejected, breakdown(r.RejectedBy))
	fmt.Fprintf(&b, "retried   %d attempts%s\n", r.Retried, breakdown(r.RetriedBy))
	fmt.Fprintf(&b, "failed    %d%s\n", r.Failed, breakdown(r.FailedBy))
	if r.LastError != "" {
		fmt.Fprintf(&b, "last error: %s\n", r.LastError)
	}
	fmt.Fprintf(&b, "latency   p50 %.1fms  p95 %.1fms  p99 %.1fms  max %.1fms\n", r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max)
	return b.String()
}

func breakdown(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// job is one request's worth of posts.
type job struct {
	body []byte
	n    int
}

type run struct {
	cfg    Config
	client *http.Client
	start  time.Time

	sent, accepted, rejected, requests, retried, failed atomic.Int64

	mu         sync.Mutex
	rejectedBy map[string]int64
	retriedBy  map[string]int64
	failedBy   map[string]int64
	lastError  string
	hist       histogram
}

// Run sends posts as cfg says and returns what happened. It returns an error
// only for an invalid configuration; failed requests are in the Report.
// Cancelling ctx stops at once: requests in flight are abandoned and count
// as failed ("cancelled").
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.defaults(); err != nil {
		return Report{}, err
	}
	r := &run{cfg: cfg, client: cfg.Client,
		rejectedBy: map[string]int64{}, retriedBy: map[string]int64{}, failedBy: map[string]int64{}}
	var ownTransport *http.Transport
	if r.client == nil {
		ownTransport = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        cfg.Posters * 2,
			MaxIdleConnsPerHost: cfg.Posters * 2,
			IdleConnTimeout:     90 * time.Second,
		}
		r.client = &http.Client{Transport: ownTransport}
		defer ownTransport.CloseIdleConnections()
	}
	r.start = time.Now()

	jobs := make(chan job, cfg.Posters)
	var wg sync.WaitGroup
	for w := range cfg.Posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(w)+1))
			for j := range jobs {
				r.send(ctx, rng, j)
			}
		}()
	}
	stopProgress := r.progress()
	r.dispatch(ctx, jobs)
	close(jobs)
	wg.Wait()
	stopProgress()
	return r.report(), nil
}

// dispatch generates posts in order and hands them to the posters, paced
// by exponential gaps around the rate with a burst of at most one request
// per poster when the posters fall behind.
func (r *run) dispatch(ctx context.Context, jobs chan<- job) {
	cfg := r.cfg
	gen := posts.New(cfg.Seed)
	gaps := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))
	var p posts.Post
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	var mean, window time.Duration
	if cfg.Rate > 0 {
		mean = time.Duration(float64(cfg.Batch) / cfg.Rate * float64(time.Second))
		window = time.Duration(float64(cfg.Posters) * float64(mean))
	}
	next := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var total int64
	for cfg.Count == 0 || total < cfg.Count {
		n := cfg.Batch
		if cfg.Count > 0 {
			n = int(min(int64(n), cfg.Count-total))
		}
		var body []byte
		for i := range n {
			gen.Next(&p)
			if i > 0 {
				body = append(body, '\n')
			}
			body = posts.AppendJSON(body, &p)
		}
		if cfg.Rate > 0 {
			next = next.Add(time.Duration(gaps.ExpFloat64() * float64(mean)))
			now := time.Now()
			if behind := now.Sub(next); behind > window {
				next = now.Add(-window) // token bucket: cap the catch-up burst
			}
			if wait := next.Sub(now); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-deadline:
					return
				case <-timer.C:
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			return
		case jobs <- job{body: body, n: n}:
			total += int64(n)
			r.sent.Add(int64(n))
		}
	}
}

// send posts one job with retries.
func (r *run) send(ctx context.Context, rng *rand.Rand, j job) {
	target, ctype := r.cfg.URL, "application/json"
	if r.cfg.Batch > 1 {
		target, ctype = r.cfg.BatchURL, "application/x-ndjson"
	}
	var reason, detail string
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			r.fail(j.n, "cancelled", "run cancelled")
			return
		}
		status, retryAfter, why, took, err := r.attempt(ctx, target, ctype, j.body)
		switch {
		case err != nil && ctx.Err() != nil:
			r.fail(j.n, "cancelled", "run cancelled")
			return
		case err != nil:
			reason, detail = classify(err), err.Error()
		case status == http.StatusOK || status == http.StatusAccepted || status == http.StatusCreated:
			r.accepted.Add(int64(j.n))
			r.mu.Lock()
			r.hist.add(took)
			r.mu.Unlock()
			return
		case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout ||
			status == http.StatusServiceUnavailable || status == http.StatusBadGateway || status == http.StatusGatewayTimeout:
			reason, detail = strconv.Itoa(status), fmt.Sprintf("%d %s", status, why)
		default:
			r.rejected.Add(int64(j.n))
			r.mu.Lock()
			bump(r.rejectedBy, strconv.Itoa(status)+" "+why, int64(j.n))
			r.lastError = fmt.Sprintf("%d %s", status, why)
			r.mu.Unlock()
			return
		}
		if attempt >= r.cfg.MaxRetries {
			r.fail(j.n, reason, detail)
			return
		}
		r.retried.Add(1)
		r.mu.Lock()
		bump(r.retriedBy, reason, 1)
		r.mu.Unlock()
		d := min(r.cfg.Backoff<<min(attempt, 30), r.cfg.MaxBackoff)
		d = d/2 + time.Duration(rng.Int64N(int64(d/2)+1)) // jitter: 50–100%
		d = max(d, retryAfter)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			r.fail(j.n, "cancelled", "run cancelled")
			return
		case <-t.C:
		}
	}
}

func (r *run) fail(n int, reason, detail string) {
	r.failed.Add(int64(n))
	r.mu.Lock()
	bump(r.failedBy, reason, int64(n))
	r.lastError = detail
	r.mu.Unlock()
}

// bump adds to m[key], folding keys beyond 50 into "other".
func bump(m map[string]int64, key string, n int64) {
	if _, ok := m[key]; !ok && len(m) >= 50 {
		key = "other"
	}
	m[key] += n
}

// attempt makes one request. why summarises an error response's reason.
func (r *run) attempt(ctx context.Context, target, ctype string, body []byte) (status int, retryAfter time.Duration, why string, took time.Duration, err error) {
	actx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", 0, err
	}
	req.Header.Set("Content-Type", ctype)
	r.requests.Add(1)
	t0 := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, 0, "", 0, err
	}
	defer resp.Body.Close()
	var msg []byte
	if resp.StatusCode >= 300 {
		msg, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	took = time.Since(t0)
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After")), reasonOf(resp.StatusCode, msg), took, nil
}

// reasonOf turns an error body into a short, low-cardinality reason.
func reasonOf(status int, body []byte) string {
	if status < 300 {
		return ""
	}
	var e struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if json.Unmarshal(body, &e) == nil {
		switch {
		case e.Field != "":
			return "field " + e.Field
		case strings.HasPrefix(e.Error, "invalid JSON"):
			return "invalid JSON"
		}
	}
	return strings.ToLower(http.StatusText(status))
}

// parseRetryAfter reads delay-seconds or an HTTP date; at most a minute.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return max(0, min(d, time.Minute))
}

// classify names a transport error without its addresses.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "connection error"
}

func (r *run) report() Report {
	el := time.Since(r.start)
	rep := Report{
		Sent: r.sent.Load(), Accepted: r.accepted.Load(), Rejected: r.rejected.Load(),
		Requests: r.requests.Load(), Retried: r.retried.Load(), Failed: r.failed.Load(),
		Elapsed: el, Seconds: el.Seconds(),
	}
	r.mu.Lock()
	rep.RejectedBy = copyMap(r.rejectedBy)
	rep.RetriedBy = copyMap(r.retriedBy)
	rep.FailedBy = copyMap(r.failedBy)
	rep.LastError = r.lastError
	rep.Latency = Latency{P50: r.hist.quantile(0.50), P95: r.hist.quantile(0.95), P99: r.hist.quantile(0.99), Max: ms(r.hist.max)}
	r.mu.Unlock()
	if s := el.Seconds(); s > 0 {
		rep.Rate = float64(rep.Sent) / s
		rep.AcceptedRate = float64(rep.Accepted) / s
	}
	return rep
}

func copyMap(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// progress writes a status line every ProgressEvery until the returned
// function is called.
func (r *run) progress() (stop func()) {
	w := r.cfg.Progress
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	line := func() {
		sent := r.sent.Load()
		total := ""
		if r.cfg.Count > 0 {
			total = fmt.Sprintf("/%d", r.cfg.Count)
		}
		el := time.Since(r.start).Seconds()
		fmt.Fprintf(w, "\rsent %d%s  accepted %d  rejected %d  retried %d  failed %d  %.0f posts/s   ",
			sent, total, r.accepted.Load(), r.rejected.Load(), r.retried.Load(), r.failed.Load(), float64(sent)/max(el, 1e-9))
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(r.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				line()
				fmt.Fprintln(w)
				return
			case <-t.C:
				line()
			}
		}
	}()
	return func() { close(done); <-finished }
}

// histogram buckets latencies logarithmically (~2% wide) from 10µs to
// about 75 seconds, so memory stays fixed however long a run is.
type histogram struct {
	counts [800]int64
	n      int64
	max    time.Duration
}

const (
	histMin    = 10 * time.Microsecond
	histGrowth = 1.02
)

var logGrowth = math.Log(histGrowth)

func (h *histogram) add(d time.Duration) {
	i := 0
	if d > histMin {
		i = int(math.Log(float64(d)/float64(histMin))/logGrowth) + 1
	}
	i = min(i, len(h.counts)-1)
	h.counts[i]++
	h.n++
	h.max = max(h.max, d)
}

// quantile returns the q-quantile in milliseconds (a bucket's upper bound,
// capped at the maximum seen).
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			up := time.Duration(float64(histMin) * math.Pow(histGrowth, float64(i)))
			return ms(min(up, h.max))
		}
	}
	return ms(h.max)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
