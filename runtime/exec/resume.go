package exec

import (
	"context"
	"fmt"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/op"
)

// reachableSinks lists the sinks src's data can reach, through data,
// dead-letter and late edges, each once.
func reachableSinks(src *Node, byName map[string]*Node) []*Node {
	seen := map[string]bool{}
	var sinks []*Node
	var walk func(cn *validate.Node)
	walk = func(cn *validate.Node) {
		if cn == nil || seen[cn.Name()] {
			return
		}
		seen[cn.Name()] = true
		if cn.AST.Section == ast.Sinks {
			sinks = append(sinks, byName[cn.Name()])
		}
		for _, c := range cn.Consumers {
			walk(c)
		}
		walk(cn.DeadLetter)
		walk(cn.Late)
	}
	walk(src.checked)
	return sinks
}

// resume implements op.ResumeFunc for the source node src: per partition,
// the minimum next offset over the sinks src reaches, present only when
// every one of them stores positions and knows the partition.
func (p *Pipeline) resume(ctx context.Context, src *Node, topic string, parts []int32) (map[int32]int64, error) {
	if len(src.reach) == 0 {
		return nil, nil
	}
	var out map[int32]int64
	for i, s := range src.reach {
		ps, ok := s.inst.(op.PositionStore)
		if !ok {
			return nil, nil // this sink relies on the source's own commit
		}
		m, err := ps.Resume(ctx, src.Name, topic)
		if err != nil {
			return nil, fmt.Errorf("positions stored by sink %q: %w", s.Name, err)
		}
		if i == 0 {
			out = make(map[int32]int64, len(m))
			if parts == nil {
				for part, off := range m {
					out[part] = off
				}
			} else {
				for _, part := range parts {
					if off, ok := m[part]; ok {
						out[part] = off
					}
				}
			}
			continue
		}
		for part, off := range out {
			o, ok := m[part]
			switch {
			case !ok:
				delete(out, part)
			case o < off:
				out[part] = o
			}
		}
	}
	return out, nil
}

// pathsTo counts the paths (data, dead-letter and late edges) from cn to every
// node below it.
func pathsTo(cn *validate.Node, count map[string]int) {
	// The graph is acyclic; count by walking every path (pipelines are small).
	for _, c := range cn.Consumers {
		count[c.Name()]++
		pathsTo(c, count)
	}
	for _, side := range []*validate.Node{cn.DeadLetter, cn.Late} {
		if side != nil {
			count[side.Name()]++
			pathsTo(side, count)
		}
	}
}

// checkStorePaths refuses a position store that one source reaches by more
// than one path: each path would deliver its own final piece of an ack, and
// the store could not tell which one completes it.
func checkStorePaths(nodes []*Node) error {
	for _, src := range nodes {
		if src.Section != ast.Sources {
			continue
		}
		count := map[string]int{}
		pathsTo(src.checked, count)
		for _, s := range src.reach {
			if _, ok := s.inst.(op.PositionStore); ok && count[s.Name] > 1 {
				return fmt.Errorf("sink %q stores source positions but receives source %q's data by %d paths; "+
					"it could not tell when all rows of a position range arrived: give each path its own sink", s.Name, src.Name, count[s.Name])
			}
		}
	}
	return nil
}
