package validate

import (
	"fmt"
	"slices"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
)

// Flow is what a source tells validation about its input, so that nodes
// downstream can refuse combinations that would lose data or hold
// acknowledgements forever. The zero Flow is a bounded input that commits
// nothing (a file, a generator with a count).
type Flow struct {
	// Unbounded is set when the input does not end by itself: the run
	// ends only when it is stopped (Kafka without --once, an HTTP API).
	Unbounded bool
	// Commits is set when the source commits what the sinks acknowledged
	// (Kafka offsets, HTTP answers): a row once acknowledged is never read
	// again, so a sink must not destroy it later. It completes the sentence
	// "behind the unbounded kafka source 'posts' ..." for an acknowledgement
	// that never comes, e.g. "offsets would never commit".
	Commits string
}

// FlowOperator is implemented by source operators whose input is unbounded
// or that commit positions. once is set when the run reads unbounded inputs
// up to their current end (flowrun run --once). Sources that do not
// implement it have the zero Flow.
type FlowOperator interface {
	SourceFlow(cfg *spec.Value, once bool) Flow
}

// Options are settings of the run a pipeline is validated for.
type Options struct {
	// Once: unbounded sources stop at their current end (flowrun run --once).
	Once bool
}

// Upstream is one source feeding a node, through `from:` edges or through
// dead letters it sends.
type Upstream struct {
	Name string // the source node's name
	Type string // its operator, e.g. kafka
	Flow Flow
}

// Unbounded returns the first source feeding the node whose input does not
// end by itself, preferring one that commits positions; nil when every input
// ends.
func (c *Check) Unbounded() *Upstream {
	var first *Upstream
	for i := range c.Upstream {
		u := &c.Upstream[i]
		if !u.Flow.Unbounded {
			continue
		}
		if u.Flow.Commits != "" {
			return u
		}
		if first == nil {
			first = u
		}
	}
	return first
}

// Committing returns the first source feeding the node that commits what
// the sinks acknowledged, or nil.
func (c *Check) Committing() *Upstream {
	for i := range c.Upstream {
		if c.Upstream[i].Flow.Commits != "" {
			return &c.Upstream[i]
		}
	}
	return nil
}

// RequireBounded is for nodes that hold their inputs' acknowledgements until
// the input ends (an aggregate, a file completed at close). Behind an
// unbounded source it reports, at the node's operator key, "<holds>; behind
// the unbounded <type> source '<name>' <consequence>" with hint, and returns
// false.
func (c *Check) RequireBounded(holds, hint string) bool {
	u := c.Unbounded()
	if u == nil {
		return true
	}
	what := u.Flow.Commits
	if what == "" {
		what = "every acknowledgement would be held until the run stops"
	}
	e := c.Errorf(c.Node.TypePos, "%s; behind the unbounded %s source '%s' %s", holds, u.Type, u.Name, what)
	e.Code = "unbounded"
	e.Hint = hint
	return false
}

// flows asks every source for its Flow and gives each node the list of
// sources that feed it, through from: edges and dead letters.
func (v *validator) flows() {
	flow := map[*vnode]Flow{}
	for _, n := range v.all {
		if n.ast.Section != ast.Sources || n.res.Op == nil || n.broken {
			continue
		}
		if f, ok := n.res.Op.(FlowOperator); ok {
			flow[n] = f.SourceFlow(n.res.Config, v.opts.Once)
		}
	}
	memo := map[*vnode][]*vnode{}
	var up func(n *vnode) []*vnode
	up = func(n *vnode) []*vnode {
		if got, ok := memo[n]; ok {
			return got
		}
		memo[n] = nil // a cycle ends here; cycles are reported elsewhere
		seen := map[*vnode]bool{}
		var out []*vnode
		add := func(s *vnode) {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
		if n.ast.Section == ast.Sources {
			add(n)
		}
		for _, in := range n.inputs {
			for _, s := range up(in) {
				add(s)
			}
		}
		for _, from := range append(slices.Clip(n.dlFrom), n.lateFrom...) {
			for _, s := range up(from) {
				add(s)
			}
		}
		memo[n] = out
		return out
	}
	for _, n := range v.all {
		for _, s := range up(n) {
			n.upstream = append(n.upstream, Upstream{Name: s.ast.Name, Type: s.ast.Type, Flow: flow[s]})
		}
	}
}

// String renders u for messages: "kafka source 'posts'".
func (u *Upstream) String() string {
	return fmt.Sprintf("%s source '%s'", u.Type, u.Name)
}
