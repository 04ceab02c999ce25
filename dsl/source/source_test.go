package source

import "testing"

func TestRenderPointsAtColumn(t *testing.T) {
	f := NewFile("p.yaml", []byte("name: x\n  from: clen\n"))
	e := &Error{Pos: Pos{File: f, Line: 2, Column: 9}, Msg: "unknown node 'clen'", Hint: "did you mean 'clean'?"}
	want := "p.yaml:2:9: unknown node 'clen' (did you mean 'clean'?)\n      from: clen\n            ^\n"
	if got := e.Render(); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestRenderCaretCountsRunes(t *testing.T) {
	f := NewFile("p.yaml", []byte("title: \"héllo\" + x\n"))
	e := &Error{Pos: Pos{File: f, Line: 1, Column: 18}, Msg: "m"}
	want := "p.yaml:1:18: m\n    title: \"héllo\" + x\n                     ^\n"
	if got := e.Render(); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"clean", "valid", "posts", "per_category"}
	for _, tc := range []struct{ in, want string }{
		{"clen", "clean"},
		{"clena", "clean"},
		{"Valid", "valid"},
		{"post", "posts"},
		{"zzzzzz", ""},
		{"per_categroy", "per_category"},
	} {
		if got := Suggest(tc.in, cands); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestErrorsSortAndDedupe(t *testing.T) {
	f := NewFile("a.yaml", nil)
	var l Errors
	l.Add(Pos{File: f, Line: 3, Column: 1}, "c")
	l.Add(Pos{File: f, Line: 1, Column: 5}, "a")
	l.Add(Pos{File: f, Line: 3, Column: 1}, "c")
	l.Add(Pos{File: f, Line: 1, Column: 2}, "b")
	l.Sort()
	if len(l) != 3 || l[0].Msg != "b" || l[1].Msg != "a" || l[2].Msg != "c" {
		t.Fatalf("sorted: %v", l)
	}
	if l.Err() == nil || Errors(nil).Err() != nil {
		t.Fatal("Err mismatch")
	}
}
