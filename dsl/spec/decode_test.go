package spec

import (
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/source"
)

var testSpec = Obj(
	F("path", String, "where").Req(),
	F("format", Enum, "how").OneOf("json", "csv").Def("json"),
	F("every", Duration, "how often").Def(time.Second),
	F("limit", Int, "max"),
	F("size", Size, "bytes").Def(int64(1024)),
	F("columns", StringList, "cols"),
	F("when", Expr, "filter"),
	F("nested", Object, "n"),
)

func init() {
	testSpec.Field("nested").Fields = []*Field{F("on", Bool, "switch").Def(true)}
}

func decode(t *testing.T, text string) (*Value, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	var errs source.Errors
	f := source.NewFile("t.yaml", []byte(text))
	v := Decode(f, doc.Content[0], testSpec, &errs)
	return v, errs
}

func TestDecodeValuesAndDefaults(t *testing.T) {
	v, errs := decode(t, "path: /x\nevery: 1d2h\nlimit: 7\nsize: 2MiB\ncolumns: a\nwhen: a > 1\n")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if v.String("path") != "/x" || v.String("format") != "json" || v.Duration("every") != 26*time.Hour ||
		v.Int64("limit") != 7 || v.Int64("size") != 2<<20 || len(v.Strings("columns")) != 1 {
		t.Fatalf("decoded %+v", v)
	}
	if e := v.Get("when").Expr; e.Src != "a > 1" || e.Pos.Line != 6 || e.Pos.Column != 7 {
		t.Fatalf("expr %+v", e)
	}
	if !v.Get("nested").Boolean("on") || v.Has("format") || !v.Has("path") {
		t.Fatal("nested default or Has wrong")
	}
}

func TestDecodeErrorsAllAtOnce(t *testing.T) {
	_, errs := decode(t, "pth: /x\nformat: xml\nevery: soon\nlimit: many\nnested: 3\n")
	want := []string{
		"t.yaml:1:1: unknown key 'pth' in this block (did you mean 'path'?)",
		"t.yaml:1:1: missing required key 'path'",
		"t.yaml:2:9: 'format' must be one of json, csv, not \"xml\"",
		"t.yaml:3:8: 'every': bad duration \"soon\": write a number and a unit, e.g. 500ms, 30s, 1m, 2h, 1d",
		"t.yaml:4:8: 'limit' must be an integer, not \"many\"",
		"t.yaml:5:9: 'nested' must be a mapping, not \"3\"",
	}
	errs.Sort()
	if len(errs) != len(want) {
		t.Fatalf("got %d errors:\n%s", len(errs), errs.Error())
	}
	for i := range want {
		if errs[i].Error() != want[i] {
			t.Errorf("error %d:\n got %s\nwant %s", i, errs[i].Error(), want[i])
		}
	}
}

func TestParseSizeAndDuration(t *testing.T) {
	for in, want := range map[string]int64{"10": 10, "1KB": 1000, "1 KiB": 1024, "3MiB": 3 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-1s", "1x", "d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("path: /x\nevery: 1m\n")
	f.Add("nested: {on: maybe}\ncolumns: [a, [b]]\n")
	f.Add("- 1\n- 2\n")
	f.Fuzz(func(t *testing.T, text string) {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(text), &doc) != nil || len(doc.Content) == 0 {
			return
		}
		var errs source.Errors
		Decode(source.NewFile("f.yaml", []byte(text)), doc.Content[0], testSpec, &errs)
		for _, e := range errs {
			if e.Pos.Line < 0 || e.Msg == "" {
				t.Fatalf("bad error %+v", e)
			}
		}
	})
}
