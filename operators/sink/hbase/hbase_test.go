package hbase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/flowrun/flowrun/dsl/exprc"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/internal/cutproxy"
	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/hbaseclient"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
	"github.com/flowrun/flowrun/runtime/op/optest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "title", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "followers", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// rows builds ids [from,to); title is null every 5th row, id empty at the
// rows listed in emptyID, title is big (bytes) at bigTitle, and note is set
// only at the rows in note.
func rows(alloc memory.Allocator, from, to int, emptyID map[int]bool, bigTitle map[int]int, note ...int) arrow.RecordBatch {
	b := array.NewRecordBuilder(alloc, schema)
	defer b.Release()
	for i := from; i < to; i++ {
		if emptyID[i] {
			b.Field(0).(*array.StringBuilder).Append("")
		} else {
			b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("id%06d", i))
		}
		switch {
		case bigTitle[i] > 0:
			b.Field(1).(*array.StringBuilder).Append(strings.Repeat("x", bigTitle[i]))
		case i%5 == 0:
			b.Field(1).AppendNull()
		default:
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("title %d é", i))
		}
		b.Field(2).(*array.Int64Builder).Append(int64(i*1000 - 7))
		b.Field(3).(*array.Float64Builder).Append(float64(i) / 4)
		b.Field(4).(*array.BooleanBuilder).Append(i%2 == 0)
		b.Field(5).(*array.TimestampBuilder).Append(arrow.Timestamp(t0.Add(time.Duration(i) * time.Second).UnixMicro()))
		lb := b.Field(6).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.StringBuilder).Append("a")
		lb.ValueBuilder().(*array.StringBuilder).Append(fmt.Sprint(i))
		if slices.Contains(note, i) {
			b.Field(7).(*array.StringBuilder).Append("note")
		} else {
			b.Field(7).AppendNull()
		}
	}
	return b.NewRecordBatch()
}

func compileKey(t *testing.T, src string) *exprc.Program {
	t.Helper()
	p, errs := exprc.Compile(spec.ExprSrc{Src: src}, schema)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return p
}

func config(t *testing.T, addr, table string) Config {
	return Config{
		Thrift: addr, Table: table, RowKey: compileKey(t, `id`), Create: true,
		BatchRows: 300, MaxInFlight: 3, Retries: 3, RetryBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
		Columns: []Column{
			{Index: 1, Name: "title", Family: "t", Qualifier: "title"},
			{Index: 6, Name: "tags", Family: "t", Qualifier: "tags"},
			{Index: 2, Name: "followers", Family: "n", Qualifier: "followers"},
			{Index: 3, Name: "score", Family: "n", Qualifier: "score"},
			{Index: 4, Name: "ok", Family: "n", Qualifier: "ok"},
			{Index: 5, Name: "at", Family: "n", Qualifier: "at"},
		},
	}
}

func tableName(t *testing.T) string {
	return fmt.Sprintf("sink_%s_%d", strings.ToLower(t.Name()), time.Now().UnixNano())
}

func dropAfter(t *testing.T, addr, table string) {
	t.Cleanup(func() {
		c, err := hbaseclient.Dial(context.Background(), addr, hbaseclient.Options{})
		if err == nil {
			_ = c.DropTable(context.Background(), table)
			c.Close()
		}
	})
}

