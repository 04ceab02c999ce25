package testfile

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	f, errs := Parse("x.test.yaml", []byte(`
pipeline: p.yaml
vars: {A: b}
tests:
  - name: one
    at: 2026-11-25T13:00:00Z
    steps:
      - input: {posts: [{id: a, $partition: 2, $key: k}]}
      - advance: 90s
    expect:
      out: [{id: a}]
      bad: {rows: [], ordered: true, columns: [reason]}
`))
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	if f.Pipeline != "p.yaml" || f.Vars["A"] != "b" || len(f.Tests) != 1 {
		t.Fatalf("file = %+v", f)
	}
	tt := f.Tests[0]
	if !tt.Start.Equal(time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)) || len(tt.Steps) != 2 {
		t.Fatalf("test = %+v", tt)
	}
	row := tt.Steps[0].Inputs[0].Rows[0]
	if row.Partition != 2 || row.Key == nil || *row.Key != "k" || len(row.Cells) != 1 || row.Cells[0].Column != "id" {
		t.Errorf("row = %+v", row)
	}
	if tt.Steps[1].Advance != 90*time.Second {
		t.Errorf("steps = %+v", tt.Steps[1])
	}
	if len(tt.Expect) != 2 || !tt.Expect[1].Ordered || tt.Expect[1].Columns[0] != "reason" || tt.Expect[1].Rows != nil {
		t.Errorf("expect = %+v %+v", tt.Expect[0], tt.Expect[1])
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"tests: 3", "x.test.yaml:1:8: tests must be a list, not \"3\""},
		{"test: []", "unknown key 'test' in a test file (did you mean 'tests'?)"},
		{"tests: [{name: a, expect: {}, steps: [{advance: -1s}]}]", "advance must be a positive duration"},
		{"tests: [{name: a, expect: {}, steps: [{advance: 1s, input: {}}]}]", "a step does one thing"},
		{"tests: [{name: a, at: yesterday, expect: {}}]", "at must be an RFC 3339 time"},
		{"tests: [{name: a, expect: {}, steps: [{watermark: {s: yesterday}}]}]", "x.test.yaml:1:55: a watermark must be an RFC 3339 time"},
		{"tests: [{name: a, expect: {}, steps: [{watermark: {s: {partition: 1}}}]}]", "a watermark needs a 'time:'"},
		{"tests: [{name: a, expect: {}, steps: [{watermark: {s: {time: \"2026-11-25T12:00:00Z\", partition: x}}}]}]", "a watermark's partition must be a partition number"},
		{"tests: [{name: a, expect: {}, steps: [{watermark: {s: {tme: 1}}}]}]", "unknown key 'tme' in a watermark (did you mean 'time'?)"},
		{"tests: [{name: a, expect: {}, steps: [{watermark: {}, advance: 1s}]}]", "a step does one thing"},
		{"tests: [{name: a, expect: {o: [{$partition: x}]}}]", "'$partition' is input metadata"},
		{"tests: [{name: a, input: {s: [{$partition: -1}]}, expect: {}}]", "$partition must be a partition number"},
		{"tests: [{name: a, expect: {o: {ordered: true}}}]", "needs 'rows:'"},
		{"tests: [{name: a}]", "has no 'expect:'"},
		{"tests: [[1]", "x.test.yaml:1:"},
		{"", "empty test file"},
	} {
		_, errs := Parse("x.test.yaml", []byte(c.text))
		if !strings.Contains(errs.Error(), c.want) {
			t.Errorf("%q: got %q, want %q", c.text, errs.Error(), c.want)
		}
	}
}

func TestSchemaIsJSON(t *testing.T) {
	b, err := json.Marshal(FileSchema())
	if err != nil || !strings.Contains(string(b), `"expect"`) {
		t.Fatalf("%v %s", err, b)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("tests: [{name: a, input: {s: [{a: 1}]}, expect: {o: [{a: 1}]}}]"))
	f.Add([]byte("tests:\n  - name: x\n    steps: [{advance: 1m}, {input: {s: [{a: 1}]}}]\n    expect: {o: {rows: [], ordered: true}}\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		file, errs := Parse("f.test.yaml", text)
		for _, e := range errs {
			if !e.Pos.IsValid() {
				t.Fatalf("error without a position: %v", e)
			}
		}
		if file == nil && len(errs) == 0 {
			t.Fatal("no file and no error")
		}
	})
}
