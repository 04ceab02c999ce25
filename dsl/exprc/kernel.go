package exprc

import (
	"errors"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/expr-lang/expr/ast"
)

// This file lowers a checked expression into a tree of typed kernels that
// evaluate one row without the expr VM: no boxing into any, no env map.
// Lowering succeeds only when every node is of a kind reimplemented here
// with exactly the VM's semantics (including which null meets an error);
// otherwise the Program has no kernel and evaluates on the VM.

// kind is the static type of a kernel value.
type kind uint8

const (
	kStr kind = iota + 1
	kInt
	kFloat
	kBool
	kList // list<string>, made only by split
)

// kctx is the per-Evaluator state kernels read: the bound columns, one
// slice per Arrow type, indexed by the slot a column node was given.
type kctx struct {
	strs  []stringCol
	ints  []int64Col
	flts  []float64Col
	bools []boolCol
}

// Value nodes. ok is false for null; err is a row failure.
type (
	sNode interface {
		s(c *kctx, r int) (string, bool, error)
	}
	iNode interface {
		i(c *kctx, r int) (int, bool, error)
	}
	fNode interface {
		f(c *kctx, r int) (float64, bool, error)
	}
	bNode interface {
		b(c *kctx, r int) (bool, bool, error)
	}
	// lNode yields a split to perform; splitting itself cannot fail, so
	// the result is appended only once the row is known to succeed.
	lNode interface {
		l(c *kctx, r int) (splitVal, bool, error)
	}
)

type splitVal struct {
	s, sep string
	n      int // pieces limit as for strings.SplitN; -1 for all
}

// kexpr is a lowered node: k says which field is set.
type kexpr struct {
	k   kind
	s   sNode
	i   iNode
	f   fNode
	b   bNode
	l   lNode
	lit any // literal value (nil literal: k == 0, isNil)
	nul bool
}

func (e kexpr) isLit() bool { return e.lit != nil }

// kernel is a Program's lowered form.
type kernel struct {
	root              kexpr
	strCols, intCols  []int // schema indices by slot
	fltCols, boolCols []int
	strSlot, intSlot  map[int]int
	fltSlot, boolSlot map[int]int
	colIdx            map[string]int
	schemaTypes       []arrow.DataType
	funcs             map[string]bool
	re                func(string) (*regexp.Regexp, error)
	typ               arrow.DataType
	intAsFloat        bool
}

// errNull marks a null reaching an operation that needs a value; it
// becomes the same message the VM's type assertion failure maps to.
var errNull = errors.New("null operand")

const nullMsg = "a null value reached an operation that needs a value (give a default with ?? or coalesce)"

// lowerKernel returns the kernel of a checked node, or nil.
func lowerKernel(node ast.Node, schema *arrow.Schema, lib *library, typ arrow.DataType) *kernel {
	if schema == nil {
		return nil
	}
	k := &kernel{
		strSlot: map[int]int{}, intSlot: map[int]int{}, fltSlot: map[int]int{}, boolSlot: map[int]int{},
		colIdx: map[string]int{}, funcs: map[string]bool{}, re: lib.regexp, typ: typ,
	}
	for i, f := range schema.Fields() {
		if _, dup := k.colIdx[f.Name]; !dup {
			k.colIdx[f.Name] = i
		}
		k.schemaTypes = append(k.schemaTypes, f.Type)
	}
	for _, f := range lib.funcs {
		k.funcs[f.doc.Name] = true
	}
	root, ok := k.lower(node)
	if !ok {
		return nil
	}
	switch {
	case root.k == kStr && typ.ID() == arrow.STRING,
		root.k == kInt && typ.ID() == arrow.INT64,
		root.k == kFloat && typ.ID() == arrow.FLOAT64,
		root.k == kBool && typ.ID() == arrow.BOOL,
		root.k == kList && arrow.TypeEqual(typ, arrow.ListOf(arrow.BinaryTypes.String)):
	case root.k == kInt && typ.ID() == arrow.FLOAT64:
		k.intAsFloat = true
	default:
		return nil
	}
	k.root = root
	return k
}

func kindOf(t reflect.Type) kind {
	if t == nil {
		return 0
	}
	switch t.Kind() {
	case reflect.String:
		return kStr
	case reflect.Int:
		return kInt
	case reflect.Float64:
		return kFloat
	case reflect.Bool:
		return kBool
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return kList
		}
	}
	return 0
}

