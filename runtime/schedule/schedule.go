// Package schedule is flowrun's scheduler (what Airflow did for the
// original system): it decides which data intervals of which scheduled
// pipelines are due, runs them (catching up missed intervals in order,
// within a limit; retrying failed runs with exponential back-off; at most
// MaxActive runs at once and one per pipeline), and records every run in a
// durable file-based history beside the pipelines (Store). It knows nothing
// of how a pipeline runs: the caller passes a RunFunc (cmd/flowrun runs the
// pipeline in process with the interval's variables). Time comes from an
// injected clock, so tests simulate days without sleeping.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/op"
)

// Pipeline is one scheduled pipeline.
type Pipeline struct {
	Name  string
	File  string
	Sched *validate.Schedule
	// Shards > 1 runs every interval as that many shard runs (Job.Shard
	// "1/N" … "N/N", flowrun run --shard), each with its own attempts and
	// retries, several at once within MaxActive.
	Shards int
}

// Job is one run the scheduler starts.
type Job struct {
	Pipeline Pipeline
	Interval Interval
	Attempt  int
	Trigger  string // schedule or retry
	Shard    string // "I/N" for a shard run, "" for the whole interval
}

// key names the job's slot among the active runs: one per pipeline, or
// one per shard of a sharded pipeline.
func (j Job) key() string {
	if j.Shard == "" {
		return j.Pipeline.Name
	}
	return j.Pipeline.Name + "[" + j.Shard + "]"
}

func (j Job) run(status Status, started time.Time, host string, pid int) Run {
	return Run{ID: ShardRunID(j.Pipeline.Name, j.Interval.Start, j.Shard, j.Attempt), Pipeline: j.Pipeline.Name,
		File: j.Pipeline.File, Start: j.Interval.Start, End: j.Interval.End, Attempt: j.Attempt, Trigger: j.Trigger,
		Status: status, Started: started, Host: host, PID: pid, Shard: j.Shard}
}

// Result is what a run reports back.
type Result struct {
	Rows map[string]int64 // rows per node
}

// RunFunc runs one job to its end. A cancelled ctx means the scheduler is
// stopping: the run should stop and return (it is recorded interrupted).
type RunFunc func(ctx context.Context, j Job) (Result, error)

// Options configure a Scheduler.
type Options struct {
	Clock     op.Clock // default: the wall clock
	Run       RunFunc
	MaxActive int // runs at once over all pipelines; default 1
	Log       *slog.Logger
	// Host and PID identify this process in run records, so another
	// scheduler can tell a run whose process died. Defaults: os.Hostname,
	// os.Getpid.
	Host string
	PID  int
	// Metrics receives flowrun_schedule_runs_total{pipeline,status} and
	// flowrun_schedule_last_success_timestamp_seconds{pipeline}; nil: none.
	Metrics op.Metrics
}

// Scheduler runs scheduled pipelines. Step, RunDue and Run are called from
// one goroutine; the runs are goroutines the scheduler owns and joins.
type Scheduler struct {
	store     *Store
	pipelines []Pipeline
	o         Options

	runCtx  context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	active  map[string]bool // pipeline name → a run of it is going
	wg      sync.WaitGroup
	finish  chan struct{} // a run ended (capacity 1, never blocks)
	lastErr error
}

