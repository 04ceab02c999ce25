package exprc

import (
	"fmt"
	"github.com/flowrun/flowrun/dsl/arrowx"
	"hash/fnv"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
)

// FuncDoc documents one function available in expressions. Example is an
// expression needing no columns; Result is its value printed with %v.
type FuncDoc struct {
	Name, Signature, Doc, Example, Result string
}

// Docs lists the functions flowrun adds to expressions (and the builtins it
// replaces), in name order.
func Docs() []FuncDoc {
	fs := newLibrary().funcs
	out := make([]FuncDoc, 0, len(fs)+1)
	for _, f := range fs {
		out = append(out, f.doc)
	}
	out = append(out, FuncDoc{Name: "now", Signature: "now() timestamp",
		Doc:     "The current time (expr-lang builtin).",
		Example: `now().Year() >= 2024`, Result: "true"})
	slices.SortFunc(out, func(a, b FuncDoc) int { return strings.Compare(a.Name, b.Name) })
	return out
}

type function struct {
	doc   FuncDoc
	fn    func(args ...any) (any, error)
	types []any
}

// library is the function set of one Program; it owns the Program's
// compiled-regexp cache.
type library struct {
	funcs []function
	re    sync.Map // pattern -> *regexp.Regexp
}

func (l *library) options() []expr.Option {
	out := make([]expr.Option, 0, len(l.funcs))
	for _, f := range l.funcs {
		out = append(out, expr.Function(f.doc.Name, f.fn, f.types...))
	}
	return out
}

// names lists every callable name, for suggestions.
func (l *library) names() []string {
	var out []string
	for _, f := range l.funcs {
		out = append(out, f.doc.Name)
	}
	for _, b := range builtin.Builtins {
		if !slices.Contains(out, b.Name) {
			out = append(out, b.Name)
		}
	}
	return out
}

func (l *library) regexp(pattern string) (*regexp.Regexp, error) {
	if re, ok := l.re.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	l.re.Store(pattern, re)
	return re, nil
}

// precompile compiles constant regexp patterns once, reporting bad ones at
// compile time.
func (l *library) precompile(src spec.ExprSrc, node ast.Node) *source.Error {
	v := &reVisitor{l: l, src: src}
	ast.Walk(&node, v)
	return v.err
}

type reVisitor struct {
	l   *library
	src spec.ExprSrc
	err *source.Error
}

func (v *reVisitor) Visit(n *ast.Node) {
	c, ok := (*n).(*ast.CallNode)
	if !ok || v.err != nil || len(c.Arguments) < 2 {
		return
	}
	id, ok := c.Callee.(*ast.IdentifierNode)
	if !ok || (id.Value != "regex_match" && id.Value != "regex_replace") {
		return
	}
	s, ok := c.Arguments[1].(*ast.StringNode)
	if !ok {
		return
	}
	if _, err := v.l.regexp(s.Value); err != nil {
		v.err = &source.Error{Pos: posOf(v.src, s.Location().From), Msg: fmt.Sprintf("%s: bad pattern: %v", id.Value, err), Code: "expr"}
	}
}