func (k *kernel) lower(n ast.Node) (kexpr, bool) {
	switch x := n.(type) {
	case *ast.NilNode:
		return kexpr{nul: true}, true
	case *ast.StringNode:
		return kexpr{k: kStr, s: sLit(x.Value), lit: x.Value}, true
	case *ast.IntegerNode:
		return kexpr{k: kInt, i: iLit(x.Value), lit: x.Value}, true
	case *ast.FloatNode:
		return kexpr{k: kFloat, f: fLit(x.Value), lit: x.Value}, true
	case *ast.BoolNode:
		return kexpr{k: kBool, b: bLit(x.Value), lit: x.Value}, true
	case *ast.ConstantNode:
		switch v := x.Value.(type) {
		case string:
			return kexpr{k: kStr, s: sLit(v), lit: v}, true
		case int:
			return kexpr{k: kInt, i: iLit(v), lit: v}, true
		case float64:
			return kexpr{k: kFloat, f: fLit(v), lit: v}, true
		case bool:
			return kexpr{k: kBool, b: bLit(v), lit: v}, true
		case nil:
			return kexpr{nul: true}, true
		}
		return kexpr{}, false
	case *ast.IdentifierNode:
		return k.column(x)
	case *ast.UnaryNode:
		if x.Operator != "!" && x.Operator != "not" {
			return kexpr{}, false
		}
		a, ok := k.lower(x.Node)
		if !ok || a.k != kBool {
			return kexpr{}, false
		}
		return kexpr{k: kBool, b: bNot{a.b}}, true
	case *ast.BinaryNode:
		return k.binary(x)
	case *ast.ConditionalNode:
		c, ok1 := k.lower(x.Cond)
		a, ok2 := k.lower(x.Exp1)
		b, ok3 := k.lower(x.Exp2)
		if !ok1 || !ok2 || !ok3 || c.k != kBool || a.k == 0 || a.k != b.k || kindOf(x.Type()) != a.k {
			return kexpr{}, false
		}
		switch a.k {
		case kStr:
			return kexpr{k: kStr, s: sCond{c.b, a.s, b.s}}, true
		case kInt:
			return kexpr{k: kInt, i: iCond{c.b, a.i, b.i}}, true
		case kFloat:
			return kexpr{k: kFloat, f: fCond{c.b, a.f, b.f}}, true
		case kBool:
			return kexpr{k: kBool, b: bCond{c.b, a.b, b.b}}, true
		case kList:
			return kexpr{k: kList, l: lCond{c.b, a.l, b.l}}, true
		}
	case *ast.CallNode:
		return k.call(x)
	}
	return kexpr{}, false
}

func (k *kernel) column(x *ast.IdentifierNode) (kexpr, bool) {
	i, ok := k.colIdx[x.Value]
	if !ok {
		return kexpr{}, false
	}
	slot := func(m map[int]int, cols *[]int) int {
		if s, ok := m[i]; ok {
			return s
		}
		m[i] = len(*cols)
		*cols = append(*cols, i)
		return m[i]
	}
	switch k.schemaTypes[i].ID() {
	case arrow.STRING:
		return kexpr{k: kStr, s: sCol(slot(k.strSlot, &k.strCols))}, true
	case arrow.INT64:
		return kexpr{k: kInt, i: iCol(slot(k.intSlot, &k.intCols))}, true
	case arrow.FLOAT64:
		return kexpr{k: kFloat, f: fCol(slot(k.fltSlot, &k.fltCols))}, true
	case arrow.BOOL:
		return kexpr{k: kBool, b: bCol(slot(k.boolSlot, &k.boolCols))}, true
	}
	return kexpr{}, false
}