func scan(t *testing.T, addr, table string) []hbaseclient.Row {
	t.Helper()
	c, err := hbaseclient.Dial(context.Background(), addr, hbaseclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.Scan(context.Background(), table, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestWriteReadBack writes 1,000 rows in batches of 250 (requests of 300
// rows, 3 in flight) and reads every cell back from HBase, decoded the
// documented way; a second write of the same rows changes nothing.
func TestWriteReadBack(t *testing.T) {
	addr := testenv.HBase(t)
	alloc := optest.Allocator(t)
	table := tableName(t)
	dropAfter(t, addr, table)
	ctx := context.Background()
	for round := range 2 {
		s, err := New(ctx, op.Resources{Node: "out", Alloc: alloc}, config(t, addr, table), schema)
		if err != nil {
			t.Fatal(err)
		}
		var a optest.Acks
		for from := 0; from < 1000; from += 250 {
			if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, from, from+250, nil, nil), Ack: a.New()}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal("second Close:", err)
		}
		if n, errs := a.Get(); n != 4 || len(errs) > 0 {
			t.Fatalf("round %d: %d acks, errors %v", round, n, errs)
		}
		got := scan(t, addr, table)
		if len(got) != 1000 {
			t.Fatalf("round %d: %d rows in HBase, want 1000", round, len(got))
		}
		for i, r := range got {
			checkRow(t, i, r)
		}
	}
}

func checkRow(t *testing.T, i int, r hbaseclient.Row) {
	t.Helper()
	if want := fmt.Sprintf("id%06d", i); string(r.Key) != want {
		t.Fatalf("row %d key %q, want %q", i, r.Key, want)
	}
	want := map[string]any{
		"n:followers": int64(i*1000 - 7),
		"n:score":     float64(i) / 4,
		"n:ok":        i%2 == 0,
		"n:at":        t0.Add(time.Duration(i) * time.Second),
		"t:tags":      fmt.Sprintf(`["a","%d"]`, i),
	}
	if i%5 != 0 {
		want["t:title"] = fmt.Sprintf("title %d é", i)
	}
	encs := map[string]hbaseclient.Encoding{"n:followers": hbaseclient.EncInt64, "n:score": hbaseclient.EncFloat64,
		"n:ok": hbaseclient.EncBool, "n:at": hbaseclient.EncTimestampMicros, "t:tags": hbaseclient.EncString, "t:title": hbaseclient.EncString}
	if len(r.Cells) != len(want) {
		t.Fatalf("row %d: %d cells, want %d", i, len(r.Cells), len(want))
	}
	for _, c := range r.Cells {
		col := string(c.Family) + ":" + string(c.Qualifier)
		v, err := hbaseclient.Decode(encs[col], c.Value)
		if err != nil {
			t.Fatalf("row %d %s: %v", i, col, err)
		}
		if tv, ok := v.(time.Time); ok {
			v = tv
			if !tv.Equal(want[col].(time.Time)) {
				t.Fatalf("row %d %s = %v, want %v", i, col, v, want[col])
			}
			continue
		}
		if v != want[col] {
			t.Fatalf("row %d %s = %#v, want %#v", i, col, v, want[col])
		}
	}
}

// TestRefusedRowsToDeadLetters: a row HBase refuses (a cell over the
// gateway's 10 MiB KeyValue limit) is found by splitting the request and
// goes to the dead-letter output with HBase's reason, as does a row whose
// key is empty; every other row is stored and the batch is acknowledged.
func TestRefusedRowsToDeadLetters(t *testing.T) {
	addr := testenv.HBase(t)
	alloc := optest.Allocator(t)
	table := tableName(t)
	dropAfter(t, addr, table)
	ctx := context.Background()
	c, err := hbaseclient.Dial(ctx, addr, hbaseclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTable(ctx, table, []string{"t", "n"}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	cfg := config(t, addr, table)
	cfg.Create = false
	cfg.Columns = append(cfg.Columns, Column{Index: 7, Name: "note", Family: "zz", Qualifier: "note"})
	dl := &optest.DeadLetters{}
	s, err := New(ctx, op.Resources{Node: "out", Alloc: alloc, DeadLetters: dl}, cfg, schema)
	if err != nil {
		t.Fatal(err)
	}
	var a optest.Acks
	rec := rows(alloc, 0, 200, map[int]bool{17: true}, map[int]int{123: 11 << 20}, 31, 150, 151)
	if err := s.Write(ctx, batch.Batch{Rec: rec, Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, errs := a.Get(); n != 1 || len(errs) > 0 {
		t.Fatalf("%d acks, errors %v", n, errs)
	}
	if len(dl.Records()) != 5 {
		t.Fatalf("dead letters %d, want 5: %v", len(dl.Records()), dl.Reasons())
	}
	want := map[string]string{
		`"id":""`:         "row_key is empty",
		`"id":"id000123"`: "exceeds max_cell_bytes (10485760)",
		`"id":"id000031"`: "NoSuchColumnFamilyException: Column family zz does not exist",
		`"id":"id000150"`: "NoSuchColumnFamilyException: Column family zz does not exist",
		`"id":"id000151"`: "NoSuchColumnFamilyException: Column family zz does not exist",
	}
	for id, reason := range want {
		found := false
		for i, rec := range dl.Records() {
			if strings.Contains(rec, id) {
				found = true
				if !strings.Contains(dl.Reasons()[i], reason) {
					t.Errorf("%s: reason %q, want it to contain %q", id, dl.Reasons()[i], reason)
				}
			}
		}
		if !found {
			t.Errorf("%s not dead-lettered", id)
		}
	}
	got := scan(t, addr, table)
	if len(got) != 195 {
		t.Fatalf("%d rows stored, want 195", len(got))
	}
}

// flaky fails the first n puts with a transport error, then passes them on.
type flaky struct {
	putter
	mu    *sync.Mutex
	fails *int
	calls *int
}

func (f flaky) PutMultiple(ctx context.Context, table string, puts []hbaseclient.Put) error {
	f.mu.Lock()
	*f.calls++
	fail := *f.fails > 0
	if fail {
		*f.fails--
	}
	f.mu.Unlock()
	if fail {
		return errors.New("connection reset by peer (injected)")
	}
	return f.putter.PutMultiple(ctx, table, puts)
}

// TestRetriesThenFails: transport failures are retried with back-off and
// the rows land; when they outlast the retries the batch's ack fails, Flush
// and Close report it, and nothing is acknowledged as stored.
func TestRetriesThenFails(t *testing.T) {
	addr := testenv.HBase(t)
	table := tableName(t)
	dropAfter(t, addr, table)
	ctx := context.Background()
	for _, tc := range []struct {
		fails   int
		wantErr bool
	}{{fails: 3}, {fails: 100, wantErr: true}} {
		alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
		cfg := config(t, addr, table)
		cfg.MaxInFlight = 1
		cfg.BatchRows = 1000
		s, err := New(ctx, op.Resources{Node: "out", Alloc: alloc}, cfg, schema)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		fails, calls := tc.fails, 0
		real := s.dial
		s.dial = func(ctx context.Context) (putter, error) {
			c, err := real(ctx)
			if err != nil {
				return nil, err
			}
			return flaky{putter: c, mu: &mu, fails: &fails, calls: &calls}, nil
		}
		var a optest.Acks
		if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, 0, 100, nil, nil), Ack: a.New()}); err != nil {
			t.Fatal(err)
		}
		closeErr := s.Close(ctx)
		n, errs := a.Get()
		if n != 1 {
			t.Fatalf("fails=%d: %d acks", tc.fails, n)
		}
		if !tc.wantErr {
			if closeErr != nil || len(errs) > 0 || calls != 4 {
				t.Fatalf("fails=%d: close %v, ack errors %v, %d calls (want 4)", tc.fails, closeErr, errs, calls)
			}
			if got := scan(t, addr, table); len(got) != 100 {
				t.Fatalf("%d rows stored, want 100", len(got))
			}
		} else {
			if closeErr == nil || len(errs) != 1 || !strings.Contains(errs[0].Error(), "after 3 retries") || calls != 4 {
				t.Fatalf("fails=%d: close %v, ack errors %v, %d calls (want 4)", tc.fails, closeErr, errs, calls)
			}
			if err := s.Flush(ctx); err == nil {
				t.Fatal("Flush after a failed batch returned nil")
			}
		}
		alloc.AssertSize(t, 0)
	}
}

// TestMissingTable: without create a missing table is an error at start.
func TestMissingTable(t *testing.T) {
	addr := testenv.HBase(t)
	cfg := config(t, addr, tableName(t))
	cfg.Create = false
	_, err := New(context.Background(), op.Resources{Node: "out"}, cfg, schema)
	if err == nil || !strings.Contains(err.Error(), "does not exist (set 'create: true'") {
		t.Fatalf("err = %v", err)
	}
}

// stale reports every connection as idle for an hour.
type stale struct{ putter }

func (stale) Idle() time.Duration { return time.Hour }

// TestIdleConnectionRedialled: a connection idle longer than the gateway
// keeps one open is replaced before use rather than failing a request.
func TestIdleConnectionRedialled(t *testing.T) {
	addr := testenv.HBase(t)
	table := tableName(t)
	dropAfter(t, addr, table)
	alloc := optest.Allocator(t)
	ctx := context.Background()
	cfg := config(t, addr, table)
	cfg.MaxInFlight, cfg.BatchRows = 1, 100
	s, err := New(ctx, op.Resources{Node: "out", Alloc: alloc}, cfg, schema)
	if err != nil {
		t.Fatal(err)
	}
	var dials int
	real := s.dial
	s.dial = func(ctx context.Context) (putter, error) {
		dials++
		c, err := real(ctx)
		if err != nil {
			return nil, err
		}
		return stale{c}, nil
	}
	var a optest.Acks
	if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, 0, 300, nil, nil), Ack: a.New()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, errs := a.Get(); n != 1 || len(errs) > 0 || dials != 3 {
		t.Fatalf("%d acks, errors %v, %d dials (want 3: one per request)", n, errs, dials)
	}
}

// syncBuf is a goroutine-safe log buffer.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestGatewayOutageRetried: the connection to the real gateway is cut (open
// connections reset, new ones closed at once) while batches are being
// written, and restored a second later. The senders retry with back-off and
// reconnect; every batch is acknowledged without error only after its rows
// are stored, and every row is in HBase once the sink closes (a put whose
// reply was lost is simply written again: puts are idempotent).
func TestGatewayOutageRetried(t *testing.T) {
	addr := testenv.HBase(t)
	table := tableName(t)
	dropAfter(t, addr, table)
	proxy, err := cutproxy.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	alloc := optest.Allocator(t)
	ctx := context.Background()
	cfg := config(t, proxy.Addr, table)
	cfg.BatchRows, cfg.MaxInFlight = 200, 2
	cfg.Retries, cfg.RetryBackoff, cfg.MaxBackoff = 30, 20*time.Millisecond, 300*time.Millisecond
	var logs syncBuf
	s, err := New(ctx, op.Resources{Node: "out", Alloc: alloc, Log: slog.New(slog.NewTextHandler(&logs, nil))}, cfg, schema)
	if err != nil {
		t.Fatal(err)
	}
	var a optest.Acks
	for from := 0; from < 2000; from += 250 {
		if from == 500 {
			proxy.Cut()
			time.AfterFunc(time.Second, proxy.Resume)
		}
		if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, from, from+250, nil, nil), Ack: a.New()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n, errs := a.Get(); n != 8 || len(errs) > 0 {
		t.Fatalf("%d acks, errors %v", n, errs)
	}
	if proxy.Cuts.Load() == 0 || !strings.Contains(logs.String(), "put failed, retrying") {
		t.Fatalf("the outage did not hit the sink (cuts %d); log:\n%s", proxy.Cuts.Load(), logs.String())
	}
	got := scan(t, addr, table)
	if len(got) != 2000 {
		t.Fatalf("%d rows in HBase, want 2000", len(got))
	}
	for i, r := range got {
		checkRow(t, i, r)
	}
}

// sizes records the size of every request it passes on.
type sizes struct {
	putter
	mu  *sync.Mutex
	got *[]int
}

func (s sizes) PutMultiple(ctx context.Context, table string, puts []hbaseclient.Put) error {
	s.mu.Lock()
	*s.got = append(*s.got, len(puts))
	s.mu.Unlock()
	return s.putter.PutMultiple(ctx, table, puts)
}

// TestPartialRequestWaitsOneFlush: a full request goes at once; rows short
// of batch_rows wait through one periodic Flush (more rows may come and
// fill the request) and go at the next, so a steady input is sent in whole
// requests rather than one cut short every second; Close sends the rest.
func TestPartialRequestWaitsOneFlush(t *testing.T) {
	addr := testenv.HBase(t)
	table := tableName(t)
	dropAfter(t, addr, table)
	ctx := context.Background()
	alloc := optest.Allocator(t)
	cfg := config(t, addr, table)
	cfg.MaxInFlight, cfg.BatchRows = 2, 500
	s, err := New(ctx, op.Resources{Node: "out", Alloc: alloc}, cfg, schema)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []int
	real := s.dial
	s.dial = func(ctx context.Context) (putter, error) {
		c, err := real(ctx)
		if err != nil {
			return nil, err
		}
		return sizes{putter: c, mu: &mu, got: &got}, nil
	}
	var a optest.Acks
	waitAcks := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if n, _ := a.Get(); n >= want {
				return
			}
		}
		n, errs := a.Get()
		t.Fatalf("%d acks (%v), want %d", n, errs, want)
	}
	requests := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), got...)
	}
	write := func(from, to int) {
		t.Helper()
		if err := s.Write(ctx, batch.Batch{Rec: rows(alloc, from, to, nil, nil), Ack: a.New()}); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 600) // 500 go at once, 100 wait
	waitAcks(0)
	time.Sleep(50 * time.Millisecond)
	if r := requests(); fmt.Sprint(r) != "[500]" {
		t.Fatalf("after 600 rows: requests %v, want [500]", r)
	}
	if err := s.Flush(ctx); err != nil { // the first flush that sees the 100: they wait
		t.Fatal(err)
	}
	write(600, 750)
	time.Sleep(50 * time.Millisecond)
	if r := requests(); fmt.Sprint(r) != "[500]" {
		t.Fatalf("after one flush: requests %v, want [500] (the partial request waits)", r)
	}
	if n, _ := a.Get(); n != 0 {
		t.Fatalf("%d batches acknowledged before their rows were sent", n)
	}
	if err := s.Flush(ctx); err != nil { // the second: 250 rows go
		t.Fatal(err)
	}
	waitAcks(2)
	if r := requests(); fmt.Sprint(r) != "[500 250]" {
		t.Fatalf("after two flushes: requests %v, want [500 250]", r)
	}
	write(750, 760)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitAcks(3)
	if r := requests(); fmt.Sprint(r) != "[500 250 10]" {
		t.Fatalf("after close: requests %v, want [500 250 10]", r)
	}
	if n := len(scan(t, addr, table)); n != 760 {
		t.Fatalf("%d rows stored, want 760", n)
	}
}
