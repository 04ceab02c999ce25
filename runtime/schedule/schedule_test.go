package schedule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/metrics"
)

// fakeClock is a simulated clock: Now moves only by Set/Add; After fires
// when the clock passes its deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	return ch
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func (c *fakeClock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

func sched(t *testing.T, cron string, opts ast.ScheduleOpts) *validate.Schedule {
	t.Helper()
	var errs source.Errors
	s := validate.ParseSchedule(&ast.Pipeline{Schedule: cron, ScheduleOpts: opts}, &errs)
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	return s
}

func opt(v string) ast.Scalar { return ast.Scalar{Value: v, Set: true} }

func day(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }

// recorder is a RunFunc that records its jobs and fails as told.
type recorder struct {
	mu    sync.Mutex
	jobs  []Job
	fail  func(j Job) error
	block chan struct{} // when set, runs wait for it to close
}

func (r *recorder) run(ctx context.Context, j Job) (Result, error) {
	r.mu.Lock()
	r.jobs = append(r.jobs, j)
	r.mu.Unlock()
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	if r.fail != nil {
		if err := r.fail(j); err != nil {
			return Result{}, err
		}
	}
	return Result{Rows: map[string]int64{"src": 10, "out": 9}}, nil
}

func (r *recorder) intervals() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, j := range r.jobs {
		out = append(out, fmt.Sprintf("%s %s #%d %s", j.Pipeline.Name, j.Interval.Start.Format("01-02T15"), j.Attempt, j.Trigger))
	}
	return out
}

