package schedule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Status is where a run is.
type Status string

// Run statuses.
const (
	Running     Status = "running"
	Succeeded   Status = "succeeded"
	Failed      Status = "failed"
	Interrupted Status = "interrupted" // its process died or was stopped mid-run
	Skipped     Status = "skipped"     // beyond the catch-up limit; backfill by hand
)

// Final reports whether the status no longer changes.
func (s Status) Final() bool { return s != Running }

// Run is one attempt at one interval of one pipeline, as recorded.
type Run struct {
	ID       string           `json:"id"` // pipeline@interval_start#attempt
	Pipeline string           `json:"pipeline"`
	File     string           `json:"file,omitempty"`
	Start    time.Time        `json:"interval_start"`
	End      time.Time        `json:"interval_end"`
	Attempt  int              `json:"attempt"`
	Trigger  string           `json:"trigger"` // schedule, retry, manual
	Status   Status           `json:"status"`
	Started  time.Time        `json:"started"`
	Ended    time.Time        `json:"ended,omitzero"`
	Rows     map[string]int64 `json:"rows,omitempty"` // rows per node
	Error    string           `json:"error,omitempty"`
	// Final marks a failure that running the interval again would repeat
	// (op.IsPermanent: a bound the data exceeds, an invalid pipeline): it
	// is not retried. A run by hand (flowrun run --interval) still may.
	Final bool   `json:"final,omitempty"`
	Host  string `json:"host,omitempty"`
	PID   int    `json:"pid,omitempty"`
	// Shard is "I/N" for a run of one shard of the interval (flowrun run
	// --shard); empty for a run of the whole interval. Shard runs have their
	// own attempts; the interval is succeeded when every shard of some N
	// succeeded.
	Shard string `json:"shard,omitempty"`
}

// RunID names attempt n at the interval starting at start.
func RunID(pipeline string, start time.Time, attempt int) string {
	return fmt.Sprintf("%s@%s#%d", pipeline, start.UTC().Format(time.RFC3339), attempt)
}

// ShardRunID names attempt n of shard ("I/N") of the interval; RunID when
// shard is empty.
func ShardRunID(pipeline string, start time.Time, shard string, attempt int) string {
	if shard == "" {
		return RunID(pipeline, start, attempt)
	}
	return fmt.Sprintf("%s@%s[%s]#%d", pipeline, start.UTC().Format(time.RFC3339), shard, attempt)
}

// Store is the run history: an append-only JSON-lines file
// (DIR/.flowrun/runs.jsonl) beside the pipelines. Every change of a run is
// one line written with O_APPEND under an exclusive flock and fsynced
// before Append returns, so the history survives a crash of the process at
// any point: a line torn by a crash is ignored when reading (and the next
// append starts on a fresh line), and a run left "running" by a dead process
// is marked interrupted by the next scheduler (Recover). Several processes
// (a scheduler and a `flowrun run --interval`) may share one store.
type Store struct {
	path string
}

// StoreFile is the history's path relative to the pipelines' directory.
const StoreFile = ".flowrun/runs.jsonl"

// OpenStore opens (creating its directory) the history of the pipelines in dir.
func OpenStore(dir string) (*Store, error) {
	path := filepath.Join(dir, StoreFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("run history: %w", err)
	}
	return &Store{path: path}, nil
}

// Path returns the history file's path.
func (s *Store) Path() string { return s.path }

// locked opens the file and holds an exclusive lock while fn runs.
func (s *Store) locked(fn func(f *os.File) error) error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("run history: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("run history: lock %s: %w", s.path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too
	return fn(f)
}

// Append records runs (new ones or new states of known ones) durably.
func (s *Store) Append(runs ...Run) error {
	return s.locked(func(f *os.File) error { return appendRuns(f, runs) })
}

// Update reads the history and, under the same lock, appends what fn
// returns; fn's error aborts without writing. This is how a check (has this
// interval succeeded?) and the start of a run are made atomic across
// processes.
func (s *Store) Update(fn func(h *History) ([]Run, error)) error {
	return s.locked(func(f *os.File) error {
		h, err := read(f)
		if err != nil {
			return err
		}
		runs, err := fn(h)
		if err != nil || len(runs) == 0 {
			return err
		}
		return appendRuns(f, runs)
	})
}

