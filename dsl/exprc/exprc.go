// Package exprc compiles expr-lang expressions against an Arrow schema and
// maps their errors back into the pipeline file.
//
// An expression sees one variable per column, typed by arrowx.GoType (an
// int64 column is a Go int, a timestamp a time.Time, ...), plus the
// functions listed by Docs. A null column value is nil; every function this
// package adds returns nil when its main input is nil, so nulls flow through
// cleaning expressions the way they do in SQL. The string builtins of
// expr-lang that would fail on nil (trim, trimPrefix, trimSuffix, upper,
// lower, split, replace) and the casts int, float and string are replaced
// by nil-passing versions with the same behaviour otherwise.
//
// Compile once (Program is immutable and shared); evaluate with one
// Evaluator per goroutine, bound to each record batch in turn.
package exprc

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/flowrun/flowrun/dsl/arrowx"
	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
)

// Option adjusts what Compile accepts.
type Option func(*config)

type config struct {
	wantBool bool
	want     arrow.DataType
	name     string
	noKernel bool // evaluate on the expr VM only (tests)
}

// vmOnly disables the columnar kernel, for differential tests.
func vmOnly() Option { return func(c *config) { c.noKernel = true } }

// WantBool requires a boolean result, as for filters.
func WantBool() Option { return func(c *config) { c.wantBool = true } }

// WantType requires a result storable in a column of type t. An int result
// is accepted for float64 and int32 columns.
func WantType(t arrow.DataType) Option { return func(c *config) { c.want = t } }

// Name names the expression's role in type-requirement messages ("filter
// must be a boolean expression, got string"). It defaults to "filter" with
// WantBool and "expression" otherwise.
func Name(name string) Option { return func(c *config) { c.name = name } }

// Program is a compiled expression. It is immutable and safe to share
// between goroutines; evaluate it through an Evaluator.
type Program struct {
	src   spec.ExprSrc
	prog  *vm.Program
	typ   arrow.DataType
	cols  []int
	names []string
	kern  *kernel // nil: no columnar kernel, VM only
}

// Compile type-checks src against schema. Errors point into the pipeline
// file at the offending part of the expression.
func Compile(src spec.ExprSrc, schema *arrow.Schema, opts ...Option) (*Program, source.Errors) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.name == "" {
		cfg.name = "expression"
		if cfg.wantBool {
			cfg.name = "filter"
		}
	}
	var errs source.Errors
	if strings.TrimSpace(src.Src) == "" {
		errs.Add(src.Pos, "empty expression").Code = "expr"
		return nil, errs
	}
	var fields []arrow.Field
	if schema != nil {
		fields = schema.Fields()
	}
	env := make(map[string]any, len(fields))
	colNames := make([]string, 0, len(fields))
	for _, f := range fields {
		t := arrowx.GoType(f.Type)
		if t.Kind() == reflect.Interface {
			env[f.Name] = nil
		} else {
			env[f.Name] = reflect.Zero(t).Interface()
		}
		colNames = append(colNames, f.Name)
	}
	lib := newLibrary()
	options := append([]expr.Option{expr.Env(env)}, lib.options()...)
	prog, err := expr.Compile(src.Src, options...)
	if err != nil {
		errs = append(errs, mapError(src, err, colNames, lib.names()))
		return nil, errs
	}
	nullSafeEquality(prog)
	p := &Program{src: src, prog: prog}
	node := prog.Node()
	if e := lib.precompile(src, node); e != nil {
		errs = append(errs, e)
		return nil, errs
	}
	rt := node.Type()
	at, ok := arrowx.ArrowType(rt)
	switch {
	case cfg.wantBool && (rt == nil || rt.Kind() != reflect.Bool):
		errs.Add(src.Pos, "%s must be a boolean expression, got %s", cfg.name, typeName(rt)).Code = "type"
	case !ok:
		e := errs.Add(src.Pos, "cannot tell the type of this expression; wrap it in a cast such as int(...) or string(...)")
		e.Code = "type"
		if rt != nil && rt.Kind() != reflect.Interface {
			e.Msg = fmt.Sprintf("expression of type %s cannot be stored in a column", typeName(rt))
		}
	case cfg.want != nil && !assignable(at, cfg.want):
		errs.Add(src.Pos, "%s must be of type %s, got %s", cfg.name, types.Name(cfg.want), types.Name(at)).Code = "type"
	}
	if len(errs) > 0 {
		return nil, errs
	}
	p.typ = at
	if cfg.want != nil {
		p.typ = cfg.want
	}
	used := referenced(node, env)
	for i, f := range fields {
		if used[f.Name] && !slices.Contains(p.names, f.Name) {
			p.cols = append(p.cols, i)
			p.names = append(p.names, f.Name)
		}
	}
	if !cfg.noKernel {
		p.kern = lowerKernel(node, schema, lib, p.typ)
	}
	return p, nil
}

func assignable(got, want arrow.DataType) bool {
	if arrow.TypeEqual(got, want) {
		return true
	}
	if got.ID() == arrow.INT64 && (want.ID() == arrow.FLOAT64 || want.ID() == arrow.INT32) {
		return true
	}
	if got.ID() == arrow.TIMESTAMP && want.ID() == arrow.TIMESTAMP {
		return true
	}
	return got.ID() == arrow.STRING && want.ID() == arrow.LARGE_STRING
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "nil"
	}
	if at, ok := arrowx.ArrowType(t); ok {
		return types.Name(at)
	}
	if t.Kind() == reflect.Interface {
		return "an unknown type"
	}
	return t.String()
}

// referenced collects the column names an expression reads. A dynamic
// $env[...] lookup reads every column.
func referenced(node ast.Node, env map[string]any) map[string]bool {
	v := &refs{env: env, used: map[string]bool{}}
	ast.Walk(&node, v)
	if v.envIdents > v.envConst {
		for k := range env {
			v.used[k] = true
		}
	}
	return v.used
}

type refs struct {
	env                 map[string]any
	used                map[string]bool
	envIdents, envConst int
}

func (r *refs) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.IdentifierNode:
		if x.Value == "$env" {
			r.envIdents++
		} else if _, ok := r.env[x.Value]; ok {
			r.used[x.Value] = true
		}
	case *ast.MemberNode:
		if id, ok := x.Node.(*ast.IdentifierNode); ok && id.Value == "$env" {
			if s, ok := x.Property.(*ast.StringNode); ok {
				r.envConst++
				r.used[s.Value] = true
			}
		}
	}
}

// nullSafeEquality makes == and != on a null compare as unequal (as in SQL's
// IS DISTINCT FROM) instead of failing: expr emits typed comparisons for two
// int or two string operands, which assume neither is nil. A null column
// value is common in data cleaning (`category == "art"` on a post without a
// category must be false, not a dead letter), so every equality uses the
// generic, nil-aware runtime.Equal. The opcodes take no argument, so the
// replacement keeps the bytecode layout.
func nullSafeEquality(p *vm.Program) {
	for i, op := range p.Bytecode {
		if op == vm.OpEqualInt || op == vm.OpEqualString {
			p.Bytecode[i] = vm.OpEqual
		}
	}
}
