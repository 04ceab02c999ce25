package validate

import (
	"strings"

	"github.com/flowrun/flowrun/dsl/parse"
	"github.com/flowrun/flowrun/dsl/source"
)

// Load parses and validates one pipeline file, returning every error of
// both steps sorted. The Result is nil when the file is not valid YAML.
// Errors that validation reports about a scalar holding an undefined
// variable are dropped: they follow from the missing value.
func Load(name string, text []byte, lookup func(string) (string, bool), cat Catalog) (*Result, source.Errors) {
	return Options{}.Load(name, text, lookup, cat)
}

// Load is the function Load for a run with options o.
func (o Options) Load(name string, text []byte, lookup func(string) (string, bool), cat Catalog) (*Result, source.Errors) {
	p, errs := parse.Parse(name, text, lookup)
	if p == nil {
		return nil, errs
	}
	res, verrs := o.Validate(p, cat)
	var undefined []*source.Error
	for _, e := range errs {
		if e.Code == "undefined-var" || e.Code == "var" {
			undefined = append(undefined, e)
		}
	}
	for _, e := range verrs {
		if !followsFromVar(e, undefined) {
			errs = append(errs, e)
		}
	}
	errs.Sort()
	return res, errs
}

// followsFromVar reports whether e is about the scalar that holds one of
// the undefined variables: same line, starting at or just before the '$'
// with no space in between.
func followsFromVar(e *source.Error, vars []*source.Error) bool {
	for _, v := range vars {
		if e.Pos.Line != v.Pos.Line || e.Pos.Column > v.Pos.Column {
			continue
		}
		line := []rune(e.Pos.File.Line(e.Pos.Line))
		from, to := e.Pos.Column-1, v.Pos.Column-1
		if from < 0 || to > len(line) {
			continue
		}
		if !strings.ContainsAny(string(line[from:to]), " \t") {
			return true
		}
	}
	return false
}