// New returns a scheduler for pipelines recording into store.
func New(store *Store, pipelines []Pipeline, o Options) *Scheduler {
	if o.Clock == nil {
		o.Clock = op.SystemClock{}
	}
	if o.MaxActive < 1 {
		o.MaxActive = 1
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	sort.Slice(pipelines, func(i, j int) bool { return pipelines[i].Name < pipelines[j].Name })
	ctx, cancel := context.WithCancel(context.Background())
	return &Scheduler{store: store, pipelines: pipelines, o: o, runCtx: ctx, cancel: cancel,
		active: map[string]bool{}, finish: make(chan struct{}, 1)}
}

// Recover marks the runs that a dead process left "running" as
// interrupted (they are then retried like failed runs). A run of another
// host is left alone: its process cannot be checked from here.
func (s *Scheduler) Recover() error {
	now := s.o.Clock.Now()
	return s.store.Update(func(h *History) ([]Run, error) {
		var out []Run
		for _, r := range h.Runs {
			if r.Status != Running || r.Host != s.o.Host {
				continue
			}
			if r.PID == s.o.PID {
				s.mu.Lock()
				mine := s.active[Job{Pipeline: Pipeline{Name: r.Pipeline}, Shard: r.Shard}.key()]
				s.mu.Unlock()
				if mine {
					continue
				}
			} else if alive(r.PID) {
				continue
			}
			r.Status, r.Ended = Interrupted, now
			r.Error = fmt.Sprintf("process %d on %s ended during the run", r.PID, r.Host)
			out = append(out, r)
			s.o.Log.Warn("schedule: run interrupted by a crash", "run", r.ID)
		}
		return out, nil
	})
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Step starts every run due at the clock's now (within MaxActive, one per
// pipeline) and returns when the next one may become due (zero: none
// scheduled), and how many it started.
func (s *Scheduler) Step() (next time.Time, started int, err error) {
	now := s.o.Clock.Now()
	var jobs []Job
	err = s.store.Update(func(h *History) ([]Run, error) {
		var out []Run
		s.mu.Lock()
		defer s.mu.Unlock()
		n := len(s.active)
		for _, p := range s.pipelines {
			if p.Shards > 1 {
				sj, skipped, wake := s.pickShards(h, p, now, s.o.MaxActive-n)
				if !wake.IsZero() && (next.IsZero() || wake.Before(next)) {
					next = wake
				}
				if skipped != nil {
					out = append(out, *skipped)
				}
				for _, j := range sj {
					n++
					s.active[j.key()] = true
					jobs = append(jobs, j)
					out = append(out, j.run(Running, now, s.o.Host, s.o.PID))
				}
				continue
			}
			if s.active[p.Name] {
				continue
			}
			job, skipped, wake := s.pick(h, p, now)
			if !wake.IsZero() && (next.IsZero() || wake.Before(next)) {
				next = wake
			}
			if skipped != nil {
				out = append(out, *skipped)
				s.o.Log.Warn("schedule: intervals beyond the catch-up limit skipped (backfill with flowrun run --interval)",
					"pipeline", p.Name, "from", skipped.Start, "to", skipped.End)
			}
			if job == nil || n >= s.o.MaxActive {
				if job != nil && (next.IsZero() || now.Before(next)) {
					next = now // due but no slot: wake when a run ends
				}
				continue
			}
			n++
			s.active[p.Name] = true
			jobs = append(jobs, *job)
			out = append(out, job.run(Running, now, s.o.Host, s.o.PID))
		}
		return out, nil
	})
	if err != nil {
		s.mu.Lock()
		for _, j := range jobs {
			delete(s.active, j.Pipeline.Name)
		}
		s.mu.Unlock()
		return next, 0, err
	}
	for _, j := range jobs {
		s.o.Log.Info("schedule: run", "pipeline", j.Pipeline.Name, "interval", j.Interval.String(), "shard", j.Shard, "attempt", j.Attempt, "trigger", j.Trigger)
		s.wg.Add(1)
		go s.execute(j, now)
	}
	return next, len(jobs), nil
}

// pick chooses p's next job at now: first a retry of the oldest interval
// whose last attempt failed (once its back-off has passed; until then
// nothing newer starts, so intervals complete in order), then the oldest due
// interval not yet run. wake is when pick may have something new.
func (s *Scheduler) pick(h *History, p Pipeline, now time.Time) (job *Job, skipped *Run, wake time.Time) {
	sc := p.Sched
	type ivState struct {
		start time.Time
		last  Run
		ok    bool
	}
	var states []ivState
	seen := map[time.Time]bool{}
	for _, r := range h.Runs {
		if r.Pipeline != p.Name || r.Status == Skipped || seen[r.Start.UTC()] {
			continue
		}
		seen[r.Start.UTC()] = true
		last, _ := h.Latest(p.Name, r.Start)
		_, ok := h.Succeeded(p.Name, r.Start)
		states = append(states, ivState{start: r.Start, last: last, ok: ok})
	}
	sort.Slice(states, func(i, j int) bool { return states[i].start.Before(states[j].start) })
	for _, st := range states {
		if st.ok {
			continue
		}
		switch st.last.Status {
		case Running:
			// Another process (a manual run) has it; look again later.
			return nil, nil, now.Add(30 * time.Second)
		case Failed, Interrupted:
			if st.last.Attempt > sc.Retries || st.last.Final {
				continue // retries exhausted, or a failure a retry would repeat: final
			}
			at := st.last.Ended.Add(backoff(sc, st.last.Attempt))
			if now.Before(at) {
				return nil, nil, at
			}
			iv := Interval{Start: st.last.Start.In(sc.Location), End: st.last.End.In(sc.Location)}
			return &Job{Pipeline: p, Interval: iv, Attempt: st.last.Attempt + 1, Trigger: "retry"}, nil, now
		}
	}
	run, skip := due(sc, h.Frontier(p.Name), now)
	if !skip.Start.IsZero() {
		skipped = &Run{ID: RunID(p.Name, skip.Start, 0), Pipeline: p.Name, File: p.File, Start: skip.Start, End: skip.End,
			Trigger: "schedule", Status: Skipped, Started: now, Ended: now,
			Error: fmt.Sprintf("more than catchup=%d intervals were due", max(sc.Catchup, 1))}
	}
	for _, iv := range run {
		if _, ok := h.Succeeded(p.Name, iv.Start); ok {
			continue
		}
		attempt := 1
		if last, ok := h.Latest(p.Name, iv.Start); ok {
			attempt = last.Attempt + 1
		}
		return &Job{Pipeline: p, Interval: iv, Attempt: attempt, Trigger: "schedule"}, skipped, now
	}
	return nil, skipped, next(sc, now)
}

// pickShards chooses the shard jobs of a sharded pipeline at now, at most
// slots of them: intervals go in order (recorded ones not yet succeeded,
// then due ones); within the oldest unfinished interval every shard that
// has no run yet starts, and a failed shard is retried after its back-off
// (retries counted per shard). A newer interval starts only when every
// shard of the older one succeeded or exhausted its retries.
func (s *Scheduler) pickShards(h *History, p Pipeline, now time.Time, slots int) (jobs []Job, skipped *Run, wake time.Time) {
	sc := p.Sched
	var ivs []Interval
	seen := map[time.Time]bool{}
	for _, r := range h.Runs {
		if r.Pipeline != p.Name || r.Status == Skipped || seen[r.Start.UTC()] {
			continue
		}
		seen[r.Start.UTC()] = true
		ivs = append(ivs, Interval{Start: r.Start.In(sc.Location), End: r.End.In(sc.Location)})
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].Start.Before(ivs[j].Start) })
	run, skip := due(sc, h.Frontier(p.Name), now)
	if !skip.Start.IsZero() {
		skipped = &Run{ID: RunID(p.Name, skip.Start, 0), Pipeline: p.Name, File: p.File, Start: skip.Start, End: skip.End,
			Trigger: "schedule", Status: Skipped, Started: now, Ended: now,
			Error: fmt.Sprintf("more than catchup=%d intervals were due", max(sc.Catchup, 1))}
	}
	ivs = append(ivs, run...)
	soon := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	for _, iv := range ivs {
		if _, ok := h.Succeeded(p.Name, iv.Start); ok {
			continue
		}
		pending := false
		for i := 1; i <= p.Shards; i++ {
			sh := fmt.Sprintf("%d/%d", i, p.Shards)
			j := Job{Pipeline: p, Interval: iv, Attempt: 1, Trigger: "schedule", Shard: sh}
			if _, ok := h.ShardSucceeded(p.Name, iv.Start, sh); ok {
				continue
			}
			if s.active[j.key()] {
				pending = true
				continue
			}
			if last, ok := h.LatestShard(p.Name, iv.Start, sh); ok {
				switch last.Status {
				case Running: // another process has it
					pending = true
					soon(now.Add(30 * time.Second))
					continue
				case Failed, Interrupted:
					if last.Attempt > sc.Retries || last.Final {
						continue // retries exhausted, or a failure a retry would repeat: final
					}
					pending = true
					if at := last.Ended.Add(backoff(sc, last.Attempt)); now.Before(at) {
						soon(at)
						continue
					}
					j.Attempt, j.Trigger = last.Attempt+1, "retry"
				default:
					j.Attempt = last.Attempt + 1
				}
			}
			pending = true
			if len(jobs) >= slots {
				soon(now) // due but no slot: wake when a run ends
				continue
			}
			jobs = append(jobs, j)
		}
		if pending {
			if wake.IsZero() {
				wake = now // runs started or in progress: look again when one ends
			}
			return jobs, skipped, wake
		}
	}
	soon(next(sc, now))
	return jobs, skipped, wake
}

