package schedule

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"
)

// recentTail is how much of the end of the history Recent reads: the
// latest state of a run is its last line, so the tail holds every recent
// run (thousands of lines) without reading a history of years.
const recentTail = 1 << 20

// lockWait bounds how long Recent waits for a writer's lock; writers hold
// it for one append and fsync.
const lockWait = 2 * time.Second

// Recent reads a pipeline's recent runs from a history that other processes
// (a scheduler, flowrun run --interval) keep appending to, for the status
// page: it reads the file's tail under a shared lock, so it never sees a
// line half written, and re-reads only when the file changed. It is safe
// for concurrent use.
type Recent struct {
	path     string
	pipeline string // "" for every pipeline
	n        int

	mu    sync.Mutex
	size  int64
	mod   time.Time
	runs  []Run
	valid bool
}

// NewRecent returns a reader of the last n runs of pipeline ("" for all) in
// the history of the pipelines in dir. It creates nothing: a history that
// does not exist yet has no runs.
func NewRecent(dir, pipeline string, n int) *Recent {
	return &Recent{path: dir + string(os.PathSeparator) + StoreFile, pipeline: pipeline, n: n}
}

// Path returns the history file's path.
func (r *Recent) Path() string { return r.path }

// Runs returns the latest state of the last n runs (by first record),
// newest first.
func (r *Recent) Runs() ([]Run, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := os.Stat(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("run history: %w", err)
	}
	if r.valid && st.Size() == r.size && st.ModTime().Equal(r.mod) {
		return r.runs, nil
	}
	runs, size, mod, err := readRecent(r.path, r.pipeline, r.n)
	if err != nil {
		return nil, err
	}
	r.runs, r.size, r.mod, r.valid = runs, size, mod, true
	return runs, nil
}

func readRecent(path, pipeline string, n int) (runs []Run, size int64, mod time.Time, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("run history: %w", err)
	}
	defer f.Close()
	if err := lockShared(f, lockWait); err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("run history: lock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too
	st, err := f.Stat()
	if err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("run history: %w", err)
	}
	from := max(0, st.Size()-recentTail)
	midLine := false
	if from > 0 {
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, from-1); err != nil {
			return nil, 0, time.Time{}, fmt.Errorf("run history: %w", err)
		}
		midLine = b[0] != '\n'
	}
	var rd io.Reader = io.NewSectionReader(f, from, st.Size()-from)
	h, err := readHistory(rd, midLine)
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	for _, run := range h.Runs {
		if pipeline == "" || run.Pipeline == pipeline {
			runs = append(runs, run)
		}
	}
	if n > 0 && len(runs) > n {
		runs = runs[len(runs)-n:]
	}
	// Newest first; runs recorded in one order may start in another
	// (concurrent shards), so by start time, then by record order.
	idx := make(map[string]int, len(runs))
	for i, run := range runs {
		idx[run.ID] = i
	}
	sort.SliceStable(runs, func(i, j int) bool {
		if !runs[i].Started.Equal(runs[j].Started) {
			return runs[i].Started.After(runs[j].Started)
		}
		return idx[runs[i].ID] > idx[runs[j].ID]
	})
	return runs, st.Size(), st.ModTime(), nil
}

// lockShared takes a shared flock on f, waiting at most wait for a writer
// to finish.
func lockShared(f *os.File, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("held by a writer for over %s", wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
