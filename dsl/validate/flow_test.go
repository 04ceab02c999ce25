package validate_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
)

// streamOp is a source that declares a Flow: unbounded unless once, and
// committing when its config says so.
type streamOp struct{ fakeOp }

func (o *streamOp) SourceFlow(cfg *spec.Value, once bool) validate.Flow {
	f := validate.Flow{Unbounded: !once}
	if cfg.Boolean("commit") {
		f.Commits = "offsets would never commit"
	}
	return f
}

// holdOp is a sink that acknowledges only at the end and reports what
// feeds it.
type holdOp struct {
	fakeOp
	seen map[string]string
}

func (o *holdOp) Check(c *validate.Check) (*arrow.Schema, any) {
	var up []string
	for _, u := range c.Upstream {
		up = append(up, fmt.Sprintf("%s:%v:%q", u.Name, u.Flow.Unbounded, u.Flow.Commits))
	}
	o.seen[c.Node.Name] = strings.Join(up, " ")
	if c.Config.Boolean("replace") {
		if u := c.Committing(); u != nil {
			c.Errorf(c.Config.PosOf("replace"), "replace behind the %s", u)
		}
	}
	c.RequireBounded("the hold sink acknowledges at the end", "run with --once")
	return nil, "hold"
}

func flowCatalog(seen map[string]string) fakeCatalog {
	cat := newCatalog()
	cat[ast.Sources]["stream"] = &streamOp{fakeOp{sec: ast.Sources, sp: spec.Spec{Name: "stream", Config: spec.Obj(
		spec.F("schema", spec.SchemaRef, "output schema").Req(),
		spec.F("commit", spec.Bool, "commits positions").Def(false),
	)}}}
	cat[ast.Sinks]["hold"] = &holdOp{fakeOp: fakeOp{sec: ast.Sinks, sp: spec.Spec{Name: "hold", Config: spec.Obj(
		spec.F("replace", spec.Bool, "replace the output").Def(false),
	)}}, seen: seen}
	return cat
}

const flowPipeline = `flowrun: 1
schemas:
  s: {id: int64}
sources:
  files: {gen: {schema: s}}
  kafka: {stream: {schema: s, commit: true}, dead_letter: bad}
  ticks: {stream: {schema: s}}
transforms:
  f: {from: files, pass: {}}
  k: {from: kafka, filter: id != nil, dead_letter: bad2}
  both: {from: [f, k], pass: {}}
sinks:
  bounded: {from: f, hold: {replace: true}}
  streamed: {from: both, hold: {}}
  replaced: {from: both, hold: {replace: true}}
  ticked: {from: ticks, hold: {}}
  bad: {hold: {}}
  bad2: {hold: {}}
`

// TestFlows: each node sees the sources that feed it, through from: and
// dead letters; checks refuse what an unbounded or committing source makes
// unsafe, and --once makes unbounded sources end.
func TestFlows(t *testing.T) {
	seen := map[string]string{}
	_, errs := validate.Load("p.yaml", []byte(flowPipeline), nil, flowCatalog(seen))
	wantSeen := map[string]string{
		"bounded":  `files:false:""`,
		"streamed": `files:false:"" kafka:true:"offsets would never commit"`,
		"replaced": `files:false:"" kafka:true:"offsets would never commit"`,
		"ticked":   `ticks:true:""`,
		"bad":      `kafka:true:"offsets would never commit"`,
		"bad2":     `kafka:true:"offsets would never commit"`,
	}
	for n, want := range wantSeen {
		if seen[n] != want {
			t.Errorf("%s sees %q, want %q", n, seen[n], want)
		}
	}
	want := `p.yaml:14:26: the hold sink acknowledges at the end; behind the unbounded stream source 'kafka' offsets would never commit (run with --once)
p.yaml:15:26: the hold sink acknowledges at the end; behind the unbounded stream source 'kafka' offsets would never commit (run with --once)
p.yaml:15:42: replace behind the stream source 'kafka'
p.yaml:16:25: the hold sink acknowledges at the end; behind the unbounded stream source 'ticks' every acknowledgement would be held until the run stops (run with --once)
p.yaml:17:9: the hold sink acknowledges at the end; behind the unbounded stream source 'kafka' offsets would never commit (run with --once)
p.yaml:18:10: the hold sink acknowledges at the end; behind the unbounded stream source 'kafka' offsets would never commit (run with --once)`
	if got := errs.Error(); got != want {
		t.Errorf("errors:\n%s\nwant:\n%s", got, want)
	}
	for _, e := range errs {
		if strings.Contains(e.Msg, "acknowledges at the end") && (e.Code != "unbounded" || e.Hint != "run with --once") {
			t.Errorf("%s: code %q hint %q", e.Msg, e.Code, e.Hint)
		}
	}

	_, errs = validate.Options{Once: true}.Load("p.yaml", []byte(flowPipeline), nil, flowCatalog(seen))
	if got, want := errs.Error(), "p.yaml:15:42: replace behind the stream source 'kafka'"; got != want {
		t.Errorf("with --once:\n%s\nwant:\n%s", got, want)
	}
}
