package batch

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestAckCompletesOnceAfterAllRefs(t *testing.T) {
	calls, got := 0, error(nil)
	a := NewAck(func(err error) { calls++; got = err })
	a.Retain(2)
	a.Done(nil)
	a.Done(nil)
	if calls != 0 {
		t.Fatal("completed before the last reference")
	}
	boom := errors.New("boom")
	a.Done(boom)
	if calls != 1 || !errors.Is(got, boom) {
		t.Fatalf("calls=%d err=%v", calls, got)
	}
}

func TestAckFirstErrorWins(t *testing.T) {
	var got error
	a := NewAck(func(err error) { got = err })
	a.Retain(1)
	first, second := errors.New("first"), errors.New("second")
	a.Done(first)
	a.Done(second)
	if got != first {
		t.Fatalf("got %v", got)
	}
}

func TestMergeFinishesEveryParent(t *testing.T) {
	var mu sync.Mutex
	done := map[int]error{}
	var parents []*Ack
	for i := range 3 {
		parents = append(parents, NewAck(func(err error) { mu.Lock(); done[i] = err; mu.Unlock() }))
	}
	m := Merge(append(parents, nil)...)
	if len(done) != 0 {
		t.Fatal("parents finished early")
	}
	m.Done(nil)
	if len(done) != 3 {
		t.Fatalf("finished %d parents", len(done))
	}
}

// A failed write behind a merge must fail every parent: finishing them with
// nil would commit source positions of lost rows.
func TestMergePassesTheErrorToEveryParent(t *testing.T) {
	boom := errors.New("write failed")
	got := make([]error, 3)
	calls := make([]int, 3)
	var parents []*Ack
	for i := range 3 {
		parents = append(parents, NewAck(func(err error) { calls[i]++; got[i] = err }))
	}
	m := Merge(parents...)
	m.Retain(1)
	m.Done(nil)
	m.Done(boom)
	for i := range 3 {
		if calls[i] != 1 || !errors.Is(got[i], boom) {
			t.Fatalf("parent %d: called %d times with %v, want once with %v", i, calls[i], got[i], boom)
		}
	}
}

func TestMergeUnionsPositions(t *testing.T) {
	a := NewAck(nil).WithPositions(Position{Source: "in", Topic: "t", Partition: 0, First: 10, Last: 19})
	b := NewAck(nil).WithPositions(
		Position{Source: "in", Topic: "t", Partition: 1, First: 0, Last: 4},
		Position{Source: "in", Topic: "t", Partition: 0, First: 0, Last: 9},
	)
	c := NewAck(nil).WithPositions(Position{Source: "in", Topic: "t", Partition: 0, First: 25, Last: 30})
	d := NewAck(nil).WithPositions(Position{Source: "in", Topic: "t", Partition: 0, First: 15, Last: 22})
	e := NewAck(nil).WithPositions(Position{Source: "other", Topic: "t", Partition: 0, First: 3, Last: 3})
	m := Merge(a, b, nil, c, d, e)
	want := []Position{
		{Source: "in", Topic: "t", Partition: 0, First: 0, Last: 22},
		{Source: "in", Topic: "t", Partition: 0, First: 25, Last: 30},
		{Source: "in", Topic: "t", Partition: 1, First: 0, Last: 4},
		{Source: "other", Topic: "t", Partition: 0, First: 3, Last: 3},
	}
	if got := m.Positions(); !slices.Equal(got, want) {
		t.Fatalf("positions\n got %v\nwant %v", got, want)
	}
	// Merging does not change a parent's own positions.
	if got := b.Positions(); len(got) != 2 || got[0].Partition != 1 {
		t.Fatalf("parent positions changed: %v", got)
	}
	// A merge of one ack is that ack, positions and all.
	if one := Merge(nil, c); one != c {
		t.Fatal("merge of one ack should be the ack")
	}
	m.Done(nil)
}

