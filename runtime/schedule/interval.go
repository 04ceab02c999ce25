package schedule

import (
	"fmt"
	"time"

	"github.com/flowrun/flowrun/dsl/validate"
)

// Interval is a run's data interval [Start, End), Airflow's
// data_interval_start/end: the run for an interval is due at its End.
type Interval struct {
	Start, End time.Time
}

func (iv Interval) String() string {
	return iv.Start.Format(time.RFC3339) + "/" + iv.End.Format(time.RFC3339)
}

// Vars are the variables a run of iv receives: INTERVAL_START and
// INTERVAL_END as RFC 3339 times in the schedule's zone, INTERVAL_DATE (the
// start's date, 2026-11-24), and INTERVAL_START_UNIX/INTERVAL_END_UNIX.
func (iv Interval) Vars() map[string]string {
	return map[string]string{
		"INTERVAL_START":      iv.Start.Format(time.RFC3339),
		"INTERVAL_END":        iv.End.Format(time.RFC3339),
		"INTERVAL_DATE":       iv.Start.Format("2006-01-02"),
		"INTERVAL_START_UNIX": fmt.Sprint(iv.Start.Unix()),
		"INTERVAL_END_UNIX":   fmt.Sprint(iv.End.Unix()),
	}
}

// next returns the first fire time strictly after t, in the schedule's zone.
func next(s *validate.Schedule, t time.Time) time.Time {
	return s.Expr.Next(t.In(s.Location))
}

// prev returns the last fire time at or before t (zero if none in ~3 years).
func prev(s *validate.Schedule, t time.Time) time.Time {
	t = t.In(s.Location)
	for back := time.Minute; back < 3*366*24*time.Hour; back *= 2 {
		var last time.Time
		for x := next(s, t.Add(-back).Add(-time.Second)); !x.After(t); x = next(s, x) {
			last = x
		}
		if !last.IsZero() {
			return last
		}
	}
	return time.Time{}
}

// IntervalStarting returns the interval that starts at start, which must be
// one of the schedule's fire times.
func IntervalStarting(s *validate.Schedule, start time.Time) (Interval, error) {
	start = start.In(s.Location)
	if p := prev(s, start); !p.Equal(start) {
		n := next(s, start)
		return Interval{}, fmt.Errorf("%s is not the start of an interval of schedule %q (in %s); the nearest are %s and %s",
			start.Format(time.RFC3339), s.Cron, s.Location, p.Format(time.RFC3339), n.Format(time.RFC3339))
	}
	return Interval{Start: start, End: next(s, start)}, nil
}

// ParseInterval reads --interval: a date or time that is the start of one
// of the schedule's intervals (2026-11-24 for @daily, 2026-11-24T13:00 for
// @hourly; read in the schedule's zone).
func ParseInterval(s *validate.Schedule, v string) (Interval, error) {
	t, err := validate.ParseTime(v, s.Location)
	if err != nil {
		return Interval{}, fmt.Errorf("--interval %q: want a date (2026-11-24) or time (2026-11-24T13:00, RFC 3339)", v)
	}
	return IntervalStarting(s, t)
}

// due lists the intervals to run at now after frontier (the end of the
// latest recorded interval; zero for none): the complete intervals from the
// frontier (or from the schedule's start, or else just the latest complete
// one), at most max(catchup,1) of them, the newest, oldest first. skipped
// is the span of older due intervals left out (zero when none).
func due(s *validate.Schedule, frontier, now time.Time) (run []Interval, skipped Interval) {
	from := frontier
	if from.IsZero() && !s.Start.IsZero() {
		from = s.Start
		if p := prev(s, from); !p.Equal(from) {
			from = next(s, from)
		}
	}
	keep := max(s.Catchup, 1)
	if from.IsZero() {
		keep = 1
	}
	// Walk back from the latest complete interval.
	end := prev(s, now)
	for len(run) < keep && !end.IsZero() {
		start := prev(s, end.Add(-time.Second))
		if start.IsZero() || (!from.IsZero() && start.Before(from)) {
			break
		}
		run = append(run, Interval{Start: start, End: end})
		end = start
	}
	for i, j := 0, len(run)-1; i < j; i, j = i+1, j-1 {
		run[i], run[j] = run[j], run[i]
	}
	if len(run) > 0 && !from.IsZero() && from.Before(run[0].Start) {
		skipped = Interval{Start: from.In(s.Location), End: run[0].Start}
	}
	return run, skipped
}

// backoff is the wait before attempt n+1 after attempt n (n ≥ 1) failed.
func backoff(s *validate.Schedule, n int) time.Duration {
	d := s.RetryBackoff
	for i := 1; i < n && d < s.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.MaxBackoff)
}