func newStore(t *testing.T) *Store {
	t.Helper()
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func history(t *testing.T, st *Store) []string {
	t.Helper()
	h, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range h.Runs {
		out = append(out, fmt.Sprintf("%s %s..%s #%d %s %s", r.Pipeline, r.Start.Format("01-02T15"), r.End.Format("01-02T15"), r.Attempt, r.Trigger, r.Status))
	}
	return out
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestCatchUpInOrder: started days after its start date, a daily pipeline
// runs the newest `catchup` missed intervals oldest first (recording the
// older ones as skipped), one at a time, then each new day when it ends.
func TestCatchUpInOrder(t *testing.T) {
	st := newStore(t)
	clock := &fakeClock{now: day(25).Add(90 * time.Minute)}
	rec := &recorder{}
	p := Pipeline{Name: "daily", File: "daily.yaml", Sched: sched(t, "@daily", ast.ScheduleOpts{Start: opt("2026-11-20"), Catchup: opt("3")})}
	s := New(st, []Pipeline{p}, Options{Clock: clock, Run: rec.run, MaxActive: 4})
	if err := s.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	eq(t, "runs", rec.intervals(), []string{"daily 11-22T00 #1 schedule", "daily 11-23T00 #1 schedule", "daily 11-24T00 #1 schedule"})
	if v := rec.jobs[2].Interval.Vars(); v["INTERVAL_START"] != "2026-11-24T00:00:00Z" || v["INTERVAL_END"] != "2026-11-25T00:00:00Z" || v["INTERVAL_DATE"] != "2026-11-24" {
		t.Fatalf("vars %v", v)
	}
	// Nothing more is due until the 25th ends.
	next, started, err := s.Step()
	if err != nil || started != 0 || !next.Equal(day(26)) {
		t.Fatalf("Step = %v, %d, %v; want nothing until %v", next, started, err, day(26))
	}
	clock.Set(day(26).Add(time.Second))
	if err := s.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	eq(t, "history", history(t, st), []string{
		"daily 11-20T00..11-22T00 #0 schedule skipped",
		"daily 11-22T00..11-23T00 #1 schedule succeeded",
		"daily 11-23T00..11-24T00 #1 schedule succeeded",
		"daily 11-24T00..11-25T00 #1 schedule succeeded",
		"daily 11-25T00..11-26T00 #1 schedule succeeded",
	})
	h, _ := st.Load()
	if r := h.Runs[1]; r.Rows["out"] != 9 || r.Started.IsZero() || r.Ended.IsZero() || r.PID != os.Getpid() {
		t.Fatalf("run record %+v", r)
	}
}

// TestTimeZone: @daily in Europe/Paris runs intervals from local midnight.
func TestTimeZone(t *testing.T) {
	st := newStore(t)
	clock := &fakeClock{now: time.Date(2026, 11, 24, 23, 30, 0, 0, time.UTC)} // 00:30 in Paris on the 25th
	rec := &recorder{}
	p := Pipeline{Name: "paris", Sched: sched(t, "@daily", ast.ScheduleOpts{Timezone: opt("Europe/Paris")})}
	s := New(st, []Pipeline{p}, Options{Clock: clock, Run: rec.run})
	if err := s.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.jobs) != 1 {
		t.Fatalf("jobs %v", rec.intervals())
	}
	v := rec.jobs[0].Interval.Vars()
	if v["INTERVAL_START"] != "2026-11-24T00:00:00+01:00" || v["INTERVAL_END"] != "2026-11-25T00:00:00+01:00" {
		t.Fatalf("vars %v", v)
	}
}

// TestRetryBackoff: a failed run is retried after retry_backoff, then after
// twice that, ...; newer intervals wait (in order); when the retries are
// used up the interval stays failed and the next one runs.
func TestRetryBackoff(t *testing.T) {
	st := newStore(t)
	t0 := day(25).Add(time.Minute)
	clock := &fakeClock{now: t0}
	failures := map[string]int{"11-24": 3} // every attempt at the 24th fails
	rec := &recorder{fail: func(j Job) error {
		if failures[j.Interval.Start.Format("01-02")] > 0 {
			return errors.New("hbase down")
		}
		return nil
	}}
	p := Pipeline{Name: "p", Sched: sched(t, "@daily", ast.ScheduleOpts{Retries: opt("2"), RetryBackoff: opt("10m"), MaxBackoff: opt("15m")})}
	reg := metrics.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	s := New(st, []Pipeline{p}, Options{Clock: clock, Run: rec.run, Metrics: reg})
	step := func(at time.Duration, wantStarted int, wantNext time.Duration) {
		t.Helper()
		clock.Set(t0.Add(at))
		next, started, err := s.Step()
		if err != nil {
			t.Fatal(err)
		}
		s.Wait()
		if started != wantStarted || !next.Equal(t0.Add(wantNext)) {
			t.Fatalf("at +%v: started %d, next +%v; want %d, +%v", at, started, next.Sub(t0), wantStarted, wantNext)
		}
	}
	step(0, 1, 0)                           // attempt 1 fails at +0
	step(9*time.Minute, 0, 10*time.Minute)  // back-off 10m
	step(10*time.Minute, 1, 10*time.Minute) // attempt 2 fails at +10m
	step(24*time.Minute, 0, 25*time.Minute) // back-off 20m, capped at max_backoff 15m
	step(25*time.Minute, 1, 25*time.Minute) // attempt 3 fails: retries used up
	// The 24th stays failed; the next run is the 25th, due when it ends.
	step(26*time.Minute, 0, 24*time.Hour-time.Minute)
	step(24*time.Hour, 1, 24*time.Hour)
	eq(t, "runs", rec.intervals(), []string{"p 11-24T00 #1 schedule", "p 11-24T00 #2 retry", "p 11-24T00 #3 retry", "p 11-25T00 #1 schedule"})
	eq(t, "history", history(t, st), []string{
		"p 11-24T00..11-25T00 #1 schedule failed",
		"p 11-24T00..11-25T00 #2 retry failed",
		"p 11-24T00..11-25T00 #3 retry failed",
		"p 11-25T00..11-26T00 #1 schedule succeeded",
	})
	h, _ := st.Load()
	if r := h.Runs[0]; r.Error != "hbase down" || !r.Ended.Equal(t0) {
		t.Fatalf("failed run %+v", r)
	}
	// The runs are in the metrics the FlowrunScheduledRunFailed alert reads.
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`flowrun_schedule_runs_total{pipeline="p",status="failed"} 3`,
		`flowrun_schedule_runs_total{pipeline="p",status="succeeded"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var last float64
	if _, after, ok := strings.Cut(string(b), `flowrun_schedule_last_success_timestamp_seconds{pipeline="p"} `); !ok {
		t.Error("no last success time")
	} else if fmt.Sscan(strings.SplitN(after, "\n", 2)[0], &last); int64(last) != t0.Add(24*time.Hour).Unix() {
		t.Errorf("last success %v, want %d", last, t0.Add(24*time.Hour).Unix())
	}
}

// TestConcurrencyLimit: at most MaxActive runs at once over all pipelines,
// one per pipeline; a waiting pipeline starts when a slot frees.
// permanentErr is a failure a retry would repeat (op.PermanentError).
type permanentErr struct{}

func (permanentErr) Error() string   { return "dedupe: max_keys reached" }
func (permanentErr) Permanent() bool { return true }

// TestPermanentFailureIsNotRetried: a run failing with an error that a retry
// would repeat (a bound the day's data exceeds) is recorded final and not
// retried, even with retries left; the next interval still runs. Its shards
// are treated alike.
func TestPermanentFailureIsNotRetried(t *testing.T) {
	for _, shards := range []int{0, 2} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			st := newStore(t)
			t0 := day(25).Add(time.Minute)
			clock := &fakeClock{now: t0}
			rec := &recorder{fail: func(j Job) error {
				if j.Interval.Start.Day() == 24 {
					return fmt.Errorf("node unique: %w", permanentErr{})
				}
				return nil
			}}
			p := Pipeline{Name: "p", Shards: shards, Sched: sched(t, "@daily", ast.ScheduleOpts{Retries: opt("3"), RetryBackoff: opt("10m")})}
			s := New(st, []Pipeline{p}, Options{Clock: clock, Run: rec.run})
			for _, at := range []time.Duration{0, time.Second, 10 * time.Minute, 30 * time.Minute, 2 * time.Hour, 24 * time.Hour, 24*time.Hour + time.Second} {
				clock.Set(t0.Add(at))
				if _, _, err := s.Step(); err != nil {
					t.Fatal(err)
				}
				s.Wait()
			}
			h, _ := st.Load()
			var on24, on25 int
			for _, r := range h.Runs {
				switch r.Start.Day() {
				case 24:
					on24++
					if r.Status != Failed || !r.Final || r.Attempt != 1 || !strings.Contains(r.Error, "max_keys") {
						t.Errorf("run of the 24th: %+v, want attempt 1 failed for good", r)
					}
				case 25:
					on25++
					if r.Status != Succeeded {
						t.Errorf("run of the 25th: %s", r.Status)
					}
				}
			}
			want := max(shards, 1)
			if on24 != want || on25 != want {
				t.Errorf("runs of the 24th %d, of the 25th %d; want %d each (no retry):\n%v", on24, on25, want, history(t, st))
			}
		})
	}
}

func TestConcurrencyLimit(t *testing.T) {
	st := newStore(t)
	clock := &fakeClock{now: day(25).Add(time.Minute)}
	rec := &recorder{block: make(chan struct{})}
	var ps []Pipeline
	for _, n := range []string{"a", "b", "c"} {
		ps = append(ps, Pipeline{Name: n, Sched: sched(t, "@hourly", ast.ScheduleOpts{Start: opt("2026-11-24T22:00")})})
	}
	s := New(st, ps, Options{Clock: clock, Run: rec.run, MaxActive: 2})
	next, started, err := s.Step()
	if err != nil || started != 2 || !next.Equal(clock.Now()) {
		t.Fatalf("Step = %v, %d, %v", next, started, err)
	}
	if _, started, _ := s.Step(); started != 0 {
		t.Fatalf("second Step started %d with every slot taken", started)
	}
	close(rec.block)
	if err := s.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Two intervals (22h, 23h) each for three pipelines, in order per pipeline.
	got := rec.intervals()
	if len(got) != 6 {
		t.Fatalf("runs %v", got)
	}
	for _, n := range []string{"a", "b", "c"} {
		var mine []string
		for _, g := range got {
			if strings.HasPrefix(g, n+" ") {
				mine = append(mine, g)
			}
		}
		eq(t, n, mine, []string{n + " 11-24T22 #1 schedule", n + " 11-24T23 #1 schedule"})
	}
}

// TestRunLoop: Run wakes on the simulated clock, runs each day's interval
// as the day ends, and a stop interrupts the run going (recorded so).
func TestRunLoop(t *testing.T) {
	st := newStore(t)
	clock := &fakeClock{now: day(25).Add(time.Minute)}
	ran := make(chan Job, 10)
	hold := make(chan struct{})
	run := func(ctx context.Context, j Job) (Result, error) {
		ran <- j
		if j.Interval.Start.Equal(day(26)) {
			<-ctx.Done() // the third run hangs until the scheduler stops
			return Result{}, ctx.Err()
		}
		<-hold
		return Result{}, nil
	}
	p := Pipeline{Name: "p", Sched: sched(t, "@daily", ast.ScheduleOpts{})}
	s := New(st, []Pipeline{p}, Options{Clock: clock, Run: run})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	close(hold)
	if j := <-ran; !j.Interval.Start.Equal(day(24)) {
		t.Fatalf("first run %v", j.Interval)
	}
	for _, d := range []int{25, 26} {
		// Wait until the scheduler sleeps on the clock, then move it.
		for waitFor(clock) {
		}
		clock.Set(day(d + 1).Add(time.Second))
		if j := <-ran; !j.Interval.Start.Equal(day(d)) {
			t.Fatalf("run %v, want the %dth", j.Interval, d)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	eq(t, "history", history(t, st), []string{
		"p 11-24T00..11-25T00 #1 schedule succeeded",
		"p 11-25T00..11-26T00 #1 schedule succeeded",
		"p 11-26T00..11-27T00 #1 schedule interrupted",
	})
}

// waitFor reports true while the scheduler has not yet asked the clock to
// wake it (sleeping a little between looks).
func waitFor(c *fakeClock) bool {
	c.mu.Lock()
	n := len(c.waiters)
	c.mu.Unlock()
	if n == 0 {
		time.Sleep(time.Millisecond)
		return true
	}
	return false
}

// TestShardedIntervals: a pipeline with Shards 3 runs an interval as three
// shard runs within MaxActive, retries a failed shard alone after its
// back-off, and counts the interval succeeded only when all three did.
func TestShardedIntervals(t *testing.T) {
	st := newStore(t)
	t0 := day(25).Add(time.Minute)
	clock := &fakeClock{now: t0}
	failed := false
	rec := &recorder{fail: func(j Job) error {
		if j.Shard == "2/3" && !failed {
			failed = true
			return errors.New("hbase down")
		}
		return nil
	}}
	p := Pipeline{Name: "p", Shards: 3, Sched: sched(t, "@daily", ast.ScheduleOpts{Retries: opt("2"), RetryBackoff: opt("10m")})}
	s := New(st, []Pipeline{p}, Options{Clock: clock, Run: rec.run, MaxActive: 2})
	succeeded := func() bool {
		h, err := st.Load()
		if err != nil {
			t.Fatal(err)
		}
		_, ok := h.Succeeded("p", day(24))
		return ok
	}
	step := func(at time.Duration, wantStarted int, wantNext time.Duration) {
		t.Helper()
		clock.Set(t0.Add(at))
		next, started, err := s.Step()
		if err != nil {
			t.Fatal(err)
		}
		if s.Active() > 2 {
			t.Fatalf("%d runs at once, MaxActive 2", s.Active())
		}
		s.Wait()
		if started != wantStarted || !next.Equal(t0.Add(wantNext)) {
			t.Fatalf("at +%v: started %d, next +%v; want %d, +%v", at, started, next.Sub(t0), wantStarted, wantNext)
		}
	}
	step(0, 2, 0) // shards 1 and 2 (fails); 3 waits for a slot
	if succeeded() {
		t.Fatal("interval succeeded with a shard failed and one not run")
	}
	step(0, 1, 10*time.Minute) // shard 3; shard 2's back-off
	if succeeded() {
		t.Fatal("interval succeeded with shard 2 failed")
	}
	step(10*time.Minute, 1, 10*time.Minute) // shard 2 retried
	if !succeeded() {
		t.Fatal("interval not succeeded after all shards did")
	}
	step(11*time.Minute, 0, 24*time.Hour-time.Minute) // nothing left; next: the 25th
	rec.mu.Lock()
	var jobs []string
	for _, j := range rec.jobs {
		jobs = append(jobs, fmt.Sprintf("%s [%s] #%d %s", j.Interval.Start.Format("01-02"), j.Shard, j.Attempt, j.Trigger))
	}
	rec.mu.Unlock()
	sortStrings(jobs[:2])
	eq(t, "jobs", jobs, []string{"11-24 [1/3] #1 schedule", "11-24 [2/3] #1 schedule", "11-24 [3/3] #1 schedule", "11-24 [2/3] #2 retry"})
	h, _ := st.Load()
	var ids []string
	for _, r := range h.Runs {
		ids = append(ids, r.ID+" "+string(r.Status))
	}
	sortStrings(ids)
	eq(t, "history", ids, []string{
		"p@2026-11-24T00:00:00Z[1/3]#1 succeeded", "p@2026-11-24T00:00:00Z[2/3]#1 failed",
		"p@2026-11-24T00:00:00Z[2/3]#2 succeeded", "p@2026-11-24T00:00:00Z[3/3]#1 succeeded"})
}

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}
