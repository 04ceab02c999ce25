package validate

import (
	"fmt"
	"slices"
	"time"

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
	// SplitByShard is set when, in a sharded run (flowrun run --shard
	// I/N), the source reads only its share of the input (the lake source
	// with shard: files reads the files whose path hashes to I).
	SplitByShard bool
	// AckTimeout is how long the source waits for an acknowledgement
	// before it gives up on the rows (the http source answers the request
	// 503 after ack_timeout). A sink that could still store them later
	// must give up first (the transactional kafka sink's
	// transaction_deadline), or a failure answer would be followed by the
	// rows being stored.
	AckTimeout time.Duration
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
	// Shards is how many shard runs the pipeline runs as (flowrun run
	// --shard I/N); 0 or 1 is not sharded. A pipeline whose schedule
	// declares shards: N is checked for N when this is 0.
	Shards int
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

// RequireWholeInput is for nodes that need every row of a group (dedupe,
// aggregate, windows). In a sharded run behind a source that reads only
// its shard's share of the input, each shard run would compute the node
// over its share alone, and shards writing the same keys would overwrite
// each other's partial results. It reports that at the node's operator key
// ("<needs>; with N shards the lake source 'posts' reads ...") and returns
// false.
func (c *Check) RequireWholeInput(needs string) bool {
	if c.Shards <= 1 {
		return true
	}
	for _, u := range c.Upstream {
		if !u.Flow.SplitByShard {
			continue
		}
		e := c.Errorf(c.Node.TypePos, "%s, but in a run of %d shards the %s reads only each shard's share of the input: every shard would compute a partial result, and shards writing the same keys would overwrite each other",
			needs, c.Shards, u.String())
		e.Code = "sharded"
		e.Hint = "give the source shard: none and keep each shard's keys after this node with filter: 'bucket(KEY, ${SHARD_COUNT}) == ${SHARD_INDEX} - 1' (docs/schedule.md), or do not shard"
		return false
	}
	return true
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