func newLibrary() *library {
	l := &library{}
	str1 := func(f func(string) any) func(args ...any) (any, error) {
		return func(args ...any) (any, error) {
			s, ok := args[0].(string)
			if !ok {
				return nil, nil
			}
			return f(s), nil
		}
	}
	l.funcs = []function{
		{
			doc: FuncDoc{Name: "parse_count", Signature: "parse_count(s string) int",
				Doc:     "Parses a human-written count: digits with an optional k (thousand), M (million) or B (billion) suffix; decimals and surrounding spaces allowed, commas ignored. Blank gives null; anything else unparseable is an error.",
				Example: `parse_count("1.2k")`, Result: "1200"},
			fn: func(args ...any) (any, error) {
				switch x := args[0].(type) {
				case string:
					return parseCount(x)
				case int:
					return x, nil
				case float64:
					return int(math.Round(x)), nil
				}
				return nil, nil
			},
			types: []any{new(func(string) int), new(func(int) int), new(func(float64) int)},
		},
		{
			doc: FuncDoc{Name: "nullif", Signature: "nullif(s string, values ...string) string",
				Doc:     "Null when s equals any of values, else s. Also takes ints.",
				Example: `nullif("User Info Error", "User Info Error", "N/A")`, Result: "<nil>"},
			fn: func(args ...any) (any, error) {
				if args[0] == nil {
					return nil, nil
				}
				if slices.Contains(args[1:], args[0]) {
					return nil, nil
				}
				return args[0], nil
			},
			types: []any{new(func(string, ...string) string), new(func(int, ...int) int)},
		},
		{
			doc: FuncDoc{Name: "null_if_empty", Signature: "null_if_empty(s string) string",
				Doc:     `Null when s is blank or the text "null" (any case), else s.`,
				Example: `null_if_empty("  ")`, Result: "<nil>"},
			fn: str1(func(s string) any {
				t := strings.TrimSpace(s)
				if t == "" || strings.EqualFold(t, "null") {
					return nil
				}
				return s
			}),
			types: []any{new(func(string) string)},
		},
		{
			doc: FuncDoc{Name: "coalesce", Signature: "coalesce(a T, rest ...T) T",
				Doc:     "The first argument that is not null; null if all are. All arguments share the type of the first (string, int, float64, bool, timestamp, list<string>, list<int64>).",
				Example: `coalesce(nullif("", ""), "unknown")`, Result: "unknown"},
			fn: func(args ...any) (any, error) {
				for _, a := range args {
					if a != nil {
						return a, nil
					}
				}
				return nil, nil
			},
			types: []any{
				new(func(string, ...string) string), new(func(int, ...int) int),
				new(func(float64, ...float64) float64), new(func(bool, ...bool) bool),
				new(func(time.Time, ...time.Time) time.Time), new(func([]string, ...[]string) []string),
				new(func([]int, ...[]int) []int),
			},
		},
		{
			doc: FuncDoc{Name: "split", Signature: "split(s, sep string[, n int]) list<string>",
				Doc:     "Splits s around sep (at most n pieces when n is given). Replaces the expr-lang builtin to pass null through.",
				Example: `split("a,b,c", ",")`, Result: "[a b c]"},
			fn: func(args ...any) (any, error) {
				s, ok := args[0].(string)
				if !ok {
					return nil, nil
				}
				sep, _ := args[1].(string)
				if len(args) == 3 {
					return strings.SplitN(s, sep, args[2].(int)), nil
				}
				return strings.Split(s, sep), nil
			},
			types: []any{new(func(string, string) []string), new(func(string, string, int) []string)},
		},
		{
			doc: FuncDoc{Name: "trim", Signature: "trim(s string[, cutset string]) string",
				Doc:     "Removes surrounding white space, or the characters of cutset. Replaces the expr-lang builtin to pass null through.",
				Example: `trim("  12 ")`, Result: "12"},
			fn: func(args ...any) (any, error) {
				s, ok := args[0].(string)
				if !ok {
					return nil, nil
				}
				if len(args) == 2 {
					cut, _ := args[1].(string)
					return strings.Trim(s, cut), nil
				}
				return strings.TrimSpace(s), nil
			},
			types: []any{new(func(string) string), new(func(string, string) string)},
		},
		{
			doc: FuncDoc{Name: "trimPrefix", Signature: "trimPrefix(s, prefix string) string",
				Doc:     "s without a leading prefix (a space if prefix is omitted). Replaces the expr-lang builtin to pass null through.",
				Example: `trimPrefix("Local save in /data/post", "Local save in ")`, Result: "/data/post"},
			fn:    trimWith(strings.TrimPrefix),
			types: []any{new(func(string, string) string), new(func(string) string)},
		},
		{
			doc: FuncDoc{Name: "trimSuffix", Signature: "trimSuffix(s, suffix string) string",
				Doc:     "s without a trailing suffix (a space if suffix is omitted). Replaces the expr-lang builtin to pass null through.",
				Example: `trimSuffix("pin.jpg", ".jpg")`, Result: "pin"},
			fn:    trimWith(strings.TrimSuffix),
			types: []any{new(func(string, string) string), new(func(string) string)},
		},
		{
			doc: FuncDoc{Name: "upper", Signature: "upper(s string) string",
				Doc: "s in upper case. Replaces the expr-lang builtin to pass null through.", Example: `upper("diy")`, Result: "DIY"},
			fn:    str1(func(s string) any { return strings.ToUpper(s) }),
			types: []any{new(func(string) string)},
		},
		{
			doc: FuncDoc{Name: "lower", Signature: "lower(s string) string",
				Doc: "s in lower case. Replaces the expr-lang builtin to pass null through.", Example: `lower("DIY")`, Result: "diy"},
			fn:    str1(func(s string) any { return strings.ToLower(s) }),
			types: []any{new(func(string) string)},
		},
		{
			doc: FuncDoc{Name: "replace", Signature: "replace(s, old, new string) string",
				Doc:     "s with every old replaced by new. Replaces the expr-lang builtin to pass null through.",
				Example: `replace("a-b-c", "-", "+")`, Result: "a+b+c"},
			fn: func(args ...any) (any, error) {
				s, ok := args[0].(string)
				if !ok {
					return nil, nil
				}
				o, _ := args[1].(string)
				n, _ := args[2].(string)
				return strings.ReplaceAll(s, o, n), nil
			},
			types: []any{new(func(string, string, string) string)},
		},
		{
			doc: FuncDoc{Name: "regex_match", Signature: "regex_match(s, pattern string) bool",
				Doc:     "Whether s contains a match of the RE2 pattern. Constant patterns are checked and compiled once.",
				Example: `regex_match("pin-123", "[0-9]+$")`, Result: "true"},
			fn: func(args ...any) (any, error) {
				s, ok := args[0].(string)
				if !ok {
					return nil, nil
				}
				p, _ := args[1].(string)
				re, err := l.regexp(p)
				if err != nil {
					return nil, fmt.Errorf("regex_match: bad pattern: %w", err)
				}
				return re.MatchString(s), nil
			},
			types: []any{new(func(string, string) bool)},
		},
		{
			doc: FuncDoc{Name: "regex_replace", Signature: "regex_replace(s, pattern, repl string) string",
				Doc:     "s with every match of the RE2 pattern replaced by repl, where $1 names a group.",
				Example: `regex_replace("follow 12 boards", "[^0-9]", "")`, Result: "12"},
			fn: func(args ...any) (any, error) {
				s, ok := args[0].(string)
				if !ok {
					return nil, nil
				}
				p, _ := args[1].(string)
				r, _ := args[2].(string)
				re, err := l.regexp(p)
				if err != nil {
					return nil, fmt.Errorf("regex_replace: bad pattern: %w", err)
				}
				return re.ReplaceAllString(s, r), nil
			},
			types: []any{new(func(string, string, string) string)},
		},
		{
			doc: FuncDoc{Name: "to_timestamp", Signature: "to_timestamp(s string[, layout string]) timestamp",
				Doc:     `Parses s with the Go layout, or by default as RFC 3339, "2006-01-02 15:04:05" or "2006-01-02" (UTC unless s names a zone). An int or float is taken as Unix seconds.`,
				Example: `to_timestamp("2021-03-04 05:06:07")`, Result: "2021-03-04 05:06:07 +0000 UTC"},
			fn: toTimestamp,
			types: []any{
				new(func(string, ...string) time.Time), new(func(int) time.Time),
				new(func(float64) time.Time), new(func(time.Time) time.Time),
			},
		},
		{
			doc: FuncDoc{Name: "hash", Signature: "hash(s string) int",
				Doc:     "The 64-bit FNV-1a hash of s as a (possibly negative) int; ints hash their decimal text.",
				Example: `hash("a") == hash("a")`, Result: "true"},
			fn: func(args ...any) (any, error) {
				var s string
				switch x := args[0].(type) {
				case string:
					s = x
				case int:
					s = strconv.Itoa(x)
				default:
					return nil, nil
				}
				h := fnv.New64a()
				h.Write([]byte(s))
				return int(h.Sum64()), nil
			},
			types: []any{new(func(string) int), new(func(int) int)},
		},
		{
			doc: FuncDoc{Name: "bucket", Signature: "bucket(s string, n int) int",
				Doc: "Which of n buckets s falls in, 0 to n-1: the 64-bit FNV-1a hash of s, unsigned, mod n (ints hash their decimal text; null stays null). " +
					"`bucket(key, ${SHARD_COUNT}) == ${SHARD_INDEX} - 1` keeps one shard's share of the keys, as flowrun run --shard I/N sets those variables; see docs/schedule.md.",
				Example: `bucket("b", 3)`, Result: "1"},
			fn: func(args ...any) (any, error) {
				var s string
				switch x := args[0].(type) {
				case string:
					s = x
				case int:
					s = strconv.Itoa(x)
				default:
					return nil, nil
				}
				n, _ := args[1].(int)
				if n < 1 {
					return nil, fmt.Errorf("bucket: n must be at least 1, got %d", n)
				}
				h := fnv.New64a()
				h.Write([]byte(s))
				return int(h.Sum64() % uint64(n)), nil
			},
			types: []any{new(func(string, int) int), new(func(int, int) int)},
		},
	}
	casts := []struct {
		name, alias, sig, doc, ex, res string
		fn                             func(any) (any, error)
		typ                            any
	}{
		{"to_bool", "", "to_bool(x) bool", `x as a bool: "1", "true", "t", "yes", "y" (any case) and non-zero numbers are true; "0", "false", "f", "no", "n", "" and zero are false; other text is an error.`, `to_bool("yes")`, "true", toBool, new(func(any) bool)},
		{"to_int", "int", "to_int(x) int", "x as an int: numbers are truncated, text is parsed (decimal, may have a fraction), bools are 0 or 1. Also available as int(x), which replaces the expr-lang builtin to pass null through.", `to_int("42")`, "42", toInt, new(func(any) int)},
		{"to_float", "float", "to_float(x) float64", "x as a float64; text is parsed. Also available as float(x), replacing the expr-lang builtin to pass null through.", `to_float("2.5")`, "2.5", toFloat, new(func(any) float64)},
		{"to_string", "string", "to_string(x) string", "x as text; timestamps as RFC 3339, lists as JSON-like text. Also available as string(x), replacing the expr-lang builtin to pass null through.", `to_string(12)`, "12", toString, new(func(any) string)},
	}
	for _, c := range casts {
		fn := c.fn
		call := func(args ...any) (any, error) {
			if args[0] == nil {
				return nil, nil
			}
			return fn(args[0])
		}
		l.funcs = append(l.funcs, function{doc: FuncDoc{Name: c.name, Signature: c.sig, Doc: c.doc, Example: c.ex, Result: c.res}, fn: call, types: []any{c.typ}})
		if c.alias != "" {
			l.funcs = append(l.funcs, function{doc: FuncDoc{Name: c.alias, Signature: c.alias + strings.TrimPrefix(c.sig, c.name),
				Doc: "Same as " + c.name + "; replaces the expr-lang builtin to pass null through.", Example: c.alias + strings.TrimPrefix(c.ex, c.name), Result: c.res},
				fn: call, types: []any{c.typ}})
		}
	}
	return l
}

