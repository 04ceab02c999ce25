// Package parse turns a pipeline file's YAML into an ast.Pipeline. It owns
// the file layout (top-level keys, one operator key per node, from and
// dead_letter references), ${VAR} substitution and `include:` of shared
// fragment files (schemas and transforms defined once for several
// pipelines), and reports every
// problem it finds with a position instead of stopping at the first.
// Operator configs are left as YAML nodes for dsl/spec to decode.
package parse

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/source"
)

// Version is the pipeline language version this parser reads.
const Version = 1

// TopKeys lists the keys allowed at the top of a pipeline file.
var TopKeys = []string{"flowrun", "name", "description", "schedule", "include", "vars", "schemas", "sources", "transforms", "windows", "sinks", "tests"}

// IncludeKeys lists the keys allowed at the top of an included file: a
// fragment shares schemas and processing nodes, never sources or sinks, so
// each pipeline still shows where its data comes from and goes.
var IncludeKeys = []string{"description", "vars", "schemas", "transforms", "windows"}

// CommonKeys are the node keys that are not an operator.
var CommonKeys = []string{"from", "dead_letter", "late", "description"}

// Parse reads one pipeline file. lookup supplies variable values that
// override the file's vars: (the environment and --set flags); it may be
// nil. The returned pipeline is nil only when the text is not valid YAML.
func Parse(name string, text []byte, lookup func(string) (string, bool)) (p *ast.Pipeline, errs source.Errors) {
	file := source.NewFile(name, text)
	p = &ast.Pipeline{File: file, Vars: map[string]string{}}
	ps := &parser{file: file, p: p, errs: &errs, lookup: lookup}
	doc, ok := ps.load(text)
	if !ok {
		errs.Sort()
		return nil, errs
	}
	ps.pipeline(doc)
	errs.Sort()
	return p, errs
}

type parser struct {
	nlines int
	file   *source.File
	p      *ast.Pipeline
	errs   *source.Errors
	lookup func(string) (string, bool)
	vars   map[string]string // declared defaults
}

func (ps *parser) pos(n *yaml.Node) source.Pos {
	if n == nil || n.Line < 1 {
		return source.Pos{File: ps.file, Line: 1, Column: 1}
	}
	line, col := n.Line, n.Column
	if col < 1 {
		col = 1
	}
	// yaml.v3 may point past the end (an empty document) or count a lone
	// "\r" as a line break; keep positions inside the file.
	if last := ps.lines(); line > last {
		line, col = last, 1
	}
	return source.Pos{File: ps.file, Line: line, Column: col}
}

func (ps *parser) errorf(n *yaml.Node, code, format string, args ...any) *source.Error {
	e := ps.errs.Add(ps.pos(n), format, args...)
	e.Code = code
	return e
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// load decodes the YAML document, turning a syntax error into one
// positioned error.
func (ps *parser) load(text []byte) (doc *yaml.Node, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			ps.syntax(fmt.Sprintf("yaml: %v", r))
			doc, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(strings.NewReader(string(text)))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return &yaml.Node{Kind: yaml.MappingNode, Line: 1, Column: 1}, true
		}
		ps.syntax(err.Error())
		return nil, false
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		ps.errorf(&next, "syntax", "a pipeline file holds one YAML document; remove the second '---' document")
	} else if !errors.Is(err, io.EOF) {
		ps.syntax(err.Error())
		return nil, false
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		return root.Content[0], true
	}
	return &yaml.Node{Kind: yaml.MappingNode, Line: 1, Column: 1}, true
}

