// Package validate checks a parsed pipeline: operator types and configs
// against their specs, the node graph (references, cycles, nodes no sink
// uses, dead-letter wiring), declared schemas, and each operator's own
// checks in topological order with its input schemas. It reports every
// problem at once and produces the checked graph the runtime plans from.
// It knows operators only through the small Catalog interface.
package validate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
)

// Validate checks p against the operators in cat. The Result is always
// returned, with Nodes in an order where inputs come first; it is only fit
// to run when the returned errors are empty.
func Validate(p *ast.Pipeline, cat Catalog) (*Result, source.Errors) {
	return Options{}.Validate(p, cat)
}

// Validate checks p for a run with options o; see the function Validate.
func (o Options) Validate(p *ast.Pipeline, cat Catalog) (*Result, source.Errors) {
	v := &validator{p: p, cat: cat, opts: o, byName: map[string]*vnode{}}
	v.schedule()
	v.declaredSchemas()
	v.nodes()
	v.graph()
	v.cycles()
	v.flows()
	v.unused()
	order := v.topo()
	v.check(order)
	res := &Result{Pipeline: p}
	for _, n := range order {
		res.Nodes = append(res.Nodes, n.res)
	}
	v.errs.Sort()
	return res, v.errs
}

type vnode struct {
	ast *ast.Node
	res *Node
	// broken is set when the node itself has errors that make checking it
	// pointless (unknown operator, bad config, bad references, cycle).
	broken bool
	// ok is set once the node's Check ran without errors.
	ok     bool
	inputs []*vnode // resolved from: refs, in order
	refs   []int    // index in ast.From of each input
	// dlFrom lists the nodes whose dead_letter names this sink.
	dlFrom []*vnode
	// lateFrom lists the windows whose late: names this sink.
	lateFrom []*vnode
	inCycle  bool
	index    int
	// upstream lists the sources feeding the node (see flows).
	upstream []Upstream
}

type validator struct {
	p       *ast.Pipeline
	cat     Catalog
	opts    Options
	errs    source.Errors
	all     []*vnode
	byName  map[string]*vnode
	schemas map[string]*arrow.Schema // nil value: declared but broken
	badRefs bool                     // some from: is missing or names no node
}

func (v *validator) errorf(pos source.Pos, code, format string, args ...any) *source.Error {
	e := v.errs.Add(pos, format, args...)
	e.Code = code
	return e
}

func (v *validator) schedule() {
	if v.p.Schedule == "" {
		return
	}
	if sc := ParseSchedule(v.p, &v.errs); sc != nil && v.opts.Shards == 0 {
		v.opts.Shards = sc.Shards
	}
}

func (v *validator) declaredSchemas() {
	v.schemas = map[string]*arrow.Schema{}
	for _, s := range v.p.Schemas {
		fields := make([]arrow.Field, 0, len(s.Columns))
		ok := true
		for _, c := range s.Columns {
			t, err := types.Parse(c.Type)
			if err != nil {
				e := v.errorf(c.TypePos, "type", "unknown type %q for column '%s' of schema '%s'", c.Type, c.Name, s.Name)
				e.Hint = source.DidYouMean(c.Type, append(types.Names(), "int", "float"))
				if e.Hint == "" {
					e.Hint = "types: " + strings.Join(types.Names(), ", ")
				}
				ok = false
				continue
			}
			fields = append(fields, arrow.Field{Name: c.Name, Type: t, Nullable: true})
		}
		if ok {
			v.schemas[s.Name] = arrow.NewSchema(fields, nil)
		} else {
			v.schemas[s.Name] = nil
		}
	}
}

// resolveSchema implements Check.Schema.
func (v *validator) resolveSchema(val *spec.Value) *arrow.Schema {
	if val == nil {
		return nil
	}
	if len(val.Entries) > 0 {
		fields := make([]arrow.Field, 0, len(val.Entries))
		for _, e := range val.Entries {
			t, err := types.Parse(e.Value.Str)
			if err != nil {
				return nil // reported when the config was decoded
			}
			fields = append(fields, arrow.Field{Name: e.Key, Type: t, Nullable: true})
		}
		return arrow.NewSchema(fields, nil)
	}
	if val.Str == "" {
		return nil
	}
	s, ok := v.schemas[val.Str]
	if !ok {
		names := make([]string, 0, len(v.schemas))
		for n := range v.schemas {
			names = append(names, n)
		}
		sort.Strings(names)
		e := v.errorf(val.Pos, "unknown-schema", "unknown schema '%s'", val.Str)
		e.Hint = source.DidYouMean(val.Str, names)
		if e.Hint == "" {
			if len(names) == 0 {
				e.Hint = "declare it under 'schemas:'"
			} else {
				e.Hint = "declared schemas: " + strings.Join(names, ", ")
			}
		}
		return nil
	}
	return s
}

