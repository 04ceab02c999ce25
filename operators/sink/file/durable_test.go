package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/op"
)

// readJSON returns the lines of a JSON-lines file.
func readJSON(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// parquetFiles returns the row count of every published parquet file
// beside path (path itself, name-1.parquet, ...), by name.
func parquetFiles(t *testing.T, path string) map[string]int64 {
	t.Helper()
	ext := filepath.Ext(path)
	names, err := filepath.Glob(strings.TrimSuffix(path, ext) + "*" + ext)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, n := range names {
		pf, err := pqfile.OpenParquetFile(n, false)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out[filepath.Base(n)] = pf.NumRows()
		pf.Close()
	}
	return out
}

func writeRun(t *testing.T, mem memory.Allocator, cfg string, rows ...string) {
	t.Helper()
	ctx := context.Background()
	s := open(t, mem, cfg)
	var ackErr error
	acked := false
	if len(rows) > 0 {
		b := batch.Batch{Rec: records(t, mem, rows...), Ack: batch.NewAck(func(err error) { acked, ackErr = true, err })}
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rows) > 0 && (!acked || ackErr != nil) {
		t.Fatalf("ack after close: done %v, err %v", acked, ackErr)
	}
}

// TestRestartKeepsRows: a second run on the same output keeps every row the
// first one acknowledged (issue 6: the sink used to truncate at start).
func TestRestartKeepsRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	t.Run("json", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "pins.jsonl")
		cfg := `{path: "` + path + `"}`
		writeRun(t, mem, cfg, lines[0], lines[1])
		writeRun(t, mem, cfg, lines[2])
		writeRun(t, mem, cfg) // a run that reads nothing new
		if got := readJSON(t, path); strings.Join(got, "\n") != strings.Join(lines, "\n") {
			t.Fatalf("after three runs:\n%s", strings.Join(got, "\n"))
		}
		writeRun(t, mem, `{path: "`+path+`", append: false}`, lines[1])
		if got := readJSON(t, path); len(got) != 1 || got[0] != lines[1] {
			t.Fatalf("append: false did not replace the file:\n%s", strings.Join(got, "\n"))
		}
	})

	t.Run("parquet", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "pins.parquet")
		cfg := `{path: "` + path + `"}`
		writeRun(t, mem, cfg, lines...)
		writeRun(t, mem, cfg, lines[0])
		writeRun(t, mem, cfg) // no rows: no new file
		writeRun(t, mem, cfg, lines[0], lines[1])
		want := map[string]int64{"pins.parquet": 3, "pins-1.parquet": 1, "pins-2.parquet": 2}
		if got := parquetFiles(t, path); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("files %v, want %v", got, want)
		}
		writeRun(t, mem, `{path: "`+path+`", append: false}`, lines[2])
		want["pins.parquet"] = 1
		if got := parquetFiles(t, path); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after append: false: files %v, want %v", got, want)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	})
}

// TestPublishWithoutHardLinks: on a file system without hard links the
// parquet file is renamed to the first free name, still never over an
// existing file.
func TestPublishWithoutHardLinks(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	old := linkFile
	defer func() { linkFile = old }()
	linkFile = func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EPERM} }
	dir := t.TempDir()
	path := filepath.Join(dir, "pins.parquet")
	cfg := `{path: "` + path + `"}`
	writeRun(t, mem, cfg, lines...)
	writeRun(t, mem, cfg, lines[0])
	want := map[string]int64{"pins.parquet": 3, "pins-1.parquet": 1}
	if got := parquetFiles(t, path); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestPartialLineCut: a line a crash interrupted is cut off before the next
// run appends, so it does not merge with the next row.
func TestPartialLineCut(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, tail := range []string{`{"id":9,"na`, strings.Repeat("x", 70<<10)} {
		path := filepath.Join(t.TempDir(), "pins.jsonl")
		if err := os.WriteFile(path, []byte(lines[0]+"\n"+tail), 0o644); err != nil {
			t.Fatal(err)
		}
		writeRun(t, mem, `{path: "`+path+`"}`, lines[1])
		if got := readJSON(t, path); len(got) != 2 || got[0] != lines[0] || got[1] != lines[1] {
			t.Fatalf("file:\n%.200s", strings.Join(got, "\n"))
		}
	}
	// A file holding only a partial line is emptied first.
	path := filepath.Join(t.TempDir(), "pins.jsonl")
	if err := os.WriteFile(path, []byte(`{"id":`), 0o644); err != nil {
		t.Fatal(err)
	}
	writeRun(t, mem, `{path: "`+path+`"}`, lines[2])
	if got := readJSON(t, path); len(got) != 1 || got[0] != lines[2] {
		t.Fatalf("file:\n%s", strings.Join(got, "\n"))
	}
}