func (ps *parser) syntax(msg string) {
	msg = strings.SplitN(msg, "\n", 2)[0]
	line, col := 1, 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		// yaml.v3 reports parser (not scanner) errors at the 0-based line
		// of the enclosing construct.
		if strings.HasPrefix(msg, "did not find expected") {
			line++
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
		if m := anchorRE.FindStringSubmatch(msg); m != nil {
			if i := strings.Index(string(ps.file.Text), "*"+m[1]); i >= 0 {
				p := ps.posAt(i)
				line, col = p.Line, p.Column
			}
		}
	}
	if n := countLines(ps.file.Text); line > n {
		line = n
	}
	if line < 1 {
		line = 1
	}
	// Point at the unclosed bracket of a flow collection.
	text := ps.file.Line(line)
	for _, c := range [...][2]string{{"'}'", "{"}, {"']'", "["}} {
		if strings.HasSuffix(msg, c[0]) {
			if i := strings.Index(text, c[1]); i >= 0 {
				col = 1 + len([]rune(text[:i]))
			}
		}
	}
	e := ps.errs.Add(source.Pos{File: ps.file, Line: line, Column: col}, "YAML syntax error: %s", msg)
	e.Code = "syntax"
}

var anchorRE = regexp.MustCompile(`unknown anchor '([^']*)'`)

func (ps *parser) lines() int {
	if ps.nlines == 0 {
		ps.nlines = countLines(ps.file.Text)
	}
	return ps.nlines
}

func countLines(text []byte) int {
	return strings.Count(strings.ReplaceAll(string(text), "\r\n", "\n"), "\n") + 1
}

func (ps *parser) pipeline(root *yaml.Node) {
	if root.Kind != yaml.MappingNode {
		ps.errorf(root, "type", "a pipeline file must be a mapping of keys such as 'flowrun', 'sources' and 'sinks'")
		return
	}
	keys := map[string]*yaml.Node{}
	var order []string
	var typos [][2]*yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		if !contains(TopKeys, name) {
			e := ps.errorf(k, "unknown-key", "unknown top-level key '%s'", name)
			e.Hint = source.DidYouMean(name, TopKeys)
			typos = append(typos, [2]*yaml.Node{k, v})
			continue
		}
		if _, dup := keys[name]; dup {
			ps.errorf(k, "duplicate", "duplicate top-level key '%s'", name)
			continue
		}
		keys[name] = v
		order = append(order, name)
	}
	// Read a misspelt key ("sink:") as the key it resembles, so its
	// contents are still checked and its nodes count as declared.
	for _, t := range typos {
		if want := source.Suggest(t[0].Value, TopKeys); want != "" && keys[want] == nil {
			keys[want] = t[1]
			order = append(order, want)
		}
	}
	// Variables first: every other scalar may refer to them. Included
	// files' vars are defaults for the ones this file does not declare.
	ps.vars = map[string]string{}
	ps.declareVars(keys["vars"])
	incs := ps.includes(keys["include"])
	for _, name := range order {
		if name != "vars" && name != "include" {
			ps.substitute(keys[name])
		}
	}
	if v, ok := keys["flowrun"]; ok {
		if v.Kind != yaml.ScalarNode || v.Value != strconv.Itoa(Version) {
			e := ps.errorf(v, "version", "unsupported pipeline version %s: this flowrun reads 'flowrun: %d'", describe(v), Version)
			e.Hint = "write 'flowrun: 1'"
		}
		ps.p.Version = Version
	} else {
		e := ps.errorf(root, "missing", "missing 'flowrun: %d' at the top of the file", Version)
		e.Hint = "the first line of a pipeline file is 'flowrun: 1'"
	}
	ps.p.Name = ps.str(keys["name"], "name")
	if ps.p.Name == "" {
		base := filepath.Base(ps.file.Name)
		ps.p.Name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	ps.p.Description = ps.str(keys["description"], "description")
	if v := keys["schedule"]; v != nil {
		ps.schedule(v)
	}
	for _, inc := range incs {
		inc.ps.schemas(inc.keys["schemas"])
	}
	ps.schemas(keys["schemas"])
	seen := map[string]*ast.Node{}
	for s, name := range ast.SectionNames() {
		for _, inc := range incs {
			inc.ps.section(ast.Section(s), inc.keys[name], seen)
		}
		ps.section(ast.Section(s), keys[name], seen)
	}
	if t := keys["tests"]; t != nil {
		ps.p.Tests = t
	}
}

// scheduleKeys are the keys of the mapping form of schedule:.
var scheduleKeys = []string{"cron", "timezone", "catchup", "start", "retries", "retry_backoff", "max_backoff", "shards"}

