package batch

import (
	"errors"
	"sync"
	"testing"
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