// fakeFile records what the sink does to its file and fails on demand.
type fakeFile struct {
	f         *os.File
	log       *events
	failWrite error
	failSync  error
}

type events struct {
	mu sync.Mutex
	ev []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.ev = append(e.ev, s)
	e.mu.Unlock()
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.ev, " ")
}

func (f *fakeFile) Write(p []byte) (int, error) {
	if f.failWrite != nil {
		return 0, f.failWrite
	}
	f.log.add("write")
	return f.f.Write(p)
}

func (f *fakeFile) Sync() error {
	if f.failSync != nil {
		return f.failSync
	}
	f.log.add("sync")
	return f.f.Sync()
}

func (f *fakeFile) Close() error { return f.f.Close() }

// inject makes the sink open fakeFiles (json and parquet) and log directory
// syncs, until the test ends.
func inject(t *testing.T, log *events, failWrite, failSync, failDir error) {
	oldOpen, oldTemp, oldDir := openFile, createTemp, syncDir
	t.Cleanup(func() { openFile, createTemp, syncDir = oldOpen, oldTemp, oldDir })
	openFile = func(name string, flag int, perm fs.FileMode) (handle, error) {
		f, err := os.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		return &fakeFile{f: f, log: log, failWrite: failWrite, failSync: failSync}, nil
	}
	createTemp = func(dir, pattern string) (handle, string, error) {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, "", err
		}
		return &fakeFile{f: f, log: log, failWrite: failWrite, failSync: failSync}, f.Name(), nil
	}
	syncDir = func(dir string) error {
		if failDir != nil {
			return failDir
		}
		log.add("syncdir")
		return oldDir(dir)
	}
}