// schedule reads `schedule: CRON` or `schedule: {cron: CRON, timezone: ...}`.
func (ps *parser) schedule(v *yaml.Node) {
	ps.p.SchedulePos = ps.pos(v)
	if v.Kind != yaml.MappingNode {
		ps.p.Schedule = ps.str(v, "schedule")
		return
	}
	o := &ps.p.ScheduleOpts
	ps.mapping(v, "schedule", func(k, val *yaml.Node) {
		sc := ast.Scalar{Value: ps.str(val, k.Value), Pos: ps.pos(val), Set: true}
		switch k.Value {
		case "cron":
			ps.p.Schedule, ps.p.SchedulePos = sc.Value, sc.Pos
		case "timezone":
			o.Timezone = sc
		case "catchup":
			o.Catchup = sc
		case "start":
			o.Start = sc
		case "retries":
			o.Retries = sc
		case "retry_backoff":
			o.RetryBackoff = sc
		case "max_backoff":
			o.MaxBackoff = sc
		case "shards":
			o.Shards = sc
		default:
			e := ps.errorf(k, "unknown-key", "unknown key '%s' in schedule", k.Value)
			if h := source.DidYouMean(k.Value, scheduleKeys); h != "" {
				e.Hint = h
			} else {
				e.Hint = "schedule keys: " + strings.Join(scheduleKeys, ", ")
			}
		}
	})
	if ps.p.Schedule == "" {
		e := ps.errorf(v, "missing", "schedule needs 'cron' (a cron expression, @daily, @hourly)")
		e.Hint = `schedule: {cron: "@daily", timezone: Europe/Paris}`
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return strconv.Quote(n.Value)
}

// str reads an optional string scalar.
func (ps *parser) str(n *yaml.Node, what string) string {
	if n == nil || isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		ps.errorf(n, "type", "'%s' must be a string, not %s", what, describe(n))
		return ""
	}
	return n.Value
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// mapping checks n is a mapping (null counts as empty) and calls fn for each
// key in order, reporting duplicate keys.
func (ps *parser) mapping(n *yaml.Node, what string, fn func(k, v *yaml.Node)) {
	if n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		ps.errorf(n, "type", "%s must be a mapping, not %s", what, describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			ps.errorf(k, "type", "keys of %s must be names, not %s", what, describe(k))
			continue
		}
		if seen[k.Value] {
			ps.errorf(k, "duplicate", "duplicate key '%s' in %s", k.Value, what)
			continue
		}
		seen[k.Value] = true
		fn(k, v)
	}
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// declareVars records the defaults of n's variables; a variable already
// declared (by the including file) keeps its first declaration.
func (ps *parser) declareVars(n *yaml.Node) {
	ps.mapping(n, "'vars'", func(k, v *yaml.Node) {
		if !identRE.MatchString(k.Value) {
			ps.errorf(k, "name", "variable name '%s' must be letters, digits and underscores, starting with a letter", k.Value)
			return
		}
		if _, declared := ps.vars[k.Value]; declared {
			return
		}
		def := ""
		switch {
		case isNull(v):
		case v.Kind == yaml.ScalarNode:
			// A default may itself use ${ENV:-fallback}, but not other vars.
			def = ps.expand(v, v.Value, false)
			v.Value = def
		default:
			ps.errorf(v, "type", "variable '%s' must have a string default, not %s", k.Value, describe(v))
			return
		}
		ps.vars[k.Value] = def
		if ps.lookup != nil {
			if val, ok := ps.lookup(k.Value); ok {
				ps.p.Vars[k.Value] = val
				return
			}
		}
		ps.p.Vars[k.Value] = def
	})
}

// substitute replaces ${NAME} in every scalar below n except mapping keys.
func (ps *parser) substitute(n *yaml.Node) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if strings.Contains(n.Value, "${") {
			n.Value = ps.expand(n, n.Value, true)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			ps.substitute(n.Content[i])
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			ps.substitute(c)
		}
	}
}

