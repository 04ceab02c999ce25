package validate

import (
	"github.com/flowrun/flowrun/dsl/parse"
	"github.com/flowrun/flowrun/dsl/source"
)

// Load parses and validates one pipeline file, returning every error of
// both steps sorted. The Result is nil when the file is not valid YAML.
// Errors that validation reports on the same line as an undefined
// variable are dropped: they follow from the missing value.
func Load(name string, text []byte, lookup func(string) (string, bool), cat Catalog) (*Result, source.Errors) {
	p, errs := parse.Parse(name, text, lookup)
	if p == nil {
		return nil, errs
	}
	res, verrs := Validate(p, cat)
	undefined := map[int]bool{}
	for _, e := range errs {
		if e.Code == "undefined-var" || e.Code == "var" {
			undefined[e.Pos.Line] = true
		}
	}
	for _, e := range verrs {
		if !undefined[e.Pos.Line] {
			errs = append(errs, e)
		}
	}
	errs.Sort()
	return res, errs
}