func parseCount(s string) (any, error) {
	n, ok, err := parseCountInt(s)
	if err != nil || !ok {
		return nil, err
	}
	return n, nil
}

// parseCountInt is parse_count on text; ok is false for a blank s (null).
func parseCountInt(s string) (int, bool, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, false, nil
	}
	t = strings.ReplaceAll(t, ",", "")
	if t == "" {
		return 0, false, fmt.Errorf("parse_count: cannot parse %q", s)
	}
	mult := int64(1)
	switch t[len(t)-1] {
	case 'k', 'K':
		mult = 1_000
	case 'm', 'M':
		mult = 1_000_000
	case 'b', 'B':
		mult = 1_000_000_000
	}
	if mult != 1 {
		t = strings.TrimSpace(t[:len(t)-1])
	}
	if !isInteger(t) {
		// Skip ParseInt: its error path allocates.
	} else if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n > math.MaxInt64/mult || n < math.MinInt64/mult {
			return 0, false, fmt.Errorf("parse_count: %q is out of range", s)
		}
		return int(n * mult), true, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(t, "xXpPnN_") {
		return 0, false, fmt.Errorf("parse_count: cannot parse %q", s)
	}
	f = math.Round(f * float64(mult))
	if f >= math.MaxInt64 || f <= math.MinInt64 {
		return 0, false, fmt.Errorf("parse_count: %q is out of range", s)
	}
	return int(f), true, nil
}

