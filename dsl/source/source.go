// Package source owns positions in pipeline files and the error type that
// renders them as file:line:col with the offending line and a caret. It is
// the leaf every other dsl package reports through.
package source

import (
	"fmt"
	"sort"
	"strings"
)

// File is one pipeline file's name and text, kept so errors can quote lines.
type File struct {
	Name  string
	Text  []byte
	lines []string
}

// NewFile wraps a file's contents.
func NewFile(name string, text []byte) *File {
	return &File{Name: name, Text: text}
}

// Line returns the 1-based line n without its newline, or "" when out of range.
func (f *File) Line(n int) string {
	if f == nil {
		return ""
	}
	if f.lines == nil {
		f.lines = strings.Split(strings.ReplaceAll(string(f.Text), "\r\n", "\n"), "\n")
	}
	if n < 1 || n > len(f.lines) {
		return ""
	}
	return f.lines[n-1]
}

// Pos is a 1-based line and column inside a File. The zero Pos means unknown.
type Pos struct {
	File   *File
	Line   int
	Column int
}

// IsValid reports whether p points somewhere.
func (p Pos) IsValid() bool { return p.Line > 0 }

// Shift returns p moved by n columns on the same line; used to point inside
// a scalar, such as at an offset within an expression.
func (p Pos) Shift(n int) Pos {
	p.Column += n
	return p
}

func (p Pos) String() string {
	name := "<input>"
	if p.File != nil && p.File.Name != "" {
		name = p.File.Name
	}
	if !p.IsValid() {
		return name
	}
	return fmt.Sprintf("%s:%d:%d", name, p.Line, p.Column)
}

// Error is one problem found in a pipeline file.
type Error struct {
	Pos  Pos
	Msg  string
	Hint string // optional suggestion, e.g. "did you mean 'clean'?"
	// Code is a short stable identifier ("unknown-key", "type") for machines.
	Code string
}

func (e *Error) Error() string {
	s := e.Pos.String() + ": " + e.Msg
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Render returns the error with the offending line and a caret beneath the
// column, the form printed by `flowrun validate`.
func (e *Error) Render() string {
	var b strings.Builder
	b.WriteString(e.Error())
	b.WriteByte('\n')
	if line := e.Pos.File.Line(e.Pos.Line); e.Pos.IsValid() && line != "" {
		line = strings.ReplaceAll(line, "\t", " ")
		b.WriteString("    ")
		b.WriteString(line)
		b.WriteByte('\n')
		col := e.Pos.Column
		if col < 1 {
			col = 1
		}
		// Columns count runes so the caret lines up under non-ASCII text.
		pad := len([]rune(safePrefix(line, col-1)))
		b.WriteString("    ")
		b.WriteString(strings.Repeat(" ", pad))
		b.WriteString("^\n")
	}
	return b.String()
}

func safePrefix(line string, n int) string {
	r := []rune(line)
	if n > len(r) {
		n = len(r)
	}
	return string(r[:n])
}

// Errors is a list of problems, collected rather than stopping at the first.
type Errors []*Error

// Add appends an error at pos.
func (l *Errors) Add(pos Pos, format string, args ...any) *Error {
	e := &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
	*l = append(*l, e)
	return e
}

// Append adds other errors to l.
func (l *Errors) Append(other Errors) { *l = append(*l, other...) }

// Sort orders errors by file, line and column, dropping exact duplicates.
func (l *Errors) Sort() {
	s := *l
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i].Pos, s[j].Pos
		an, bn := "", ""
		if a.File != nil {
			an = a.File.Name
		}
		if b.File != nil {
			bn = b.File.Name
		}
		if an != bn {
			return an < bn
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	out := s[:0]
	for i, e := range s {
		if i > 0 && e.Error() == s[i-1].Error() {
			continue
		}
		out = append(out, e)
	}
	*l = out
}

// Err returns l as an error, or nil when empty.
func (l Errors) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func (l Errors) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Render renders every error with its source line and caret.
func (l Errors) Render() string {
	var b strings.Builder
	for _, e := range l {
		b.WriteString(e.Render())
	}
	return b.String()
}

// Suggest returns the candidate closest to name by edit distance, or "" when
// none is close enough to be a plausible typo.
func Suggest(name string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := distance(strings.ToLower(name), strings.ToLower(c))
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := len(name)/3 + 1
	if limit > 3 {
		limit = 3
	}
	if best == "" || bestD > limit {
		return ""
	}
	return best
}

// DidYouMean formats a suggestion hint, or "" when there is none.
func DidYouMean(name string, candidates []string) string {
	if s := Suggest(name, candidates); s != "" {
		return fmt.Sprintf("did you mean '%s'?", s)
	}
	return ""
}

func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Optimal string alignment: edits plus adjacent transpositions
	// ("clena" is one edit from "clean").
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
