package validate

import (
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
)

// Schedule is a pipeline's checked `schedule:`: when its runs are due and
// how missed and failed ones are handled (runtime/schedule acts on it).
type Schedule struct {
	Cron     string
	Expr     cron.Schedule // the parsed expression, evaluated in Location
	Location *time.Location
	// Catchup is the most missed intervals run when the scheduler finds
	// several due at once (default 10); older ones are recorded as skipped
	// and can be backfilled with `flowrun run --interval`.
	Catchup int
	// Start, when set, is the first interval's start: the scheduler catches
	// up from there (within Catchup). Zero: start with the latest complete
	// interval.
	Start        time.Time
	Retries      int           // default 2
	RetryBackoff time.Duration // default 1m, doubling
	MaxBackoff   time.Duration // default 1h
	// Shards is how many shard runs (flowrun run --shard I/N) the scheduler
	// runs every interval as (default 1: one run of the whole interval).
	Shards int
}

// Schedule defaults.
const (
	DefaultCatchup      = 10
	DefaultRetries      = 2
	DefaultRetryBackoff = time.Minute
	DefaultMaxBackoff   = time.Hour
)

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

const cronHint = "a cron expression: minute hour day-of-month month day-of-week, e.g. \"0 * * * *\", or @hourly, @daily, @weekly, @monthly"

// ParseSchedule checks p's schedule and returns it, or nil when p has none
// or it is wrong (the problems are added to errs).
func ParseSchedule(p *ast.Pipeline, errs *source.Errors) *Schedule {
	if p.Schedule == "" {
		return nil
	}
	n := len(*errs)
	add := func(pos source.Pos, hint, format string, args ...any) {
		e := errs.Add(pos, format, args...)
		e.Code = "schedule"
		e.Hint = hint
	}
	o := p.ScheduleOpts
	s := &Schedule{Cron: strings.TrimSpace(p.Schedule), Location: time.UTC, Catchup: DefaultCatchup,
		Retries: DefaultRetries, RetryBackoff: DefaultRetryBackoff, MaxBackoff: DefaultMaxBackoff, Shards: 1}
	if strings.HasPrefix(s.Cron, "@every") {
		add(p.SchedulePos, "use a cron expression, whose intervals line up with the clock: \"*/10 * * * *\"",
			"schedule %q has no fixed intervals: a scheduled run needs its data interval", s.Cron)
	} else if c, err := cronParser.Parse(s.Cron); err != nil {
		add(p.SchedulePos, cronHint, "bad schedule %q: %v", s.Cron, err)
	} else {
		s.Expr = c
	}
	if o.Timezone.Set {
		loc, err := time.LoadLocation(o.Timezone.Value)
		if err != nil || o.Timezone.Value == "" {
			add(o.Timezone.Pos, "an IANA time zone name such as UTC, Europe/Paris, America/New_York", "unknown time zone %q", o.Timezone.Value)
		} else {
			s.Location = loc
		}
	}
	atoi := func(sc ast.Scalar, what string, dst *int) {
		if !sc.Set {
			return
		}
		v, err := strconv.Atoi(sc.Value)
		if err != nil || v < 0 {
			add(sc.Pos, "", "'%s' must be a whole number ≥ 0, got %q", what, sc.Value)
			return
		}
		*dst = v
	}
	atoi(o.Catchup, "catchup", &s.Catchup)
	atoi(o.Retries, "retries", &s.Retries)
	atoi(o.Shards, "shards", &s.Shards)
	if o.Shards.Set && s.Shards == 0 {
		add(o.Shards.Pos, "", "'shards' must be at least 1, got %q", o.Shards.Value)
		s.Shards = 1
	}
	dur := func(sc ast.Scalar, what string, dst *time.Duration) {
		if !sc.Set {
			return
		}
		d, err := spec.ParseDuration(sc.Value)
		if err != nil || d <= 0 {
			add(sc.Pos, "a duration such as 30s, 5m, 1h", "'%s' must be a positive duration, got %q", what, sc.Value)
			return
		}
		*dst = d
	}
	dur(o.RetryBackoff, "retry_backoff", &s.RetryBackoff)
	dur(o.MaxBackoff, "max_backoff", &s.MaxBackoff)
	if o.Start.Set {
		t, err := ParseTime(o.Start.Value, s.Location)
		if err != nil {
			add(o.Start.Pos, "", "bad start %q: want a date (2026-11-24), a local time (2026-11-24T13:00) or an RFC 3339 time", o.Start.Value)
		} else {
			s.Start = t
		}
	}
	if len(*errs) > n {
		return nil
	}
	return s
}

// ParseTime reads a date (2026-11-24, midnight in loc), a date and time
// without zone (2026-11-24T13:00, in loc) or an RFC 3339 time.
func ParseTime(v string, loc *time.Location) (time.Time, error) {
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Parse(time.RFC3339, v)
}
