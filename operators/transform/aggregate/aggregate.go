// Package aggregate is the `aggregate` transform: a group-by over the whole
// (bounded) input that emits one row per key when the input ends. For
// results over time on unbounded input, use a window instead.
package aggregate

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/agg"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

func init() {
	op.MustRegister(&op.Plugin{
		Section: ast.Transforms,
		Spec: spec.Spec{
			Name:    "aggregate",
			Summary: "Group the whole input by key and compute aggregates, emitted when the input ends.",
			Doc: `Rows are grouped by the key columns (all rows form one group when key is
empty). Each output column is fn(column) with fn one of count, sum, min, max,
avg, median, count_distinct, first, last; count() counts rows. Nulls are
ignored by every function but count(). Output rows are sorted by key. The
input's acknowledgements are held until the result is emitted, so a source
position is never committed before the aggregate that covers it is written.
Because of that the input must end: behind an unbounded source (kafka
without --once, http, generate without count) the node is refused; use a
window for a stream.`,
			Example: `summary:
  from: clean
  aggregate:
    key: [category]
    columns: {posts: count(), avg_followers: avg(follower_count)}`,
			Config: spec.Obj(
				spec.F("key", spec.StringList, "Columns to group by."),
				spec.F("columns", spec.StringMap, "Output column: aggregate call, e.g. posts: count().").Req(),
			),
		},
		Prepare: prepare,
	})
}

type config struct {
	keys  []int
	specs []agg.Spec
	out   *arrow.Schema
	in    *arrow.Schema
}

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	in := c.In()
	cfg := &config{in: in}
	ok := true
	keyVal := c.Config.Get("key")
	for _, k := range keyVal.Strs {
		idx := in.FieldIndices(k)
		if len(idx) == 0 {
			e := c.Errorf(keyVal.Pos, "key: unknown column '%s'", k)
			e.Hint = source.DidYouMean(k, names(in))
			ok = false
			continue
		}
		cfg.keys = append(cfg.keys, idx[0])
	}
	for _, e := range c.Config.Get("columns").Entries {
		s, good := agg.Parse(e.Key, e.Value.Str, in, e.Value.Pos, c.Errs)
		ok = ok && good
		cfg.specs = append(cfg.specs, s)
	}
	if !c.RequireBounded("aggregate emits its result and acknowledges its input only when the input ends",
		"use a window (windows: tumbling) for a stream, or run with --once") {
		ok = false
	}
	if !c.RequireWholeInput("aggregate needs every row of its groups") {
		ok = false
	}
	if !ok {
		return nil, nil
	}
	cfg.out = agg.OutputSchema(in, cfg.keys, cfg.specs)
	return cfg.out, func(r op.Resources) (any, error) {
		return &transform{cfg: cfg, res: r, groups: map[string]*group{}}, nil
	}
}

func names(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

type group struct {
	key  []any
	accs []*agg.Acc
}

type transform struct {
	cfg    *config
	res    op.Resources
	groups map[string]*group
	acks   []*batch.Ack
	buf    []byte
}

func (t *transform) Process(ctx context.Context, in batch.Batch, out op.Output) error {
	defer in.Rec.Release()
	t.acks = append(t.acks, in.Ack)
	keyGet := make([]arrowx.Getter, len(t.cfg.keys))
	for i, k := range t.cfg.keys {
		keyGet[i] = arrowx.NewGetter(in.Rec.Column(k))
	}
	valGet := make([]arrowx.Getter, len(t.cfg.specs))
	for i, s := range t.cfg.specs {
		if s.Index >= 0 {
			valGet[i] = arrowx.NewGetter(in.Rec.Column(s.Index))
		}
	}
	rows := int(in.Rec.NumRows())
	for r := 0; r < rows; r++ {
		t.buf = t.buf[:0]
		for _, g := range keyGet {
			t.buf = appendKey(t.buf, g(r))
		}
		g, found := t.groups[string(t.buf)]
		if !found {
			g = &group{key: make([]any, len(keyGet)), accs: make([]*agg.Acc, len(t.cfg.specs))}
			for i, kg := range keyGet {
				g.key[i] = kg(r)
			}
			for i := range t.cfg.specs {
				g.accs[i] = agg.NewAcc(&t.cfg.specs[i])
			}
			t.groups[string(t.buf)] = g
		}
		for i, vg := range valGet {
			if vg == nil {
				g.accs[i].Add(nil)
			} else {
				g.accs[i].Add(vg(r))
			}
		}
	}
	return nil
}

// appendKey encodes one key value unambiguously: a type tag, then the value
// (strings length-prefixed so "a|b" and "a","b" differ).
func appendKey(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 'n')
	case string:
		b = append(b, 's')
		b = strconv.AppendInt(b, int64(len(x)), 10)
		b = append(b, ':')
		return append(b, x...)
	case int:
		b = append(b, 'i')
		return strconv.AppendInt(append(b, ':'), int64(x), 10)
	case time.Time:
		b = append(b, 't')
		return strconv.AppendInt(append(b, ':'), x.UnixNano(), 10)
	default:
		return fmt.Appendf(append(b, 'v'), "%v;", x)
	}
}

// Close implements op.Closer. After Flush it holds nothing; after a graceful
// stop or an abort (no Flush: a stop is not the end of the input) it drops
// the partial groups and fails the held acks with batch.ErrDropped, so the
// input is read again on the next run rather than committed unaggregated.
func (t *transform) Close(ctx context.Context) error {
	for _, a := range t.acks {
		a.Done(batch.ErrDropped)
	}
	t.acks = nil
	t.groups = map[string]*group{}
	return nil
}

func (t *transform) Flush(ctx context.Context, out op.Output) error {
	ack := batch.Merge(t.acks...)
	t.acks = nil
	if len(t.groups) == 0 {
		ack.Done(nil)
		return nil
	}
	groups := make([]*group, 0, len(t.groups))
	for _, g := range t.groups {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool { return keyLess(groups[i].key, groups[j].key) })
	b := array.NewRecordBuilder(t.res.Alloc, t.cfg.out)
	defer b.Release()
	apps := make([]arrowx.Appender, len(t.cfg.out.Fields()))
	for i := range apps {
		apps[i] = arrowx.NewAppender(b.Field(i))
	}
	nk := len(t.cfg.keys)
	for _, g := range groups {
		for i, v := range g.key {
			if err := apps[i](v); err != nil {
				ack.Done(err)
				return err
			}
		}
		for i, a := range g.accs {
			if err := apps[nk+i](a.Result()); err != nil {
				ack.Done(err)
				return err
			}
		}
	}
	t.groups = map[string]*group{}
	return out.Emit(ctx, batch.Batch{Rec: b.NewRecordBatch(), Ack: ack})
}

// keyLess orders keys column by column, nulls first.
func keyLess(a, b []any) bool {
	for i := range a {
		x, y := a[i], b[i]
		switch {
		case x == nil && y == nil:
			continue
		case x == nil:
			return true
		case y == nil:
			return false
		}
		if c := compare(x, y); c != 0 {
			return c < 0
		}
	}
	return false
}

func compare(x, y any) int {
	switch a := x.(type) {
	case string:
		return cmp.Compare(a, y.(string))
	case int:
		return cmp.Compare(a, y.(int))
	case float64:
		return cmp.Compare(a, y.(float64))
	case time.Time:
		return a.Compare(y.(time.Time))
	case bool:
		return cmp.Compare(btoi(a), btoi(y.(bool)))
	}
	return cmp.Compare(fmt.Sprint(x), fmt.Sprint(y))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