func (k *kernel) binary(x *ast.BinaryNode) (kexpr, bool) {
	switch x.Operator {
	case "&&", "and", "||", "or":
		a, ok1 := k.lower(x.Left)
		b, ok2 := k.lower(x.Right)
		if !ok1 || !ok2 || a.k != kBool || b.k != kBool {
			return kexpr{}, false
		}
		if x.Operator == "&&" || x.Operator == "and" {
			return kexpr{k: kBool, b: bAnd{a.b, b.b}}, true
		}
		return kexpr{k: kBool, b: bOr{a.b, b.b}}, true
	case "??":
		a, ok1 := k.lower(x.Left)
		b, ok2 := k.lower(x.Right)
		if !ok1 || !ok2 || a.k == 0 || a.k != b.k || kindOf(x.Type()) != a.k {
			return kexpr{}, false
		}
		return coalesceOf([]kexpr{a, b})
	case "in":
		a, ok := k.lower(x.Left)
		c, isConst := x.Right.(*ast.ConstantNode)
		if !ok || !isConst {
			return kexpr{}, false
		}
		switch set := c.Value.(type) {
		case map[string]struct{}:
			if a.k != kStr {
				return kexpr{}, false
			}
			_, empty := set[""]
			return kexpr{k: kBool, b: sIn{a.s, set, empty}}, true
		case map[int]struct{}:
			if a.k != kInt {
				return kexpr{}, false
			}
			_, zero := set[0]
			return kexpr{k: kBool, b: iIn{a.i, set, zero}}, true
		}
		return kexpr{}, false
	case "==", "!=":
		a, ok1 := k.lower(x.Left)
		b, ok2 := k.lower(x.Right)
		if !ok1 || !ok2 {
			return kexpr{}, false
		}
		neg := x.Operator == "!="
		// Equality is nil-aware on the VM too (nullSafeEquality): a null
		// equals only null.
		const strict = false
		switch {
		case a.nul && b.nul:
			return kexpr{k: kBool, b: bLit(!neg)}, true
		case a.nul || b.nul:
			v := a
			if a.nul {
				v = b
			}
			if v.k == 0 || v.k == kList {
				return kexpr{}, false
			}
			return kexpr{k: kBool, b: isNull{v, neg}}, true
		case a.k == kStr && b.k == kStr:
			return kexpr{k: kBool, b: sEq{a.s, b.s, strict, neg}}, true
		case a.k == kInt && b.k == kInt:
			return kexpr{k: kBool, b: iEq{a.i, b.i, strict, neg}}, true
		case a.k == kBool && b.k == kBool && !strict:
			return kexpr{k: kBool, b: bEq{a.b, b.b, neg}}, true
		case (a.k == kFloat || a.k == kInt) && (b.k == kFloat || b.k == kInt) && !strict:
			return kexpr{k: kBool, b: fEq{toF(a), toF(b), neg}}, true
		}
	}
	return kexpr{}, false
}

// toF views an int or float expression as float.
func toF(e kexpr) fNode {
	if e.k == kInt {
		return i2f{e.i}
	}
	return e.f
}

func kinds(args []kexpr) []kind {
	out := make([]kind, len(args))
	for i, a := range args {
		out[i] = a.k
	}
	return out
}

func allKind(args []kexpr, k kind) bool {
	for _, a := range args {
		if a.k != k {
			return false
		}
	}
	return true
}