// TestSyncBeforeAck: acknowledged means fsynced. One sync covers every
// batch written since the last flush, and the directory entry of a file
// the run created is synced once.
func TestSyncBeforeAck(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	log := &events{}
	inject(t, log, nil, nil, nil)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pins.jsonl")
	s := open(t, mem, `{path: "`+path+`"}`)
	ack := func(i int) *batch.Ack {
		return batch.NewAck(func(err error) { log.add(fmt.Sprintf("ack%d:%v", i, err)) })
	}
	for i := range 3 {
		if err := s.Write(ctx, batch.Batch{Rec: records(t, mem, lines[i]), Ack: ack(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := log.String(); got != "" {
		t.Fatalf("before flush: %s", got)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := log.String(), "write sync syncdir ack0:<nil> ack1:<nil> ack2:<nil>"; got != want {
		t.Fatalf("flush: %s\nwant %s", got, want)
	}
	if err := s.Flush(ctx); err != nil { // nothing new: no sync
		t.Fatal(err)
	}
	if err := s.Write(ctx, batch.Batch{Rec: records(t, mem, lines[0]), Ack: ack(3)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := log.String(), "write sync syncdir ack0:<nil> ack1:<nil> ack2:<nil> write sync ack3:<nil>"; got != want {
		t.Fatalf("close: %s\nwant %s", got, want)
	}

	// Parquet: footer written, file synced, published, directory synced, then acked.
	*log = events{}
	ppath := filepath.Join(t.TempDir(), "pins.parquet")
	s = open(t, mem, `{path: "`+ppath+`"}`)
	if err := s.Write(ctx, batch.Batch{Rec: records(t, mem, lines...), Ack: ack(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "ack") {
		t.Fatalf("parquet acked before close: %s", log)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := log.String(); !strings.HasSuffix(got, "write sync syncdir ack0:<nil>") {
		t.Fatalf("parquet close: %s", got)
	}
}

// TestWriteErrorsReachAcks: a failed write, sync or directory sync fails
// every batch it covers, and the sink fails from then on. An ack sent
// before the sync, or a failed flush acknowledged as success, fails here.
func TestWriteErrorsReachAcks(t *testing.T) {
	boom := errors.New("disk on fire")
	tests := []struct {
		name, ext                 string
		failWrite, failSync, fdir error
	}{
		{"json write", ".jsonl", boom, nil, nil},
		{"json sync", ".jsonl", nil, boom, nil},
		{"json dir sync", ".jsonl", nil, nil, boom},
		{"parquet write", ".parquet", boom, nil, nil},
		{"parquet sync", ".parquet", nil, boom, nil},
		{"parquet dir sync", ".parquet", nil, nil, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			inject(t, &events{}, tt.failWrite, tt.failSync, tt.fdir)
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "pins"+tt.ext)
			s := open(t, mem, `{path: "`+path+`", row_group_rows: 1}`)
			var mu sync.Mutex
			var errs []error
			ack := func() *batch.Ack {
				return batch.NewAck(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
			}
			var firstErr error
			for i := range 2 {
				if err := s.Write(ctx, batch.Batch{Rec: records(t, mem, lines[i]), Ack: ack()}); err != nil && firstErr == nil {
					firstErr = err
				}
			}
			if err := s.Flush(ctx); err != nil && firstErr == nil {
				firstErr = err
			}
			if err := s.Close(ctx); err != nil && firstErr == nil {
				firstErr = err
			}
			if !errors.Is(firstErr, boom) {
				t.Fatalf("the sink reported %v, want %v", firstErr, boom)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(errs) != 2 {
				t.Fatalf("%d of 2 acks done", len(errs))
			}
			for i, err := range errs {
				if !errors.Is(err, boom) {
					t.Errorf("ack %d: %v, want %v", i, err, boom)
				}
			}
			if err := s.Write(ctx, batch.Batch{Rec: records(t, mem, lines[2])}); err == nil {
				t.Error("write after a failure accepted")
			}
			if tt.ext == ".parquet" && tt.fdir == nil {
				if names, _ := os.ReadDir(dir); len(names) != 0 {
					t.Errorf("a failed parquet file was published or left: %v", names)
				}
			}
		})
	}
}

// testSource emits n one-row batches and records how each ack ended.
type testSource struct {
	n    int
	mu   sync.Mutex
	acks []error
}

var testSchema = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)

func (s *testSource) Run(ctx context.Context, out op.Output) error {
	for i := range s.n {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		b.Append(int64(i))
		arr := b.NewArray()
		b.Release()
		one := array.NewRecordBatch(testSchema, []arrow.Array{arr}, 1)
		arr.Release()
		ack := batch.NewAck(func(err error) { s.mu.Lock(); s.acks = append(s.acks, err); s.mu.Unlock() })
		if err := out.Emit(ctx, batch.Batch{Rec: one, Ack: ack}); err != nil {
			return err
		}
	}
	return nil
}

// TestRunFailsOnWriteError drives the sink through the executor: a full
// disk (/dev/full) or a failing fsync fails the run, and no batch is
// acknowledged as stored.
func TestRunFailsOnWriteError(t *testing.T) {
	tests := []struct {
		name, path string
		failSync   error
		want       error
	}{
		{"full disk", "/dev/full", nil, syscall.ENOSPC},
		{"failed fsync", "", syscall.EIO, syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path == "/dev/full" {
				if _, err := os.Stat(tt.path); err != nil {
					t.Skip("no /dev/full on this system")
				}
			} else {
				tt.path = filepath.Join(t.TempDir(), "pins.jsonl")
			}
			inject(t, &events{}, nil, tt.failSync, nil)
			src := &testSource{n: 50}
			reg := op.NewRegistry()
			if err := reg.Register(&op.Plugin{
				Section: ast.Sources, Spec: spec.Spec{Name: "src", Config: spec.Obj()},
				Prepare: func(*validate.Check) (*arrow.Schema, op.Constructor) {
					return testSchema, func(op.Resources) (any, error) { return src, nil }
				},
			}); err != nil {
				t.Fatal(err)
			}
			if err := reg.Register(Plugin); err != nil {
				t.Fatal(err)
			}
			text := fmt.Sprintf("flowrun: 1\nsources:\n  in: {src: {}}\nsinks:\n  out: {from: in, file: {path: %q, format: json}}\n", tt.path)
			res, errs := validate.Load("p.yaml", []byte(text), nil, reg)
			if len(errs) > 0 {
				t.Fatal(errs.Render())
			}
			p, err := exec.New(res, exec.Options{BatchRows: 1})
			if err != nil {
				t.Fatal(err)
			}
			err = p.Run(context.Background())
			if !errors.Is(err, tt.want) {
				t.Fatalf("run: %v, want %v", err, tt.want)
			}
			src.mu.Lock()
			defer src.mu.Unlock()
			if len(src.acks) != src.n {
				t.Fatalf("%d of %d acks done", len(src.acks), src.n)
			}
			var ok []int
			for i, err := range src.acks {
				if err == nil {
					ok = append(ok, i)
				}
			}
			sort.Ints(ok)
			if len(ok) > 0 {
				t.Fatalf("acks %v succeeded although nothing was stored", ok)
			}
		})
	}
}