// execute runs j and records how it ended.
func (s *Scheduler) execute(j Job, started time.Time) {
	defer s.wg.Done()
	res, err := s.safeRun(j)
	r := j.run(Succeeded, started, s.o.Host, s.o.PID)
	r.Ended, r.Rows = s.o.Clock.Now(), res.Rows
	switch {
	case s.runCtx.Err() != nil:
		r.Status, r.Error = Interrupted, "scheduler stopped during the run"
		if err != nil {
			r.Error += ": " + err.Error()
		}
	case err != nil:
		r.Status, r.Error, r.Final = Failed, err.Error(), op.IsPermanent(err)
	}
	if err := s.store.Append(r); err != nil {
		s.o.Log.Error("schedule: recording a run failed", "run", r.ID, "err", err)
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
	}
	s.measure(r)
	lvl := slog.LevelInfo
	if r.Status != Succeeded {
		lvl = slog.LevelWarn
	}
	s.o.Log.Log(context.Background(), lvl, "schedule: run ended", "run", r.ID, "status", r.Status, "error", r.Error)
	s.mu.Lock()
	delete(s.active, j.key())
	s.mu.Unlock()
	select {
	case s.finish <- struct{}{}:
	default:
	}
}

func (s *Scheduler) safeRun(j Job) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("run panicked: %v", p)
		}
	}()
	return s.o.Run(s.runCtx, j)
}