func appendRuns(f *os.File, runs []Run) error {
	var buf bytes.Buffer
	// A crash may have torn the last line: start on a fresh one.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			buf.WriteByte('\n')
		}
	}
	for _, r := range runs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("run history: write: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("run history: sync: %w", err)
	}
	return nil
}

// Load reads the whole history.
func (s *Store) Load() (*History, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return &History{byID: map[string]int{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("run history: %w", err)
	}
	defer f.Close()
	return read(f)
}

func read(f *os.File) (*History, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return readHistory(f, false)
}

// readHistory reads history lines from r; midLine says r starts inside a
// line (a tail of the file), whose rest is skipped.
func readHistory(r io.Reader, midLine bool) (*History, error) {
	h := &History{byID: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	if midLine && !sc.Scan() {
		return h, sc.Err()
	}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r Run
		if err := json.Unmarshal(line, &r); err != nil || r.ID == "" {
			h.Torn++ // a line a crash cut short
			continue
		}
		if i, ok := h.byID[r.ID]; ok {
			h.Runs[i] = r
		} else {
			h.byID[r.ID] = len(h.Runs)
			h.Runs = append(h.Runs, r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("run history: read: %w", err)
	}
	return h, nil
}

// History is the latest state of every recorded run, in the order runs were
// first recorded.
type History struct {
	Runs []Run
	Torn int // unreadable lines skipped (torn by a crash)
	byID map[string]int
}

// Attempts returns the runs of one interval of a pipeline (of the whole
// interval, not its shards), oldest attempt first.
func (h *History) Attempts(pipeline string, start time.Time) []Run {
	return h.ShardAttempts(pipeline, start, "")
}

// ShardAttempts returns the runs of one shard ("I/N") of an interval,
// oldest attempt first; shard "" is the whole interval.
func (h *History) ShardAttempts(pipeline string, start time.Time, shard string) []Run {
	var out []Run
	for _, r := range h.Runs {
		if r.Pipeline == pipeline && r.Start.Equal(start) && r.Shard == shard {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Attempt < out[j].Attempt })
	return out
}

// Latest returns the last attempt at an interval, and false when none.
func (h *History) Latest(pipeline string, start time.Time) (Run, bool) {
	a := h.Attempts(pipeline, start)
	if len(a) == 0 {
		return Run{}, false
	}
	return a[len(a)-1], true
}

// LatestShard returns the last attempt at a shard of an interval.
func (h *History) LatestShard(pipeline string, start time.Time, shard string) (Run, bool) {
	a := h.ShardAttempts(pipeline, start, shard)
	if len(a) == 0 {
		return Run{}, false
	}
	return a[len(a)-1], true
}

// ShardSucceeded reports whether some attempt at a shard of the interval
// succeeded.
func (h *History) ShardSucceeded(pipeline string, start time.Time, shard string) (Run, bool) {
	for _, r := range h.ShardAttempts(pipeline, start, shard) {
		if r.Status == Succeeded {
			return r, true
		}
	}
	return Run{}, false
}

// Succeeded reports whether the interval succeeded: some attempt at the
// whole interval did, or, for some N, every shard 1/N..N/N did (then the
// run returned is the last shard to end).
func (h *History) Succeeded(pipeline string, start time.Time) (Run, bool) {
	if r, ok := h.ShardSucceeded(pipeline, start, ""); ok {
		return r, true
	}
	done := map[int]map[int]Run{} // N → shard index → a succeeded run
	for _, r := range h.Runs {
		if r.Pipeline != pipeline || !r.Start.Equal(start) || r.Shard == "" || r.Status != Succeeded {
			continue
		}
		var i, n int
		if _, err := fmt.Sscanf(r.Shard, "%d/%d", &i, &n); err != nil || i < 1 || i > n {
			continue
		}
		if done[n] == nil {
			done[n] = map[int]Run{}
		}
		done[n][i] = r
	}
	for n, got := range done {
		if len(got) == n {
			var last Run
			for _, r := range got {
				if r.Ended.After(last.Ended) {
					last = r
				}
			}
			return last, true
		}
	}
	return Run{}, false
}

// Frontier returns the latest interval end recorded for pipeline (zero
// when it has no history).
func (h *History) Frontier(pipeline string) time.Time {
	var t time.Time
	for _, r := range h.Runs {
		if r.Pipeline == pipeline && r.End.After(t) {
			t = r.End
		}
	}
	return t
}
