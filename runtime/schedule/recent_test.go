package schedule

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRecent: the latest state of a pipeline's last runs, newest first;
// other pipelines' runs and torn lines left out; a missing history has no
// runs; a change of the file is seen at the next call.
func TestRecent(t *testing.T) {
	dir := t.TempDir()
	rec := NewRecent(dir, "p", 3)
	if runs, err := rec.Runs(); err != nil || len(runs) != 0 {
		t.Fatalf("no history: %v, %v", runs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".flowrun")); !os.IsNotExist(err) {
		t.Fatalf("reading created the history's folder: %v", err)
	}
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	var runs []Run
	for d := 20; d < 25; d++ {
		r := Run{ID: RunID("p", day(d), 1), Pipeline: "p", Start: day(d), End: day(d + 1), Attempt: 1, Status: Running,
			Started: base.Add(time.Duration(d) * time.Minute)}
		runs = append(runs, r)
		other := r
		other.ID, other.Pipeline = RunID("q", day(d), 1), "q"
		if err := st.Append(r, other); err != nil {
			t.Fatal(err)
		}
	}
	// Runs 20-23 end; 22 failed. A torn line after them.
	for i := range 4 {
		r := runs[i]
		r.Status, r.Ended, r.Rows = Succeeded, r.Started.Add(1500*time.Millisecond), map[string]int64{"out": int64(100 * i)}
		if i == 2 {
			r.Status, r.Error = Failed, "sink out: connection refused"
		}
		if err := st.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(st.Path(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"p@2026-11-29T00:00:00Z#1","pipeline":"p","interv`)
	f.Close()

	got, err := rec.Runs()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID+" "+string(r.Status))
	}
	want := []string{"p@2026-11-24T00:00:00Z#1 running", "p@2026-11-23T00:00:00Z#1 succeeded", "p@2026-11-22T00:00:00Z#1 failed"}
	if strings.Join(ids, "|") != strings.Join(want, "|") {
		t.Fatalf("recent runs:\n%s\nwant\n%s", strings.Join(ids, "\n"), strings.Join(want, "\n"))
	}
	if got[2].Error != "sink out: connection refused" || got[1].Rows["out"] != 300 {
		t.Errorf("run details lost: %+v", got)
	}

	// The running one ends: seen at the next read.
	r := runs[4]
	r.Status, r.Ended = Succeeded, r.Started.Add(time.Second)
	if err := st.Append(r); err != nil {
		t.Fatal(err)
	}
	got, err = rec.Runs()
	if err != nil || got[0].Status != Succeeded {
		t.Fatalf("after the run ended: %+v, %v", got, err)
	}
	all, err := NewRecent(dir, "", 0).Runs()
	if err != nil || len(all) != 10 {
		t.Fatalf("every pipeline: %d runs, %v", len(all), err)
	}
}

// TestRecentReadsTheTail: a history larger than the tail read is read from
// its end, starting at a whole line; the runs there are complete.
func TestRecentReadsTheTail(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 1000)
	var batch []Run
	n := recentTail/1100 + 500 // more than the tail holds
	for i := range n {
		start := day(1).Add(time.Duration(i) * time.Hour)
		batch = append(batch, Run{ID: RunID("p", start, 1), Pipeline: "p", Start: start, End: start.Add(time.Hour),
			Attempt: 1, Status: Failed, Error: pad, Started: start})
	}
	if err := st.Append(batch...); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(st.Path()); fi.Size() <= recentTail {
		t.Fatalf("history of %d bytes is not larger than the tail", fi.Size())
	}
	got, err := NewRecent(dir, "p", 5).Runs()
	if err != nil || len(got) != 5 {
		t.Fatalf("%d runs, %v", len(got), err)
	}
	if !got[0].Start.Equal(batch[n-1].Start) || got[4].Error != pad {
		t.Fatalf("newest run %s (want %s), error kept: %v", got[0].ID, batch[n-1].ID, got[4].Error == pad)
	}
}

// TestRecentWaitsForTheWriter: while a writer holds the history's lock,
// Recent waits for it (never reading a half-written line) and gives up with
// an error after lockWait.
func TestRecentWaitsForTheWriter(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := Run{ID: RunID("p", day(24), 1), Pipeline: "p", Start: day(24), End: day(25), Attempt: 1, Status: Running}
	if err := st.Append(r); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(st.Path(), os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// Half a line written under the lock; the rest comes before unlocking.
	line := `{"id":"p@2026-11-24T00:00:00Z#1","pipeline":"p","interval_start":"2026-11-24T00:00:00Z","attempt":1,"status":"succeeded"}` + "\n"
	f.WriteString(line[:40])
	var wg sync.WaitGroup
	var got []Run
	var gerr error
	wg.Go(func() { got, gerr = NewRecent(dir, "p", 5).Runs() })
	time.Sleep(200 * time.Millisecond)
	f.WriteString(line[40:])
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	wg.Wait()
	if gerr != nil || len(got) != 1 || got[0].Status != Succeeded {
		t.Fatalf("read while a writer held the lock: %+v, %v", got, gerr)
	}

	// A writer that never lets go: an error, not a hang.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = NewRecent(dir, "p", 5).Runs()
	if err == nil || !strings.Contains(err.Error(), "held by a writer") || time.Since(start) > lockWait+time.Second {
		t.Fatalf("with the lock held: %v after %s", err, time.Since(start))
	}
}