// Active returns how many runs are going.
func (s *Scheduler) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

// Wait blocks until every started run has ended.
func (s *Scheduler) Wait() { s.wg.Wait() }

// RunDue runs everything due now, and what becomes due as runs end, until
// nothing more is due at the clock's now; then it returns (`flowrun
// schedule --once`, for cron or a systemd timer).
func (s *Scheduler) RunDue(ctx context.Context) error {
	if err := s.Recover(); err != nil {
		return err
	}
	for {
		_, started, err := s.Step()
		if err != nil {
			return err
		}
		if started == 0 && s.Active() == 0 {
			return s.recordErr()
		}
		select {
		case <-s.finish:
		case <-ctx.Done():
			s.stopRuns()
			return nil
		}
	}
}

// Run schedules until ctx ends; then it stops the runs going (they are
// recorded interrupted and retried by the next scheduler) and returns.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.Recover(); err != nil {
		return err
	}
	defer s.stopRuns()
	for {
		next, _, err := s.Step()
		if err != nil {
			s.o.Log.Error("schedule: step failed; trying again in a minute", "err", err)
			next = s.o.Clock.Now().Add(time.Minute)
		}
		var timer <-chan time.Time
		if !next.IsZero() {
			if d := next.Sub(s.o.Clock.Now()); d > 0 {
				timer = s.o.Clock.After(d)
			} else if s.Active() == 0 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer:
		case <-s.finish:
		}
	}
}

// stopRuns cancels the runs going and waits for them; the scheduler is
// done afterwards.
func (s *Scheduler) stopRuns() {
	s.cancel()
	s.wg.Wait()
}

// Close stops the runs going (recorded interrupted) and waits for them.
func (s *Scheduler) Close() { s.stopRuns() }

func (s *Scheduler) recordErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// measure records a finished run in the scheduler's metrics.
func (s *Scheduler) measure(r Run) {
	if s.o.Metrics == nil {
		return
	}
	p := op.Label{Name: "pipeline", Value: r.Pipeline}
	s.o.Metrics.Counter("flowrun_schedule_runs_total", "Scheduled runs by final status.", p, op.Label{Name: "status", Value: string(r.Status)}).Add(1)
	if r.Status == Succeeded {
		s.o.Metrics.Gauge("flowrun_schedule_last_success_timestamp_seconds", "When the pipeline's last scheduled run succeeded.", p).Set(float64(r.Ended.Unix()))
	}
}