func (k *kernel) call(x *ast.CallNode) (kexpr, bool) {
	id, ok := x.Callee.(*ast.IdentifierNode)
	if !ok || !k.funcs[id.Value] {
		return kexpr{}, false
	}
	if _, col := k.colIdx[id.Value]; col {
		return kexpr{}, false
	}
	args := make([]kexpr, len(x.Arguments))
	for i, a := range x.Arguments {
		if args[i], ok = k.lower(a); !ok || args[i].k == 0 {
			return kexpr{}, false
		}
	}
	if len(args) == 0 {
		return kexpr{}, false
	}
	want := kindOf(x.Type())
	ks := kinds(args)
	var out kexpr
	switch name := id.Value; name {
	case "nullif":
		switch {
		case allKind(args, kStr):
			n := sNullif{x: args[0].s}
			lits := true
			for _, a := range args[1:] {
				n.vals = append(n.vals, a.s)
				if s, ok := a.lit.(string); ok {
					n.lits = append(n.lits, s)
				} else {
					lits = false
				}
			}
			if lits {
				n.vals = nil
			} else {
				n.lits = nil
			}
			out = kexpr{k: kStr, s: n}
		case allKind(args, kInt):
			n := iNullif{x: args[0].i}
			for _, a := range args[1:] {
				n.vals = append(n.vals, a.i)
			}
			out = kexpr{k: kInt, i: n}
		}
	case "null_if_empty":
		if slices.Equal(ks, []kind{kStr}) {
			out = kexpr{k: kStr, s: sNullIfEmpty{args[0].s}}
		}
	case "coalesce":
		if allKind(args, ks[0]) {
			out, _ = coalesceOf(args)
		}
	case "split":
		switch {
		case slices.Equal(ks, []kind{kStr, kStr}):
			out = kexpr{k: kList, l: lSplit{args[0].s, args[1].s, -1}}
		case slices.Equal(ks, []kind{kStr, kStr, kInt}):
			if n, ok := args[2].lit.(int); ok {
				out = kexpr{k: kList, l: lSplit{args[0].s, args[1].s, n}}
			}
		}
	case "trim", "trimPrefix", "trimSuffix":
		var arg sNode
		switch {
		case slices.Equal(ks, []kind{kStr}):
			if name != "trim" {
				arg = sLit(" ")
			}
		case slices.Equal(ks, []kind{kStr, kStr}):
			arg = args[1].s
		default:
			return kexpr{}, false
		}
		op := map[string]uint8{"trim": opTrim, "trimPrefix": opTrimPrefix, "trimSuffix": opTrimSuffix}[name]
		out = kexpr{k: kStr, s: sTrim{args[0].s, arg, op}}
	case "upper", "lower":
		if slices.Equal(ks, []kind{kStr}) {
			out = kexpr{k: kStr, s: sCase{args[0].s, name == "upper"}}
		}
	case "replace":
		if slices.Equal(ks, []kind{kStr, kStr, kStr}) {
			out = kexpr{k: kStr, s: sReplace{args[0].s, args[1].s, args[2].s}}
		}
	case "regex_match", "regex_replace":
		p, ok := args[min(1, len(args)-1)].lit.(string)
		if !ok {
			return kexpr{}, false
		}
		re, err := k.re(p)
		if err != nil {
			return kexpr{}, false
		}
		if name == "regex_match" && slices.Equal(ks, []kind{kStr, kStr}) {
			out = kexpr{k: kBool, b: reMatch{args[0].s, re}}
		}
		if name == "regex_replace" && slices.Equal(ks, []kind{kStr, kStr, kStr}) {
			out = kexpr{k: kStr, s: reReplace{args[0].s, re, args[2].s}}
		}
	case "parse_count":
		if len(args) == 1 {
			switch ks[0] {
			case kStr:
				out = kexpr{k: kInt, i: parseCountS{args[0].s}}
			case kInt:
				out = args[0]
				out.lit = nil
			case kFloat:
				out = kexpr{k: kInt, i: roundF{args[0].f}}
			}
		}
	case "to_bool", "to_int", "int", "to_float", "float", "to_string", "string":
		if len(args) == 1 && ks[0] != kList {
			out = castOf(name, args[0])
		}
	}
	if out.k == 0 || out.k != want {
		return kexpr{}, false
	}
	out.lit = nil
	return out, true
}

func coalesceOf(args []kexpr) (kexpr, bool) {
	switch args[0].k {
	case kStr:
		n := make(sCoalesce, len(args))
		for i, a := range args {
			n[i] = a.s
		}
		return kexpr{k: kStr, s: n}, true
	case kInt:
		n := make(iCoalesce, len(args))
		for i, a := range args {
			n[i] = a.i
		}
		return kexpr{k: kInt, i: n}, true
	case kFloat:
		n := make(fCoalesce, len(args))
		for i, a := range args {
			n[i] = a.f
		}
		return kexpr{k: kFloat, f: n}, true
	case kBool:
		n := make(bCoalesce, len(args))
		for i, a := range args {
			n[i] = a.b
		}
		return kexpr{k: kBool, b: n}, true
	}
	return kexpr{}, false
}

func castOf(name string, a kexpr) kexpr {
	switch strings.TrimPrefix(name, "to_") {
	case "bool":
		switch a.k {
		case kBool:
			return a
		case kStr:
			return kexpr{k: kBool, b: strBool{a.s}}
		case kInt:
			return kexpr{k: kBool, b: fNonZero{i2f{a.i}}}
		case kFloat:
			return kexpr{k: kBool, b: fNonZero{a.f}}
		}
	case "int":
		switch a.k {
		case kInt:
			return a
		case kStr:
			return kexpr{k: kInt, i: strInt{a.s}}
		case kFloat:
			return kexpr{k: kInt, i: truncF{a.f}}
		case kBool:
			return kexpr{k: kInt, i: b2i{a.b}}
		}
	case "float":
		switch a.k {
		case kFloat:
			return a
		case kStr:
			return kexpr{k: kFloat, f: strFloat{a.s}}
		case kInt:
			return kexpr{k: kFloat, f: i2f{a.i}}
		case kBool:
			return kexpr{k: kFloat, f: i2f{b2i{a.b}}}
		}
	case "string":
		switch a.k {
		case kStr:
			return a
		case kInt:
			return kexpr{k: kStr, s: intStr{a.i}}
		case kFloat:
			return kexpr{k: kStr, s: floatStr{a.f}}
		case kBool:
			return kexpr{k: kStr, s: boolStr{a.b}}
		}
	}
	return kexpr{}
}