func isInteger(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"}

func toTimestamp(args ...any) (any, error) {
	switch x := args[0].(type) {
	case time.Time:
		return x.UTC(), nil
	case int:
		return time.Unix(int64(x), 0).UTC(), nil
	case float64:
		sec, frac := math.Modf(x)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	case string:
		s := strings.TrimSpace(x)
		if len(args) > 1 {
			layout, _ := args[1].(string)
			t, err := time.Parse(layout, s)
			if err != nil {
				return nil, fmt.Errorf("to_timestamp: cannot parse %q with layout %q", x, layout)
			}
			return t.UTC(), nil
		}
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, s); err == nil {
				return t.UTC(), nil
			}
		}
		return nil, fmt.Errorf("to_timestamp: cannot parse %q", x)
	}
	return nil, nil
}

func toBool(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int:
		return x != 0, nil
	case float64:
		return x != 0, nil
	case string:
		b, err := strToBool(x)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("to_bool: cannot convert %T", v)
}

func strToBool(x string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(x)) {
	case "1", "true", "t", "yes", "y":
		return true, nil
	case "0", "false", "f", "no", "n", "":
		return false, nil
	}
	return false, fmt.Errorf("to_bool: cannot parse %q", x)
}

func toInt(v any) (any, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case float64:
		n, err := floatToInt(x)
		if err != nil {
			return nil, err
		}
		return n, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		n, err := strToInt(x)
		if err != nil {
			return nil, err
		}
		return n, nil
	case time.Time:
		return int(x.Unix()), nil
	}
	return nil, fmt.Errorf("to_int: cannot convert %T", v)
}