func (v *validator) nodes() {
	for i, n := range v.p.Nodes {
		vn := &vnode{ast: n, res: &Node{AST: n}, index: i}
		v.all = append(v.all, vn)
		v.byName[n.Name] = vn
		if n.Type == "" {
			vn.broken = true // reported by the parser
			continue
		}
		opr, ok := v.cat.Lookup(n.Section, n.Type)
		if !ok {
			vn.broken = true
			e := v.errorf(n.TypePos, "unknown-operator", "unknown %s type '%s'", n.Section.Singular(), n.Type)
			e.Hint = source.DidYouMean(n.Type, v.cat.Names(n.Section))
			for s := range ast.SectionNames() {
				sec := ast.Section(s)
				if sec == n.Section {
					continue
				}
				if _, ok := v.cat.Lookup(sec, n.Type); ok {
					e.Hint = fmt.Sprintf("'%s' is a %s; move node '%s' under '%s:'", n.Type, sec.Singular(), n.Name, sec)
					break
				}
			}
			if e.Hint == "" {
				if names := v.cat.Names(n.Section); len(names) > 0 {
					e.Hint = fmt.Sprintf("%s types: %s", n.Section.Singular(), strings.Join(names, ", "))
				} else {
					e.Hint = fmt.Sprintf("no %s types are registered", n.Section.Singular())
				}
			}
			continue
		}
		vn.res.Op = opr
		before := len(v.errs)
		sp := opr.OperatorSpec()
		file := v.p.File
		if n.Pos.File != nil {
			file = n.Pos.File // a node from an included file
		}
		vn.res.Config = spec.Decode(file, n.Config, sp.Config, &v.errs)
		for _, e := range v.errs[before:] {
			// spec names the config's top level "this block".
			e.Msg = strings.Replace(e.Msg, "in this block", fmt.Sprintf("in %s '%s'", n.Section.Singular(), n.Type), 1)
			vn.broken = true
		}
	}
}

func (v *validator) names() []string {
	out := make([]string, len(v.all))
	for i, n := range v.all {
		out[i] = n.ast.Name
	}
	return out
}

func (v *validator) graph() {
	names := v.names()
	dlTargets := map[string]bool{}
	for _, n := range v.all {
		if n.ast.DeadLetter != nil {
			dlTargets[n.ast.DeadLetter.Name] = true
		}
		if n.ast.Late != nil {
			dlTargets[n.ast.Late.Name] = true
		}
	}
	for _, n := range v.all {
		a := n.ast
		if a.Section == ast.Sources && len(a.From) > 0 {
			e := v.errorf(a.From[0].Pos, "source-from", "source '%s' cannot have 'from': sources read from outside the pipeline", a.Name)
			e.Hint = "move it under 'transforms:' or remove 'from'"
			n.broken = true
		}
		if a.Section != ast.Sources && len(a.From) == 0 && !(a.Section == ast.Sinks && dlTargets[a.Name]) {
			e := v.errorf(a.Pos, "missing-from", "%s '%s' needs 'from:' naming its input", a.Section.Singular(), a.Name)
			e.Hint = "add 'from: <node>'"
			n.broken, v.badRefs = true, true
		}
		if a.Section != ast.Sources {
			for j, r := range a.From {
				in, ok := v.byName[r.Name]
				if !ok {
					e := v.errorf(r.Pos, "unknown-node", "unknown node '%s' in 'from' of '%s'", r.Name, a.Name)
					e.Hint = source.DidYouMean(r.Name, names)
					n.broken, v.badRefs = true, true
					continue
				}
				if in.ast.Section == ast.Sinks {
					v.errorf(r.Pos, "from-sink", "'%s' is a sink: it has no output for '%s' to read", r.Name, a.Name)
					n.broken, v.badRefs = true, true
					continue
				}
				n.inputs = append(n.inputs, in)
				n.refs = append(n.refs, j)
			}
		}
		if dl := a.DeadLetter; dl != nil {
			t, ok := v.byName[dl.Name]
			switch {
			case !ok:
				e := v.errorf(dl.Pos, "unknown-node", "unknown dead-letter sink '%s'", dl.Name)
				e.Hint = source.DidYouMean(dl.Name, v.sinkNames())
			case t.ast.Section != ast.Sinks:
				e := v.errorf(dl.Pos, "dead-letter", "'dead_letter' must name a sink; '%s' is a %s", dl.Name, t.ast.Section.Singular())
				e.Hint = source.DidYouMean(dl.Name, v.sinkNames())
			case t == n:
				v.errorf(dl.Pos, "dead-letter", "sink '%s' cannot be its own dead-letter output", a.Name)
			default:
				t.dlFrom = append(t.dlFrom, n)
			}
		}
		if l := a.Late; l != nil {
			t, ok := v.byName[l.Name]
			switch {
			case a.Section != ast.Windows:
				e := v.errorf(l.Pos, "late", "'late' is for windows; %s '%s' has no windows to be late for", a.Section.Singular(), a.Name)
				e.Hint = "use 'dead_letter:' for rejected records"
			case !ok:
				e := v.errorf(l.Pos, "unknown-node", "unknown late sink '%s'", l.Name)
				e.Hint = source.DidYouMean(l.Name, v.sinkNames())
			case t.ast.Section != ast.Sinks:
				e := v.errorf(l.Pos, "late", "'late' must name a sink; '%s' is a %s", l.Name, t.ast.Section.Singular())
				e.Hint = source.DidYouMean(l.Name, v.sinkNames())
			default:
				t.lateFrom = append(t.lateFrom, n)
			}
		}
	}
}

