package xftest_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/source/generate"
	"github.com/flowrun/flowrun/operators/transform/cast"
	"github.com/flowrun/flowrun/operators/transform/dedupe"
	"github.com/flowrun/flowrun/operators/transform/drop"
	"github.com/flowrun/flowrun/operators/transform/explode"
	"github.com/flowrun/flowrun/operators/transform/filter"
	mapop "github.com/flowrun/flowrun/operators/transform/map"
	"github.com/flowrun/flowrun/operators/transform/rename"
	selectop "github.com/flowrun/flowrun/operators/transform/select"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/op"
)

// collectSink counts rows and distinct values of the first column per sink.
type collectSink struct {
	mu   sync.Mutex
	rows map[string]int
	ids  map[string]map[string]int
}

func (c *collectSink) plugin() *op.Plugin {
	return &op.Plugin{
		Section: ast.Sinks,
		Spec:    spec.Spec{Name: "collect", Config: spec.Obj()},
		Prepare: func(v *validate.Check) (*arrow.Schema, op.Constructor) {
			name := v.Node.Name
			return nil, func(op.Resources) (any, error) { return &sinkNode{c, name}, nil }
		},
	}
}

type sinkNode struct {
	c    *collectSink
	name string
}

func (s *sinkNode) Write(ctx context.Context, b batch.Batch) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.rows[s.name] += b.Rows()
	if col, ok := b.Rec.Column(0).(*array.String); ok {
		m := s.c.ids[s.name]
		if m == nil {
			m = map[string]int{}
			s.c.ids[s.name] = m
		}
		for i := range col.Len() {
			m[col.Value(i)]++
		}
	}
	b.Release(nil)
	return nil
}

const pipeline = `flowrun: 1
name: pins
sources:
  posts:
    generate: {count: 20000, seed: 5}
transforms:
  ids:
    from: posts
    select: [unique_id, category, follower_count, tag_list, index]
  valid:
    from: ids
    filter: unique_id != nil && category != nil
  clean:
    from: valid
    map:
      follower_count: 'parse_count(nullif(follower_count, "User Info Error"))'
      tag_list: 'nullif(tag_list, "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e")'
    dead_letter: bad
  typed: {from: clean, cast: {tag_list: "list<string>"}}
  renamed: {from: typed, rename: {index: ind}}
  unique: {from: renamed, dedupe: {key: unique_id}}
  tags: {from: unique, explode: tag_list}
  slim: {from: tags, drop: [ind]}
sinks:
  pins: {from: unique, collect: {}}
  tagrows: {from: slim, collect: {}}
  bad: {collect: {}}
`

func TestPinterestPipeline(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	reg := op.NewRegistry()
	sink := &collectSink{rows: map[string]int{}, ids: map[string]map[string]int{}}
	for _, p := range []*op.Plugin{generate.Plugin, selectop.Plugin, filter.Plugin, mapop.Plugin, cast.Plugin,
		rename.Plugin, dedupe.Plugin, explode.Plugin, drop.Plugin, sink.plugin()} {
		if err := reg.Register(p); err != nil {
			t.Fatal(err)
		}
	}
	res, errs := validate.Load("pins.yaml", []byte(pipeline), nil, reg)
	if len(errs) > 0 {
		t.Fatalf("validate:\n%s", errs.Render())
	}
	p, err := exec.New(res, exec.Options{Alloc: mem, BatchRows: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	pins := sink.rows["pins"]
	for id, n := range sink.ids["pins"] {
		if n != 1 {
			t.Fatalf("id %s written %d times", id, n)
		}
	}
	t.Logf("rows: %v", sink.rows)
	if pins < 19000 || pins > 19900 {
		t.Errorf("pins %d: expected ~1%% duplicates and ~0.5%% invalid removed", pins)
	}
	if sink.rows["tagrows"] < pins*5 {
		t.Errorf("tag rows %d for %d pins", sink.rows["tagrows"], pins)
	}
	if sink.rows["bad"] != 0 {
		t.Errorf("dead letters %d", sink.rows["bad"])
	}
}

// TestDedupeFullNamesTheNode: a dedupe past max_keys stops the run with an
// error that names the node and the bound (on_full: error, the default),
// or lets the run finish (forget_oldest). The error is permanent
// (op.IsPermanent through the runtime's wrapping), so a scheduler does not
// retry it.
func TestDedupeFullNamesTheNode(t *testing.T) {
	for _, tc := range []struct{ onFull, err string }{
		{"", `node "unique": dedupe: a new key arrived with max_keys (1000) keys held; forgetting one would let a later repeat of it pass unnoticed, so the run stops.`},
		{"on_full: forget_oldest", ""},
	} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		reg := op.NewRegistry()
		sink := &collectSink{rows: map[string]int{}, ids: map[string]map[string]int{}}
		for _, p := range []*op.Plugin{generate.Plugin, dedupe.Plugin, sink.plugin()} {
			if err := reg.Register(p); err != nil {
				t.Fatal(err)
			}
		}
		yaml := `flowrun: 1
name: full
sources:
  posts: {generate: {count: 3000, seed: 5}}
transforms:
  unique: {from: posts, dedupe: {key: [unique_id], max_keys: 1000, ` + tc.onFull + `}}
sinks:
  pins: {from: unique, collect: {}}
`
		res, errs := validate.Load("full.yaml", []byte(yaml), nil, reg)
		if len(errs) > 0 {
			t.Fatalf("validate:\n%s", errs.Render())
		}
		p, err := exec.New(res, exec.Options{Alloc: mem, BatchRows: 500})
		if err != nil {
			t.Fatal(err)
		}
		err = p.Run(context.Background())
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.onFull, err)
		case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
			t.Errorf("%q: error %v\nwant it to start with %s", tc.onFull, err, tc.err)
		case tc.err != "" && !op.IsPermanent(err):
			t.Errorf("%q: the pipeline's error %v is not permanent: a scheduler would retry a run that fills the keys again", tc.onFull, err)
		case tc.err == "" && sink.rows["pins"] < 2900:
			t.Errorf("%q: %d rows passed", tc.onFull, sink.rows["pins"])
		}
		mem.AssertSize(t, 0)
	}
}