func floatToInt(x float64) (int, error) {
	if math.IsNaN(x) || x >= math.MaxInt64 || x <= math.MinInt64 {
		return 0, fmt.Errorf("to_int: %v is out of range", x)
	}
	return int(x), nil
}

func strToInt(x string) (int, error) {
	s := strings.TrimSpace(x)
	if isInteger(s) {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return int(n), nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return floatToInt(f)
	}
	return 0, fmt.Errorf("to_int: cannot parse %q", x)
}

func strToFloat(x string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
	if err != nil {
		return 0, fmt.Errorf("to_float: cannot parse %q", x)
	}
	return f, nil
}

func toFloat(v any) (any, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int:
		return float64(x), nil
	case bool:
		if x {
			return 1.0, nil
		}
		return 0.0, nil
	case string:
		f, err := strToFloat(x)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	return nil, fmt.Errorf("to_float: cannot convert %T", v)
}

func toString(v any) (any, error) {
	if s, ok := arrowx.Text(v); ok {
		return s, nil
	}
	return fmt.Sprint(v), nil
}

// trimWith makes trimPrefix or trimSuffix: null passes through, and the
// affix defaults to a space when omitted.
func trimWith(trim func(s, affix string) string) func(args ...any) (any, error) {
	return func(args ...any) (any, error) {
		s, ok := args[0].(string)
		if !ok {
			return nil, nil
		}
		affix := " "
		if len(args) == 2 {
			affix, _ = args[1].(string)
		}
		return trim(s, affix), nil
	}
}
