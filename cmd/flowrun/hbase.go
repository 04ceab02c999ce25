package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/operators/hbaseclient"
	hbasesink "github.com/flowrun/flowrun/operators/sink/hbase"
	"github.com/flowrun/flowrun/runtime/op"
)

func newHBaseCmd(reg *op.Registry) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hbase",
		Short: "Read what hbase sinks wrote",
	}
	var (
		sets          []string
		sink          string
		thrift, table string
		prefix        string
		limit         int
	)
	scan := &cobra.Command{
		Use:   "scan [FILE]",
		Short: "Print an HBase table's rows as JSON lines, decoded as an hbase sink encoded them",
		Long: `Scan reads rows through HBase's Thrift2 gateway and prints one JSON object per
row: "row_key" and one key per cell. With a pipeline FILE and --sink, the
table, gateway and column mapping come from that sink, each cell is named by
its input column and decoded from the encoding of docs/hbase.md (integers
8-byte big-endian, ...). Without FILE, give --table (and --thrift); cells are
named family:qualifier and shown as text when they are printable UTF-8,
else as hex.`,
		Example: `  flowrun hbase scan pipelines/pinterest_batch.yaml --sink pinterest --limit 5
  flowrun hbase scan pipelines/pinterest_batch.yaml --sink daily_stats --prefix art
  flowrun hbase scan --table pinterest --thrift 127.0.0.1:9090 --limit 3`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cols map[string]column
			if len(args) == 1 {
				if sink == "" {
					return fmt.Errorf("with a pipeline file, name its hbase sink with --sink")
				}
				res, errs, err := loadPipelineFor(validate.Options{}, args[0], sets, placeholderVars, reg)
				if err != nil {
					return err
				}
				if len(errs) > 0 {
					fmt.Fprint(cmd.ErrOrStderr(), errs.Render())
					return &exitError{code: 1}
				}
				n := res.Lookup(sink)
				if n == nil || n.AST.Section != ast.Sinks || n.AST.Type != "hbase" {
					return fmt.Errorf("%s has no hbase sink named %q", args[0], sink)
				}
				in := types.DeadLetterSchema
				if len(n.Inputs) > 0 {
					in = n.Inputs[0].Output
				}
				cfg, err := hbasesink.ConfigOf(n.Config, in)
				if err != nil {
					return err
				}
				if table == "" {
					table = cfg.Table
				}
				if !cmd.Flags().Changed("thrift") {
					thrift = cfg.Thrift
				}
				cols = map[string]column{}
				for _, c := range cfg.Columns {
					cols[c.Family+":"+c.Qualifier] = column{name: c.Name, enc: hbaseclient.EncodingOf(in.Field(c.Index).Type)}
				}
			}
			if table == "" {
				return fmt.Errorf("name the table: --table, or a pipeline file and --sink")
			}
			return scanTable(cmd.Context(), cmd.OutOrStdout(), thrift, table, []byte(prefix), limit, cols)
		},
	}
	scan.Flags().StringArrayVar(&sets, "set", nil, "override a variable of the pipeline: NAME=VALUE (repeatable)")
	scan.Flags().StringVar(&sink, "sink", "", "the pipeline's hbase sink whose table to read")
	scan.Flags().StringVar(&thrift, "thrift", envOr("HBASE_THRIFT_ADDR", "127.0.0.1:9090"), "Thrift2 gateway host:port")
	scan.Flags().StringVar(&table, "table", "", "table to read (default: the sink's)")
	scan.Flags().StringVar(&prefix, "prefix", "", "only rows whose key starts with this")
	scan.Flags().IntVar(&limit, "limit", 0, "at most this many rows (0: all)")
	cmd.AddCommand(scan)
	return cmd
}

type column struct {
	name string
	enc  hbaseclient.Encoding
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// prefixEnd returns the smallest key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func scanTable(ctx context.Context, w io.Writer, addr, table string, prefix []byte, limit int, cols map[string]column) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := hbaseclient.Dial(ctx, addr, hbaseclient.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	rows, err := c.Scan(ctx, table, prefix, prefixEnd(prefix), limit)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	for _, r := range rows {
		obj := map[string]any{"row_key": text(r.Key)}
		for _, cell := range r.Cells {
			key := string(cell.Family) + ":" + string(cell.Qualifier)
			col, ok := cols[key]
			if !ok {
				obj[key] = text(cell.Value)
				continue
			}
			v, err := hbaseclient.Decode(col.enc, cell.Value)
			if err != nil {
				obj[col.name] = map[string]string{"undecodable": hex.EncodeToString(cell.Value), "error": err.Error()}
				continue
			}
			if t, ok := v.(time.Time); ok {
				v = t.Format(time.RFC3339Nano)
			}
			obj[col.name] = v
		}
		if err := enc.Encode(obj); err != nil {
			return err
		}
	}
	return nil
}

// text shows b as a string when it is printable UTF-8 text, else as
// {"hex": ...} (an 8-byte integer is rarely printable).
func text(b []byte) any {
	if utf8.Valid(b) && strings.IndexFunc(string(b), func(r rune) bool {
		return !unicode.IsPrint(r) && r != '\n' && r != '\t' && r != '\r'
	}) < 0 {
		return string(b)
	}
	return map[string]string{"hex": hex.EncodeToString(b)}
}