// ---- leaves

type sLit string

func (v sLit) s(*kctx, int) (string, bool, error) { return string(v), true, nil }

type iLit int

func (v iLit) i(*kctx, int) (int, bool, error) { return int(v), true, nil }

type fLit float64

func (v fLit) f(*kctx, int) (float64, bool, error) { return float64(v), true, nil }

type bLit bool

func (v bLit) b(*kctx, int) (bool, bool, error) { return bool(v), true, nil }

type sCol int

func (v sCol) s(c *kctx, r int) (string, bool, error) {
	a := &c.strs[v]
	if a.isNull(r) {
		return "", false, nil
	}
	return a.value(r), true, nil
}

type iCol int

func (v iCol) i(c *kctx, r int) (int, bool, error) {
	a := &c.ints[v]
	if a.isNull(r) {
		return 0, false, nil
	}
	return int(a.vals[r]), true, nil
}

type fCol int

func (v fCol) f(c *kctx, r int) (float64, bool, error) {
	a := &c.flts[v]
	if a.isNull(r) {
		return 0, false, nil
	}
	return a.vals[r], true, nil
}

type bCol int

func (v bCol) b(c *kctx, r int) (bool, bool, error) {
	a := &c.bools[v]
	if a.isNull(r) {
		return false, false, nil
	}
	return a.arr.Value(r), true, nil
}

// ---- logic

type bNot struct{ x bNode }

func (n bNot) b(c *kctx, r int) (bool, bool, error) {
	v, ok, err := n.x.b(c, r)
	if err != nil {
		return false, false, err
	}
	if !ok {
		return false, false, errNull
	}
	return !v, true, nil
}

// bAnd and bOr short-circuit like the VM: a null left side fails, the
// right side's value (null included) is the result when evaluated.
type bAnd struct{ x, y bNode }

func (n bAnd) b(c *kctx, r int) (bool, bool, error) {
	v, ok, err := n.x.b(c, r)
	if err != nil {
		return false, false, err
	}
	if !ok {
		return false, false, errNull
	}
	if !v {
		return false, true, nil
	}
	return n.y.b(c, r)
}

type bOr struct{ x, y bNode }

func (n bOr) b(c *kctx, r int) (bool, bool, error) {
	v, ok, err := n.x.b(c, r)
	if err != nil {
		return false, false, err
	}
	if !ok {
		return false, false, errNull
	}
	if v {
		return true, true, nil
	}
	return n.y.b(c, r)
}

func cond(c *kctx, r int, n bNode) (bool, error) {
	v, ok, err := n.b(c, r)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, errNull
	}
	return v, nil
}

type sCond struct {
	c    bNode
	x, y sNode
}

func (n sCond) s(c *kctx, r int) (string, bool, error) {
	v, err := cond(c, r, n.c)
	if err != nil {
		return "", false, err
	}
	if v {
		return n.x.s(c, r)
	}
	return n.y.s(c, r)
}

type iCond struct {
	c    bNode
	x, y iNode
}

func (n iCond) i(c *kctx, r int) (int, bool, error) {
	v, err := cond(c, r, n.c)
	if err != nil {
		return 0, false, err
	}
	if v {
		return n.x.i(c, r)
	}
	return n.y.i(c, r)
}

type fCond struct {
	c    bNode
	x, y fNode
}

func (n fCond) f(c *kctx, r int) (float64, bool, error) {
	v, err := cond(c, r, n.c)
	if err != nil {
		return 0, false, err
	}
	if v {
		return n.x.f(c, r)
	}
	return n.y.f(c, r)
}

type bCond struct {
	c    bNode
	x, y bNode
}