// expand resolves ${NAME} and ${NAME:-default} in s, the value of scalar n;
// $${ stands for a literal ${.
func (ps *parser) expand(n *yaml.Node, s string, useVars bool) string {
	var b strings.Builder
	searchFrom := ps.offset(n)
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			pos := ps.find(n, s[i:], &searchFrom)
			e := ps.errs.Add(pos, "unterminated '${' in %q", n.Value)
			e.Code = "var"
			e.Hint = "close it with '}', or write '$${' for a literal '${'"
			b.WriteString(s[i:])
			return b.String()
		}
		ref := s[i : i+end+1]
		inner := ref[2 : len(ref)-1]
		name, def, hasDef := strings.Cut(inner, ":-")
		pos := ps.find(n, ref, &searchFrom)
		if !identRE.MatchString(name) {
			e := ps.errs.Add(pos, "bad variable reference '%s': a name is letters, digits and underscores", ref)
			e.Code = "var"
			s = s[i+end+1:]
			continue
		}
		val, ok := "", false
		if ps.lookup != nil {
			val, ok = ps.lookup(name)
		}
		if !ok && useVars {
			val, ok = ps.vars[name]
		}
		if !ok && hasDef {
			val, ok = def, true
		}
		if !ok {
			e := ps.errs.Add(pos, "undefined variable '%s'", name)
			e.Code = "undefined-var"
			var names []string
			for v := range ps.vars {
				names = append(names, v)
			}
			if h := source.DidYouMean(name, names); h != "" {
				e.Hint = h
			} else {
				e.Hint = fmt.Sprintf("declare it under 'vars:', set it with --set %s=VALUE, or write ${%s:-default}", name, name)
			}
		} else if useVars {
			ps.p.Vars[name] = val
		}
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

// offset returns the byte offset in the file where scalar n starts.
func (ps *parser) offset(n *yaml.Node) int {
	text := string(ps.file.Text)
	off := 0
	for line := 1; line < n.Line; line++ {
		j := strings.IndexByte(text[off:], '\n')
		if j < 0 {
			return len(text)
		}
		off += j + 1
	}
	// Column counts runes.
	col := 1
	for off < len(text) && col < n.Column && text[off] != '\n' {
		_, size := utf8.DecodeRuneInString(text[off:])
		off += size
		col++
	}
	return off
}

// find locates ref in the file text at or after *from, returning its
// position; it falls back to the scalar's own position.
func (ps *parser) find(n *yaml.Node, ref string, from *int) source.Pos {
	text := string(ps.file.Text)
	if *from <= len(text) {
		if j := strings.Index(text[*from:], ref); j >= 0 {
			off := *from + j
			*from = off + len(ref)
			return ps.posAt(off)
		}
	}
	return ps.pos(n)
}

func (ps *parser) posAt(off int) source.Pos {
	text := string(ps.file.Text)
	line := 1 + strings.Count(text[:off], "\n")
	start := strings.LastIndexByte(text[:off], '\n') + 1
	col := 1 + len([]rune(text[start:off]))
	return source.Pos{File: ps.file, Line: line, Column: col}
}

// included is one parsed include: its parser (positions in its file) and
// its top-level keys.
type included struct {
	ps   *parser
	keys map[string]*yaml.Node
}

