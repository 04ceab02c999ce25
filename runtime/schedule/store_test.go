package schedule

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/validate"
)

// TestTornLine: a line a crash cut short is skipped on reading, and the next
// append starts on a fresh line, so no later record is lost.
func TestTornLine(t *testing.T) {
	st := newStore(t)
	r := Run{ID: RunID("p", day(24), 1), Pipeline: "p", Start: day(24), End: day(25), Attempt: 1, Status: Succeeded}
	if err := st.Append(r); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(st.Path(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"p@2026-11-25T00:00:00Z#1","pipeline":"p","interval_st`)
	f.Close()
	h, err := st.Load()
	if err != nil || len(h.Runs) != 1 || h.Torn != 1 {
		t.Fatalf("load: %d runs, %d torn, %v", len(h.Runs), h.Torn, err)
	}
	r2 := Run{ID: RunID("p", day(25), 1), Pipeline: "p", Start: day(25), End: day(26), Attempt: 1, Status: Running}
	if err := st.Append(r2); err != nil {
		t.Fatal(err)
	}
	r2.Status = Failed
	if err := st.Append(r2); err != nil {
		t.Fatal(err)
	}
	h, err = st.Load()
	if err != nil || len(h.Runs) != 2 || h.Torn != 1 || h.Runs[1].Status != Failed {
		t.Fatalf("after append: %+v, %d torn, %v", h.Runs, h.Torn, err)
	}
}

const childEnv = "FLOWRUN_SCHEDULE_CRASH_CHILD"

// TestMain lets the crash test run a scheduler in a child process.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild schedules one daily pipeline whose run announces itself and
// then hangs, for the parent to SIGKILL.
func crashChild(dir string) {
	st, err := OpenStore(dir)
	if err != nil {
		panic(err)
	}
	sc := childSched()
	clock := &fakeClock{now: day(25).Add(time.Minute)}
	s := New(st, []Pipeline{{Name: "p", File: "p.yaml", Sched: sc}}, Options{Clock: clock,
		Run: func(ctx context.Context, j Job) (Result, error) {
			os.Stdout.WriteString("running " + j.Interval.String() + "\n")
			select {}
		}})
	_ = s.RunDue(context.Background())
}

func childSched() *validate.Schedule {
	var errs source.Errors
	return validate.ParseSchedule(&ast.Pipeline{Schedule: "@daily", ScheduleOpts: ast.ScheduleOpts{RetryBackoff: opt("5m")}}, &errs)
}

// TestCrashMidRun: a scheduler process is SIGKILLed while a run is going.
// The history then says the run is running (it was recorded before the run
// began); the next scheduler marks it interrupted, and retries it after the
// back-off, and the history ends with the interrupted attempt and the
// successful retry.
func TestCrashMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "running 2026-11-24T00:00:00Z/") {
		cmd.Process.Kill()
		t.Fatalf("child said %q, %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "after the crash", history(t, st), []string{"p 11-24T00..11-25T00 #1 schedule running"})
	if _, err := os.Stat(filepath.Join(dir, StoreFile)); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: day(25).Add(2 * time.Minute)}
	rec := &recorder{}
	s := New(st, []Pipeline{{Name: "p", File: "p.yaml", Sched: childSched()}}, Options{Clock: clock, Run: rec.run})
	if err := s.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.jobs) != 0 {
		t.Fatalf("retried before the back-off: %v", rec.intervals())
	}
	eq(t, "recovered", history(t, st), []string{"p 11-24T00..11-25T00 #1 schedule interrupted"})
	clock.Add(5 * time.Minute)
	if err := s.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	eq(t, "after the retry", history(t, st), []string{
		"p 11-24T00..11-25T00 #1 schedule interrupted",
		"p 11-24T00..11-25T00 #2 retry succeeded",
	})
	h, _ := st.Load()
	if r := h.Runs[0]; !strings.Contains(r.Error, "ended during the run") || r.PID != cmd.Process.Pid {
		t.Fatalf("interrupted run %+v", r)
	}
}