func (n bCond) b(c *kctx, r int) (bool, bool, error) {
	v, err := cond(c, r, n.c)
	if err != nil {
		return false, false, err
	}
	if v {
		return n.x.b(c, r)
	}
	return n.y.b(c, r)
}

type lCond struct {
	c    bNode
	x, y lNode
}

func (n lCond) l(c *kctx, r int) (splitVal, bool, error) {
	v, err := cond(c, r, n.c)
	if err != nil {
		return splitVal{}, false, err
	}
	if v {
		return n.x.l(c, r)
	}
	return n.y.l(c, r)
}

// ---- comparisons

// isNull is x == nil (or x != nil with neg).
type isNull struct {
	x   kexpr
	neg bool
}

func (n isNull) b(c *kctx, r int) (bool, bool, error) {
	var ok bool
	var err error
	switch n.x.k {
	case kStr:
		_, ok, err = n.x.s.s(c, r)
	case kInt:
		_, ok, err = n.x.i.i(c, r)
	case kFloat:
		_, ok, err = n.x.f.f(c, r)
	case kBool:
		_, ok, err = n.x.b.b(c, r)
	}
	if err != nil {
		return false, false, err
	}
	return ok == n.neg, true, nil
}

type sEq struct {
	x, y        sNode
	strict, neg bool
}

func (n sEq) b(c *kctx, r int) (bool, bool, error) {
	a, aok, err := n.x.s(c, r)
	if err != nil {
		return false, false, err
	}
	b, bok, err := n.y.s(c, r)
	if err != nil {
		return false, false, err
	}
	var eq bool
	switch {
	case aok && bok:
		eq = a == b
	case n.strict:
		return false, false, errNull
	default:
		eq = aok == bok
	}
	return eq != n.neg, true, nil
}

type iEq struct {
	x, y        iNode
	strict, neg bool
}

func (n iEq) b(c *kctx, r int) (bool, bool, error) {
	a, aok, err := n.x.i(c, r)
	if err != nil {
		return false, false, err
	}
	b, bok, err := n.y.i(c, r)
	if err != nil {
		return false, false, err
	}
	var eq bool
	switch {
	case aok && bok:
		eq = a == b
	case n.strict:
		return false, false, errNull
	default:
		eq = aok == bok
	}
	return eq != n.neg, true, nil
}

type fEq struct {
	x, y fNode
	neg  bool
}

func (n fEq) b(c *kctx, r int) (bool, bool, error) {
	a, aok, err := n.x.f(c, r)
	if err != nil {
		return false, false, err
	}
	b, bok, err := n.y.f(c, r)
	if err != nil {
		return false, false, err
	}
	eq := aok == bok
	if aok && bok {
		eq = a == b
	}
	return eq != n.neg, true, nil
}

type bEq struct {
	x, y bNode
	neg  bool
}

func (n bEq) b(c *kctx, r int) (bool, bool, error) {
	a, aok, err := n.x.b(c, r)
	if err != nil {
		return false, false, err
	}
	b, bok, err := n.y.b(c, r)
	if err != nil {
		return false, false, err
	}
	eq := aok == bok
	if aok && bok {
		eq = a == b
	}
	return eq != n.neg, true, nil
}

// sIn is x in [...]: the VM looks a null up as the zero value.
type sIn struct {
	x     sNode
	set   map[string]struct{}
	empty bool
}

func (n sIn) b(c *kctx, r int) (bool, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil {
		return false, false, err
	}
	if !ok {
		return n.empty, true, nil
	}
	_, in := n.set[v]
	return in, true, nil
}

type iIn struct {
	x    iNode
	set  map[int]struct{}
	zero bool
}

func (n iIn) b(c *kctx, r int) (bool, bool, error) {
	v, ok, err := n.x.i(c, r)
	if err != nil {
		return false, false, err
	}
	if !ok {
		return n.zero, true, nil
	}
	_, in := n.set[v]
	return in, true, nil
}

// ---- functions (all arguments are evaluated, in order, as by the VM)

type sNullif struct {
	x    sNode
	vals []sNode
	lits []string
}

func (n sNullif) s(c *kctx, r int) (string, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil {
		return "", false, err
	}
	hit := false
	if n.lits != nil {
		hit = ok && slices.Contains(n.lits, v)
	}
	for _, a := range n.vals {
		w, wok, err := a.s(c, r)
		if err != nil {
			return "", false, err
		}
		if ok && wok && w == v {
			hit = true
		}
	}
	if !ok || hit {
		return "", false, nil
	}
	return v, true, nil
}

