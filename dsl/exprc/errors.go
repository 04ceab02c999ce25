package exprc

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/expr-lang/expr/file"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
)

// mapError turns an expr-lang compile error into a pipeline-file error at
// the offending character, rewording unknown names as unknown columns or
// functions with a suggestion.
func mapError(src spec.ExprSrc, err error, cols, funcs []string) *source.Error {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return &source.Error{Pos: src.Pos, Msg: err.Error(), Code: "expr"}
	}
	if fe.Line == 0 {
		fe.Bind(file.NewSource(src.Src))
	}
	e := &source.Error{Pos: posAt(src, fe.Line, fe.Column), Msg: fe.Message, Code: "expr"}
	if name, ok := strings.CutPrefix(fe.Message, "unknown name "); ok {
		if isCall(src.Src, fe.From) {
			e.Msg = fmt.Sprintf("unknown function '%s'", name)
			e.Hint = source.DidYouMean(name, funcs)
			e.Code = "unknown-function"
		} else {
			e.Msg = fmt.Sprintf("unknown column '%s'", name)
			e.Hint = source.DidYouMean(name, cols)
			e.Code = "unknown-column"
		}
	}
	if m := badArg.FindStringSubmatch(fe.Message); m != nil {
		if sig := signature(m[2]); sig != "" {
			e.Msg = fmt.Sprintf("cannot use %s as argument to %s", m[1], sig)
		}
	}
	e.Msg = strings.TrimSpace(e.Msg)
	return e
}

var badArg = regexp.MustCompile(`^cannot use (.+) as argument \(type .+\) to call (\w+)\s*$`)

// signature is the documented signature of one of this package's functions.
func signature(name string) string {
	for _, d := range Docs() {
		if d.Name == name {
			return d.Signature
		}
	}
	return ""
}

// isCall reports whether the identifier starting at rune offset from is
// followed by an opening parenthesis.
func isCall(src string, from int) bool {
	r := []rune(src)
	i := from
	for i < len(r) && (r[i] == '_' || r[i] == '$' || unicode.IsLetter(r[i]) || unicode.IsDigit(r[i])) {
		i++
	}
	for i < len(r) && unicode.IsSpace(r[i]) {
		i++
	}
	return i < len(r) && r[i] == '('
}

// posAt maps a 1-based line and 0-based rune column inside the expression
// to a position in the pipeline file. The first line is offset from the
// expression's start (plus one for an opening quote); later lines, which
// only block scalars have, start at the block's indentation.
func posAt(src spec.ExprSrc, line, col int) source.Pos {
	if line < 1 {
		line = 1
	}
	if !src.Pos.IsValid() {
		return source.Pos{File: src.Pos.File, Line: line, Column: col + 1}
	}
	if line == 1 {
		if src.Quoted {
			col++
		}
		return src.Pos.Shift(col)
	}
	return source.Pos{File: src.Pos.File, Line: src.Pos.Line + line - 1, Column: src.Pos.Column + col}
}

// posOf maps a rune offset inside the expression to the pipeline file.
func posOf(src spec.ExprSrc, offset int) source.Pos {
	line, col := 1, 0
	for i, r := range []rune(src.Src) {
		if i == offset {
			break
		}
		if r == '\n' {
			line++
			col = 0
		} else {
			col++
		}
	}
	return posAt(src, line, col)
}

// EvalError is a failure while evaluating an expression on one row.
type EvalError struct {
	Expr string     // the expression's source text
	Pos  source.Pos // where the expression starts in the pipeline file
	Msg  string     // what went wrong
	Err  error      // the underlying error, if any
}

func (e *EvalError) Error() string {
	s := fmt.Sprintf("expression %q: %s", e.Expr, e.Msg)
	if e.Pos.IsValid() {
		s = e.Pos.String() + ": " + s
	}
	return s
}

func (e *EvalError) Unwrap() error { return e.Err }

func evalError(p *Program, err error) error {
	e := &EvalError{Expr: p.src.Src, Pos: p.src.Pos, Msg: err.Error(), Err: err}
	var fe *file.Error
	if errors.As(err, &fe) {
		e.Msg = fe.Message
		const null = "a null value reached an operation that needs a value (give a default with ?? or coalesce)"
		switch {
		case strings.Contains(e.Msg, "interface {} is nil"):
			// A typed operator (==, >, *, ...) met a null.
			e.Msg = null
		case strings.HasPrefix(e.Msg, "invalid operation: ") && strings.Contains(e.Msg, "<nil>"):
			e.Msg = null + ": " + e.Msg
		}
		if fe.Prev != nil {
			e.Err = fe.Prev
		}
	}
	return e
}
