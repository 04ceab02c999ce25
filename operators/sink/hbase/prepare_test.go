package hbase

import (
	"flag"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/flowrun/flowrun/dsl/source"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/validate"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func prepareText(t *testing.T, text string) (Config, source.Errors) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	f := source.NewFile("p.yaml", []byte(text))
	var errs source.Errors
	v := spec.Decode(f, doc.Content[0], Plugin.Spec.Config, &errs)
	cfg := decode(&validate.Check{Config: v, Errs: &errs, Inputs: []validate.Input{{Name: "in", Schema: schema}}})
	return cfg, errs
}

// TestPrepare checks the config decoding, and the messages of bad configs
// verbatim against testdata/prepare.golden (-update rewrites it).
func TestPrepare(t *testing.T) {
	cfg, errs := prepareText(t, `{table: "ns:posts", row_key: 'id + "|" + title', columns: {title: t, followers: "n:f"}, family: x, batch_rows: 10}`)
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	var cols []string
	for _, c := range cfg.Columns {
		cols = append(cols, c.Name+"→"+c.Family+":"+c.Qualifier)
	}
	if got := strings.Join(cols, " "); got != "title→t:title followers→n:f id→x:id score→x:score ok→x:ok at→x:at tags→x:tags note→x:note" ||
		cfg.Table != "ns:posts" || cfg.BatchRows != 10 || cfg.Thrift != "127.0.0.1:9090" || strings.Join(cfg.Families(), ",") != "t,n,x" {
		t.Fatalf("config %+v, columns %s", cfg, got)
	}
	var out strings.Builder
	for _, bad := range []string{
		`{table: posts}`,
		`{table: "bad/name", row_key: id, columns: {title: t}}`,
		`{table: posts, row_key: idd, columns: {titel: t, id: "9 9:q"}}`,
		`{table: posts, row_key: id}`,
		`{thrift: localhost, table: posts, row_key: id, family: d, batch_rows: 0, max_in_flight: 0, retries: -1}`,
	} {
		_, errs := prepareText(t, bad)
		out.WriteString("# " + bad + "\n" + errs.Render() + "\n")
	}
	golden := "testdata/prepare.golden"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if out.String() != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