func (v *validator) sinkNames() []string {
	var out []string
	for _, n := range v.all {
		if n.ast.Section == ast.Sinks {
			out = append(out, n.ast.Name)
		}
	}
	return out
}

// cycles reports each cycle of from-edges once, as a path in data-flow order.
func (v *validator) cycles() {
	const (
		white = iota
		grey
		black
	)
	color := make(map[*vnode]int, len(v.all))
	var stack []*vnode
	var visit func(n *vnode)
	visit = func(n *vnode) {
		color[n] = grey
		stack = append(stack, n)
		for i, in := range n.inputs {
			switch color[in] {
			case white:
				visit(in)
			case grey:
				// stack[k:] runs from in (downstream end) to n; data flows
				// from n's input in → n, so reverse for display.
				k := len(stack) - 1
				for stack[k] != in {
					k--
				}
				cyc := stack[k:]
				path := make([]string, 0, len(cyc)+1)
				for j := len(cyc) - 1; j >= 0; j-- {
					path = append(path, cyc[j].ast.Name)
				}
				path = append([]string{in.ast.Name}, path...)
				for _, c := range cyc {
					c.inCycle, c.broken = true, true
				}
				ref := n.ast.From[n.refs[i]]
				e := v.errorf(ref.Pos, "cycle", "cycle: %s", strings.Join(path, " → "))
				e.Hint = "a pipeline is a graph without loops"
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	for _, n := range v.all {
		if color[n] == white {
			visit(n)
		}
	}
}

// unused reports nodes whose output reaches no sink through from-edges.
func (v *validator) unused() {
	used := map[*vnode]bool{}
	var mark func(n *vnode)
	mark = func(n *vnode) {
		if used[n] {
			return
		}
		used[n] = true
		for _, in := range n.inputs {
			mark(in)
		}
	}
	for _, n := range v.all {
		if n.ast.Section == ast.Sinks {
			mark(n)
		}
	}
	if v.badRefs {
		return // the answer depends on what the broken references meant
	}
	if len(v.sinkNames()) == 0 && len(v.all) > 0 {
		e := v.errorf(source.Pos{File: v.p.File, Line: 1, Column: 1}, "no-sink", "the pipeline has no sinks: nothing would be written")
		e.Hint = "add a 'sinks:' block with a node that reads 'from:' your last node"
		return
	}
	for _, n := range v.all {
		if !used[n] && !n.inCycle {
			e := v.errorf(n.ast.Pos, "unused", "node '%s' is not used by any sink", n.ast.Name)
			e.Hint = fmt.Sprintf("add a sink with 'from: %s', or remove it", n.ast.Name)
		}
	}
}

// topo orders nodes inputs-first, ties in file order; nodes on cycles come
// last in file order.
func (v *validator) topo() []*vnode {
	indeg := map[*vnode]int{}
	consumers := map[*vnode][]*vnode{}
	for _, n := range v.all {
		seen := map[*vnode]bool{}
		for _, in := range n.inputs {
			if seen[in] {
				continue
			}
			seen[in] = true
			indeg[n]++
			consumers[in] = append(consumers[in], n)
		}
	}
	var ready, order []*vnode
	for _, n := range v.all {
		if indeg[n] == 0 {
			ready = append(ready, n)
		}
	}
	done := map[*vnode]bool{}
	for len(ready) > 0 {
		sort.Slice(ready, func(i, j int) bool { return ready[i].index < ready[j].index })
		n := ready[0]
		ready = ready[1:]
		order = append(order, n)
		done[n] = true
		for _, c := range consumers[n] {
			indeg[c]--
			if indeg[c] == 0 {
				ready = append(ready, c)
			}
		}
	}
	for _, n := range v.all {
		if !done[n] {
			order = append(order, n)
		}
	}
	// Wire the result graph.
	for _, n := range v.all {
		for _, in := range n.inputs {
			n.res.Inputs = append(n.res.Inputs, in.res)
		}
		for _, c := range consumers[n] {
			n.res.Consumers = append(n.res.Consumers, c.res)
		}
		for _, src := range n.dlFrom {
			src.res.DeadLetter = n.res
		}
		for _, src := range n.lateFrom {
			src.res.Late = n.res
		}
	}
	return order
}

func (v *validator) check(order []*vnode) {
	for _, n := range order {
		if n.broken || n.res.Op == nil {
			continue
		}
		inputsOK := true
		for _, in := range n.inputs {
			if !in.ok {
				inputsOK = false
			}
		}
		if !inputsOK {
			continue
		}
		var inputs []Input
		for _, in := range n.inputs {
			inputs = append(inputs, Input{Name: in.ast.Name, Schema: in.res.Output})
		}
		if !v.sameSchemas(n, inputs) {
			continue
		}
		if dl := append(slices.Clip(n.dlFrom), n.lateFrom...); len(dl) > 0 {
			if len(inputs) > 0 && !inputs[0].Schema.Equal(types.DeadLetterSchema) {
				e := v.errorf(n.ast.Pos, "dead-letter", "sink '%s' receives dead letters from '%s' and also reads '%s', whose schema is not the dead-letter schema",
					n.ast.Name, dl[0].ast.Name, inputs[0].Name)
				e.Hint = "dead-letter records have columns " + schemaString(types.DeadLetterSchema) + "; use a separate sink"
				continue
			}
			for _, src := range dl {
				inputs = append(inputs, Input{Name: src.ast.Name, Schema: types.DeadLetterSchema})
			}
		}
		c := &Check{
			Pipeline: v.p,
			Node:     n.ast,
			Config:   n.res.Config,
			Inputs:   inputs,
			Schema:   v.resolveSchema,
			Errs:     &v.errs,
			Upstream: n.upstream,
			Once:     v.opts.Once,
			Shards:   v.opts.Shards,
		}
		before := len(v.errs)
		out, build := v.callCheck(n, c)
		if len(v.errs) > before {
			continue
		}
		if out == nil && n.ast.Section != ast.Sinks {
			if len(v.errs) > 0 {
				// Most likely a schema reported elsewhere (a broken
				// declared schema); don't pile on.
				continue
			}
			v.errorf(n.ast.TypePos, "internal", "%s '%s' produced no output schema", n.ast.Section.Singular(), n.ast.Type)
			continue
		}
		n.res.Output, n.res.Build = out, build
		if n.ast.Section == ast.Sinks && len(n.dlFrom)+len(n.lateFrom) > 0 && len(n.inputs) == 0 {
			n.res.Output = nil
		}
		n.ok = true
	}
}

func (v *validator) callCheck(n *vnode, c *Check) (out *arrow.Schema, build any) {
	defer func() {
		if r := recover(); r != nil {
			v.errorf(n.ast.TypePos, "internal", "internal error checking %s '%s': %v", n.ast.Section.Singular(), n.ast.Name, r)
			out, build = nil, nil
		}
	}()
	return n.res.Op.Check(c)
}

// sameSchemas reports an error when n's inputs disagree on their schema.
func (v *validator) sameSchemas(n *vnode, inputs []Input) bool {
	for i := 1; i < len(inputs); i++ {
		a, b := inputs[0], inputs[i]
		if a.Schema.Equal(b.Schema) {
			continue
		}
		pos := n.ast.From[n.refs[i]].Pos
		e := v.errorf(pos, "schema-mismatch", "inputs of '%s' have different schemas: %s", n.ast.Name, schemaDiff(a, b))
		e.Hint = "add a 'select' or 'map' so both inputs produce the same columns"
		return false
	}
	return true
}

func schemaDiff(a, b Input) string {
	var diffs []string
	for _, f := range a.Schema.Fields() {
		idx := b.Schema.FieldIndices(f.Name)
		if len(idx) == 0 {
			diffs = append(diffs, fmt.Sprintf("'%s' has column '%s' but '%s' has not", a.Name, f.Name, b.Name))
			continue
		}
		g := b.Schema.Field(idx[0])
		if !arrow.TypeEqual(f.Type, g.Type) {
			diffs = append(diffs, fmt.Sprintf("column '%s' is %s in '%s' but %s in '%s'", f.Name, types.Name(f.Type), a.Name, types.Name(g.Type), b.Name))
		}
	}
	for _, g := range b.Schema.Fields() {
		if len(a.Schema.FieldIndices(g.Name)) == 0 {
			diffs = append(diffs, fmt.Sprintf("'%s' has column '%s' but '%s' has not", b.Name, g.Name, a.Name))
		}
	}
	if len(diffs) == 0 {
		diffs = append(diffs, fmt.Sprintf("'%s' and '%s' order their columns differently", a.Name, b.Name))
	}
	return strings.Join(diffs, "; ")
}

func schemaString(s *arrow.Schema) string {
	parts := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		parts[i] = f.Name + " " + types.Name(f.Type)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