func TestAbandonFinishesOnceAndIgnoresLaterDones(t *testing.T) {
	calls, got := 0, error(nil)
	a := NewAck(func(err error) { calls++; got = err })
	a.Retain(2) // references out in queues when the holder panicked
	boom := errors.New("panic")
	a.Abandon(boom)
	if calls != 1 || !errors.Is(got, boom) {
		t.Fatalf("calls=%d err=%v", calls, got)
	}
	a.Done(nil)
	a.Done(nil)
	a.Done(nil) // more than retained: ignored after Abandon
	if calls != 1 {
		t.Fatalf("callback ran %d times", calls)
	}
}

func TestOnDoneRunsBeforeTheCallback(t *testing.T) {
	var order []string
	a := NewAck(func(error) { order = append(order, "fn") })
	a.OnDone(func(error) { order = append(order, "observer") })
	a.Done(nil)
	if !slices.Equal(order, []string{"observer", "fn"}) {
		t.Fatalf("order %v", order)
	}
}

func int64Record(t *testing.T, mem memory.Allocator, n int) arrow.RecordBatch {
	t.Helper()
	b := array.NewInt64Builder(mem)
	defer b.Release()
	s := array.NewStringBuilder(mem)
	defer s.Release()
	for i := range n {
		b.Append(int64(i))
		s.Append("abcdefghij") // 10 bytes each
	}
	ia, sa := b.NewArray(), s.NewArray()
	defer ia.Release()
	defer sa.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	return array.NewRecordBatch(schema, []arrow.Array{ia, sa}, int64(n))
}

// A slice is charged for the rows it holds, not for its parent's buffers.
func TestBytesCountsSlicesByTheirRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := int64Record(t, mem, 100_000)
	defer rec.Release()
	whole := Batch{Rec: rec}.Bytes()
	// 8 bytes + 4 bytes offset + 10 bytes string per row, + one offset,
	// + a validity bit per row and column (the builders allocate bitmaps).
	if want := int64(100_000*22 + 4 + 2*100_000/8); whole != want {
		t.Fatalf("whole batch: %d bytes, want %d", whole, want)
	}
	for _, tc := range []struct{ from, to, want int64 }{
		{0, 1, 8 + 4*2 + 10 + 2},
		{50_000, 50_010, 10*8 + 4*11 + 100 + 2*2},
		{99_999, 100_000, 8 + 4*2 + 10 + 2},
		{0, 0, 0},
	} {
		s := rec.NewSlice(tc.from, tc.to)
		got := Batch{Rec: s}.Bytes()
		s.Release()
		if got != tc.want {
			t.Errorf("slice [%d,%d): %d bytes, want %d", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestBytesOfNestedSlices(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	lt := arrow.ListOf(arrow.PrimitiveTypes.Int32)
	st := arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true})
	schema := arrow.NewSchema([]arrow.Field{{Name: "l", Type: lt}, {Name: "st", Type: st, Nullable: true}}, nil)
	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	lb := rb.Field(0).(*array.ListBuilder)
	sb := rb.Field(1).(*array.StructBuilder)
	for i := range 1000 {
		lb.Append(true)
		for j := range 3 {
			lb.ValueBuilder().(*array.Int32Builder).Append(int32(i + j))
		}
		sb.Append(true)
		sb.FieldBuilder(0).(*array.Int64Builder).Append(int64(i))
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	s := rec.NewSlice(10, 12)
	defer s.Release()
	// list: 3 offsets (12) + 6 int32 values (24); struct: 2 int64 (16);
	// a validity byte for each of the four arrays.
	if got, want := (Batch{Rec: s}).Bytes(), int64(12+24+16+4); got != want {
		t.Fatalf("nested slice: %d bytes, want %d", got, want)
	}
}

func TestDoneTooOftenPanics(t *testing.T) {
	a := NewAck(nil)
	a.Done(nil)
	defer func() {
		if recover() == nil {
			t.Fatal("expected panic")
		}
	}()
	a.Done(nil)
}

func TestNilAckIsANoop(t *testing.T) {
	var a *Ack
	a.Retain(3)
	a.Done(errors.New("ignored"))
	if Merge(nil, nil) != nil {
		t.Fatal("merge of nils should be nil")
	}
}
