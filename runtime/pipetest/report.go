package pipetest

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/flowrun/flowrun/dsl/source"
)

// Summary counts outcomes over many files.
type Summary struct {
	Files, Passed, Failed, Invalid int
}

// WriteText prints one file's results the way a person reads them: a line
// per test, and for a failure the difference per sink with row numbers and
// the positions of expected rows.
func WriteText(w io.Writer, r *FileResult, verbose bool, sum *Summary) {
	sum.Files++
	if len(r.Errors) > 0 {
		sum.Invalid++
		fmt.Fprintf(w, "FAIL %s: the test file or its pipeline is invalid\n", r.Path)
		for _, e := range r.Errors {
			fmt.Fprint(w, indent(e.Render(), "    "))
		}
		return
	}
	for _, t := range r.Tests {
		if !t.Failed() {
			sum.Passed++
			if verbose {
				fmt.Fprintf(w, "ok   %s: %s (%s)\n", t.Pos, t.Name, t.Elapsed.Round(time.Microsecond))
			}
			continue
		}
		sum.Failed++
		fmt.Fprintf(w, "FAIL %s: %s (%s)\n", t.Pos, t.Name, t.Elapsed.Round(time.Microsecond))
		for _, e := range t.Problems {
			fmt.Fprint(w, indent(e.Render(), "    "))
		}
		if t.Err != nil {
			fmt.Fprintf(w, "    the pipeline failed: %s\n", indent(t.Err.Error(), "    ")[4:])
		}
		for _, d := range t.Diffs {
			fmt.Fprintf(w, "    sink %s (%s): expected %s, got %d\n", d.Sink, d.Pos, rows(d.Want), d.Got)
			for _, m := range d.Missing {
				fmt.Fprintf(w, "      - expected row %d (%s:%d), not produced: %s\n", m.N, fileName(m.Pos), m.Pos.Line, m.Text)
			}
			for _, u := range d.Unexpected {
				fmt.Fprintf(w, "      + got row %d, not expected:           %s\n", u.N, u.Text)
			}
		}
	}
	if r.Updated {
		fmt.Fprintf(w, "updated %s: review the new expectations before committing\n", r.Path)
	}
}

// WriteGitHub prints GitHub Actions workflow annotations, one per problem,
// so failures show on the lines of the pull request.
func WriteGitHub(w io.Writer, r *FileResult, sum *Summary) {
	sum.Files++
	if len(r.Errors) > 0 {
		sum.Invalid++
		for _, e := range r.Errors {
			annotate(w, e.Pos, "flowrun test", e.Error())
		}
		return
	}
	for _, t := range r.Tests {
		if !t.Failed() {
			sum.Passed++
			continue
		}
		sum.Failed++
		for _, e := range t.Problems {
			annotate(w, e.Pos, "flowrun test: "+t.Name, e.Msg)
		}
		if t.Err != nil {
			annotate(w, t.Pos, "flowrun test: "+t.Name, "the pipeline failed: "+t.Err.Error())
		}
		for _, d := range t.Diffs {
			var b strings.Builder
			fmt.Fprintf(&b, "sink %s: expected %s, got %d", d.Sink, rows(d.Want), d.Got)
			for _, m := range d.Missing {
				fmt.Fprintf(&b, "\n- expected row %d (line %d), not produced: %s", m.N, m.Pos.Line, m.Text)
			}
			for _, u := range d.Unexpected {
				fmt.Fprintf(&b, "\n+ got row %d, not expected: %s", u.N, u.Text)
			}
			annotate(w, d.Pos, "flowrun test: "+t.Name, b.String())
		}
	}
}

func annotate(w io.Writer, p source.Pos, title, msg string) {
	esc := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	prop := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C")
	fmt.Fprintf(w, "::error file=%s,line=%d,col=%d,title=%s::%s\n", prop.Replace(fileName(p)), p.Line, p.Column, prop.Replace(title), esc.Replace(msg))
}

func fileName(p source.Pos) string {
	if p.File == nil {
		return ""
	}
	return p.File.Name
}

func indent(s, pre string) string {
	s = strings.TrimRight(s, "\n")
	return pre + strings.ReplaceAll(s, "\n", "\n"+pre) + "\n"
}

func rows(n int) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}