type iNullif struct {
	x    iNode
	vals []iNode
}

func (n iNullif) i(c *kctx, r int) (int, bool, error) {
	v, ok, err := n.x.i(c, r)
	if err != nil {
		return 0, false, err
	}
	hit := false
	for _, a := range n.vals {
		w, wok, err := a.i(c, r)
		if err != nil {
			return 0, false, err
		}
		if ok && wok && w == v {
			hit = true
		}
	}
	if !ok || hit {
		return 0, false, nil
	}
	return v, true, nil
}

type sNullIfEmpty struct{ x sNode }

func (n sNullIfEmpty) s(c *kctx, r int) (string, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil || !ok {
		return "", false, err
	}
	t := strings.TrimSpace(v)
	if t == "" || strings.EqualFold(t, "null") {
		return "", false, nil
	}
	return v, true, nil
}

type sCoalesce []sNode

func (n sCoalesce) s(c *kctx, r int) (string, bool, error) {
	var out string
	found := false
	for _, a := range n {
		v, ok, err := a.s(c, r)
		if err != nil {
			return "", false, err
		}
		if ok && !found {
			out, found = v, true
		}
	}
	return out, found, nil
}

type iCoalesce []iNode

func (n iCoalesce) i(c *kctx, r int) (int, bool, error) {
	var out int
	found := false
	for _, a := range n {
		v, ok, err := a.i(c, r)
		if err != nil {
			return 0, false, err
		}
		if ok && !found {
			out, found = v, true
		}
	}
	return out, found, nil
}

type fCoalesce []fNode

func (n fCoalesce) f(c *kctx, r int) (float64, bool, error) {
	var out float64
	found := false
	for _, a := range n {
		v, ok, err := a.f(c, r)
		if err != nil {
			return 0, false, err
		}
		if ok && !found {
			out, found = v, true
		}
	}
	return out, found, nil
}

type bCoalesce []bNode

func (n bCoalesce) b(c *kctx, r int) (bool, bool, error) {
	var out bool
	found := false
	for _, a := range n {
		v, ok, err := a.b(c, r)
		if err != nil {
			return false, false, err
		}
		if ok && !found {
			out, found = v, true
		}
	}
	return out, found, nil
}

type lSplit struct {
	x, sep sNode
	n      int
}

func (n lSplit) l(c *kctx, r int) (splitVal, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil {
		return splitVal{}, false, err
	}
	sep, _, err := n.sep.s(c, r)
	if err != nil || !ok {
		return splitVal{}, false, err
	}
	return splitVal{v, sep, n.n}, true, nil
}

const (
	opTrim = iota
	opTrimPrefix
	opTrimSuffix
)

type sTrim struct {
	x, arg sNode // arg nil: trim white space
	op     uint8
}

func (n sTrim) s(c *kctx, r int) (string, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil {
		return "", false, err
	}
	if n.arg == nil {
		if !ok {
			return "", false, nil
		}
		return strings.TrimSpace(v), true, nil
	}
	a, _, err := n.arg.s(c, r)
	if err != nil || !ok {
		return "", false, err
	}
	switch n.op {
	case opTrimPrefix:
		return strings.TrimPrefix(v, a), true, nil
	case opTrimSuffix:
		return strings.TrimSuffix(v, a), true, nil
	}
	return strings.Trim(v, a), true, nil
}

type sCase struct {
	x     sNode
	upper bool
}

func (n sCase) s(c *kctx, r int) (string, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil || !ok {
		return "", false, err
	}
	if n.upper {
		return strings.ToUpper(v), true, nil
	}
	return strings.ToLower(v), true, nil
}

type sReplace struct{ x, old, new sNode }

func (n sReplace) s(c *kctx, r int) (string, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil {
		return "", false, err
	}
	o, _, err := n.old.s(c, r)
	if err != nil {
		return "", false, err
	}
	w, _, err := n.new.s(c, r)
	if err != nil || !ok {
		return "", false, err
	}
	return strings.ReplaceAll(v, o, w), true, nil
}

type reMatch struct {
	x  sNode
	re *regexp.Regexp
}

func (n reMatch) b(c *kctx, r int) (bool, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil || !ok {
		return false, false, err
	}
	return n.re.MatchString(v), true, nil
}

