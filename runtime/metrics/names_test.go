package metrics

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instrument matches an instrument created with a literal flowrun_ name:
// .Counter("flowrun_x", ...), .Gauge(...), .Histogram(...).
var instrument = regexp.MustCompile(`\.(Counter|Gauge|Histogram)\(\s*"(flowrun_[a-z0-9_]+)"`)

// TestEveryInstrumentIsCatalogued scans the shipped Go code: every metric an
// operator or the runtime creates is in Catalog with the same type, so the
// docs, the dashboard and the alerts can rely on the catalogue.
func TestEveryInstrumentIsCatalogued(t *testing.T) {
	seen := 0
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "../.." || d.Name() == "testdata" || d.Name() == "bench") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range instrument.FindAllStringSubmatch(string(b), -1) {
			seen++
			f, ok := Lookup(m[2])
			switch {
			case !ok:
				t.Errorf("%s creates %s, which is not in metrics.Catalog (add it, and to docs/metrics.md)", path, m[2])
			case !strings.EqualFold(f.Type, m[1]):
				t.Errorf("%s creates %s as a %s; the catalogue says %s", path, m[2], strings.ToLower(m[1]), f.Type)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 10 {
		t.Fatalf("found only %d instruments: is the scan looking in the right place?", seen)
	}
}