// includes reads the files named by n (a path or a list of paths, relative
// to this file's folder), declares their vars and substitutes variables in
// their contents. Their schemas and nodes join the pipeline as if written
// here, with positions in their own files.
func (ps *parser) includes(n *yaml.Node) []included {
	if n == nil || isNull(n) {
		return nil
	}
	var paths []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		paths = []*yaml.Node{n}
	case yaml.SequenceNode:
		paths = n.Content
	default:
		ps.errorf(n, "type", "'include' must be a file name or a list of file names, not %s", describe(n))
		return nil
	}
	var out []included
	done := map[string]bool{}
	for _, pn := range paths {
		if pn.Kind != yaml.ScalarNode || isNull(pn) || pn.Value == "" {
			ps.errorf(pn, "type", "'include' entries must be file names, not %s", describe(pn))
			continue
		}
		path := pn.Value
		if strings.Contains(path, "${") {
			path = ps.expand(pn, path, true)
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(ps.file.Name), path)
		}
		if done[path] {
			ps.errorf(pn, "duplicate", "'%s' is included twice", pn.Value)
			continue
		}
		done[path] = true
		text, err := os.ReadFile(path)
		if err != nil {
			e := ps.errorf(pn, "include", "cannot read included file '%s': %v", pn.Value, errors.Unwrap(err))
			if errors.Unwrap(err) == nil {
				e.Msg = fmt.Sprintf("cannot read included file '%s': %v", pn.Value, err)
			}
			e.Hint = "an include path is relative to the folder of the file that includes it"
			continue
		}
		sub := &parser{file: source.NewFile(path, text), p: ps.p, errs: ps.errs, lookup: ps.lookup, vars: ps.vars}
		doc, ok := sub.load(text)
		if !ok {
			continue
		}
		if doc.Kind != yaml.MappingNode {
			sub.errorf(doc, "type", "an included file must be a mapping with keys such as 'schemas' and 'transforms'")
			continue
		}
		keys := map[string]*yaml.Node{}
		sub.mapping(doc, "an included file", func(k, v *yaml.Node) {
			if !contains(IncludeKeys, k.Value) {
				e := sub.errorf(k, "unknown-key", "'%s' is not allowed in an included file (allowed: %s)", k.Value, strings.Join(IncludeKeys, ", "))
				if k.Value == "include" {
					e.Hint = "an included file cannot include others: include both from the pipeline"
				} else if h := source.DidYouMean(k.Value, IncludeKeys); h != "" {
					e.Hint = h
				}
				return
			}
			keys[k.Value] = v
		})
		sub.declareVars(keys["vars"])
		for name, v := range keys {
			if name != "vars" {
				sub.substitute(v)
			}
		}
		out = append(out, included{ps: sub, keys: keys})
	}
	return out
}

func (ps *parser) schemas(n *yaml.Node) {
	ps.mapping(n, "'schemas'", func(k, v *yaml.Node) {
		s := &ast.Schema{Name: k.Value, Pos: ps.pos(k)}
		if isNull(v) || v.Kind != yaml.MappingNode {
			ps.errorf(v, "type", "schema '%s' must be a mapping of column: type, not %s", k.Value, describe(v))
			return
		}
		ps.mapping(v, fmt.Sprintf("schema '%s'", k.Value), func(ck, cv *yaml.Node) {
			if cv.Kind != yaml.ScalarNode || isNull(cv) {
				ps.errorf(cv, "type", "column '%s' needs a type such as string or int64, not %s", ck.Value, describe(cv))
				return
			}
			s.Columns = append(s.Columns, ast.Column{Name: ck.Value, Type: cv.Value, Pos: ps.pos(ck), TypePos: ps.pos(cv)})
		})
		ps.p.Schemas = append(ps.p.Schemas, s)
	})
}

func (ps *parser) section(sec ast.Section, n *yaml.Node, seen map[string]*ast.Node) {
	ps.mapping(n, "'"+sec.String()+"'", func(k, v *yaml.Node) {
		name := k.Value
		if prev, dup := seen[name]; dup {
			e := ps.errorf(k, "duplicate", "duplicate node name '%s'", name)
			e.Hint = fmt.Sprintf("already declared as a %s at line %d", prev.Section.Singular(), prev.Pos.Line)
			if prev.Pos.File != ps.file && prev.Pos.File != nil {
				e.Hint = fmt.Sprintf("already declared as a %s at %s:%d", prev.Section.Singular(), prev.Pos.File.Name, prev.Pos.Line)
			}
			return
		}
		if name == "" {
			ps.errorf(k, "name", "a node needs a name")
			return
		}
		node := &ast.Node{Name: name, Pos: ps.pos(k), Section: sec}
		seen[name] = node
		ps.p.Nodes = append(ps.p.Nodes, node)
		ps.node(node, k, v)
	})
}