type reReplace struct {
	x    sNode
	re   *regexp.Regexp
	repl sNode
}

func (n reReplace) s(c *kctx, r int) (string, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil {
		return "", false, err
	}
	repl, _, err := n.repl.s(c, r)
	if err != nil || !ok {
		return "", false, err
	}
	return n.re.ReplaceAllString(v, repl), true, nil
}

type parseCountS struct{ x sNode }

func (n parseCountS) i(c *kctx, r int) (int, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil || !ok {
		return 0, false, err
	}
	return parseCountInt(v)
}

type roundF struct{ x fNode }

func (n roundF) i(c *kctx, r int) (int, bool, error) {
	v, ok, err := n.x.f(c, r)
	if err != nil || !ok {
		return 0, false, err
	}
	return int(math.Round(v)), true, nil
}

type strBool struct{ x sNode }

func (n strBool) b(c *kctx, r int) (bool, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil || !ok {
		return false, false, err
	}
	b, err := strToBool(v)
	if err != nil {
		return false, false, err
	}
	return b, true, nil
}

type fNonZero struct{ x fNode }

func (n fNonZero) b(c *kctx, r int) (bool, bool, error) {
	v, ok, err := n.x.f(c, r)
	if err != nil || !ok {
		return false, false, err
	}
	return v != 0, true, nil
}

type strInt struct{ x sNode }

func (n strInt) i(c *kctx, r int) (int, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil || !ok {
		return 0, false, err
	}
	i, err := strToInt(v)
	if err != nil {
		return 0, false, err
	}
	return i, true, nil
}

type truncF struct{ x fNode }

func (n truncF) i(c *kctx, r int) (int, bool, error) {
	v, ok, err := n.x.f(c, r)
	if err != nil || !ok {
		return 0, false, err
	}
	i, err := floatToInt(v)
	if err != nil {
		return 0, false, err
	}
	return i, true, nil
}

type b2i struct{ x bNode }

func (n b2i) i(c *kctx, r int) (int, bool, error) {
	v, ok, err := n.x.b(c, r)
	if err != nil || !ok {
		return 0, false, err
	}
	if v {
		return 1, true, nil
	}
	return 0, true, nil
}

type i2f struct{ x iNode }

func (n i2f) f(c *kctx, r int) (float64, bool, error) {
	v, ok, err := n.x.i(c, r)
	return float64(v), ok, err
}

type strFloat struct{ x sNode }

func (n strFloat) f(c *kctx, r int) (float64, bool, error) {
	v, ok, err := n.x.s(c, r)
	if err != nil || !ok {
		return 0, false, err
	}
	f, err := strToFloat(v)
	if err != nil {
		return 0, false, err
	}
	return f, true, nil
}

type intStr struct{ x iNode }

func (n intStr) s(c *kctx, r int) (string, bool, error) {
	v, ok, err := n.x.i(c, r)
	if err != nil || !ok {
		return "", false, err
	}
	return strconv.Itoa(v), true, nil
}

type floatStr struct{ x fNode }

func (n floatStr) s(c *kctx, r int) (string, bool, error) {
	v, ok, err := n.x.f(c, r)
	if err != nil || !ok {
		return "", false, err
	}
	return strconv.FormatFloat(v, 'g', -1, 64), true, nil
}

type boolStr struct{ x bNode }

func (n boolStr) s(c *kctx, r int) (string, bool, error) {
	v, ok, err := n.x.b(c, r)
	if err != nil || !ok {
		return "", false, err
	}
	return strconv.FormatBool(v), true, nil
}

// splitEach calls f with each piece of strings.SplitN(s, sep, n) without
// building the slice.
func splitEach(v splitVal, f func(string)) {
	if v.sep == "" || v.n == 0 || v.n > 0 && v.n < 2 {
		if v.n == 0 {
			return
		}
		var parts []string
		if v.sep == "" {
			parts = strings.SplitN(v.s, "", v.n)
		} else {
			parts = []string{v.s}
		}
		for _, p := range parts {
			f(p)
		}
		return
	}
	s := v.s
	for n := v.n; n < 0 || n > 1; n-- {
		i := strings.Index(s, v.sep)
		if i < 0 {
			break
		}
		f(s[:i])
		s = s[i+len(v.sep):]
	}
	f(s)
}