func (ps *parser) node(node *ast.Node, k, v *yaml.Node) {
	if v.Kind != yaml.MappingNode {
		e := ps.errorf(v, "type", "%s '%s' must be a mapping with one operator key, not %s", node.Section.Singular(), node.Name, describe(v))
		if isNull(v) {
			e.Pos = ps.pos(k)
			e.Msg = fmt.Sprintf("%s '%s' has no operator", node.Section.Singular(), node.Name)
		}
		return
	}
	var ops []*yaml.Node
	var opVals []*yaml.Node
	ps.mapping(v, fmt.Sprintf("%s '%s'", node.Section.Singular(), node.Name), func(ck, cv *yaml.Node) {
		if !ps.commonKey(node, ck.Value, cv) {
			ops = append(ops, ck)
			opVals = append(opVals, cv)
		}
	})
	// A key that looks like a misspelt common key ("form") is reported and
	// used as that key, when another key can be the operator.
	if len(ops) > 1 {
		var keep, keepVals []*yaml.Node
		var typos []int
		for i, o := range ops {
			if source.Suggest(o.Value, CommonKeys) != "" {
				typos = append(typos, i)
				continue
			}
			keep, keepVals = append(keep, o), append(keepVals, opVals[i])
		}
		if len(keep) > 0 {
			for _, i := range typos {
				o := ops[i]
				want := source.Suggest(o.Value, CommonKeys)
				e := ps.errorf(o, "unknown-key", "unknown key '%s' in %s '%s'", o.Value, node.Section.Singular(), node.Name)
				e.Hint = source.DidYouMean(o.Value, CommonKeys)
				if !ps.isSet(node, want) {
					ps.commonKey(node, want, opVals[i])
				}
			}
			ops, opVals = keep, keepVals
		}
	}
	switch len(ops) {
	case 0:
		e := ps.errorf(k, "no-operator", "%s '%s' has no operator", node.Section.Singular(), node.Name)
		e.Hint = "add one key naming the operator, e.g. 'file: {...}'"
	case 1:
		node.Type = ops[0].Value
		node.TypePos = ps.pos(ops[0])
		node.Config = opVals[0]
	default:
		names := make([]string, len(ops))
		for i, o := range ops {
			names[i] = "'" + o.Value + "'"
		}
		e := ps.errorf(ops[1], "many-operators", "%s '%s' has %d operator keys (%s): a node has exactly one",
			node.Section.Singular(), node.Name, len(ops), strings.Join(names, ", "))
		e.Hint = "split it into several nodes joined with 'from:'"
	}
}

// commonKey handles the node keys that are not operators, reporting
// whether key is one.
func (ps *parser) commonKey(node *ast.Node, key string, cv *yaml.Node) bool {
	switch key {
	case "from":
		node.From = ps.refs(cv)
	case "dead_letter":
		if cv.Kind != yaml.ScalarNode || isNull(cv) || cv.Value == "" {
			ps.errorf(cv, "type", "'dead_letter' must name a sink, not %s", describe(cv))
			break
		}
		node.DeadLetter = &ast.Ref{Name: cv.Value, Pos: ps.pos(cv)}
	case "late":
		if cv.Kind != yaml.ScalarNode || isNull(cv) || cv.Value == "" {
			ps.errorf(cv, "type", "'late' must name a sink, not %s", describe(cv))
			break
		}
		node.Late = &ast.Ref{Name: cv.Value, Pos: ps.pos(cv)}
	case "description":
		node.Description = ps.str(cv, "description")
	default:
		return false
	}
	return true
}

func (ps *parser) isSet(node *ast.Node, key string) bool {
	switch key {
	case "from":
		return node.From != nil
	case "dead_letter":
		return node.DeadLetter != nil
	case "late":
		return node.Late != nil
	}
	return node.Description != ""
}

func (ps *parser) refs(n *yaml.Node) []ast.Ref {
	switch {
	case n.Kind == yaml.ScalarNode && !isNull(n) && n.Value != "":
		return []ast.Ref{{Name: n.Value, Pos: ps.pos(n)}}
	case n.Kind == yaml.SequenceNode && len(n.Content) > 0:
		var out []ast.Ref
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || isNull(c) || c.Value == "" {
				ps.errorf(c, "type", "'from' entries must be node names, not %s", describe(c))
				continue
			}
			out = append(out, ast.Ref{Name: c.Value, Pos: ps.pos(c)})
		}
		return out
	}
	ps.errorf(n, "type", "'from' must be a node name or a list of node names, not %s", describe(n))
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
