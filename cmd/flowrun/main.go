// Command flowrun validates, runs and inspects flowrun pipelines. It is the
// only place that knows the full set of operators (through operators/all).
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/flowrun/flowrun/runtime/op"

	_ "github.com/flowrun/flowrun/operators/all"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	root := newRootCmd(op.Default)
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "flowrun:", err)
		os.Exit(1)
	}
}

func newRootCmd(reg *op.Registry) *cobra.Command {
	root := &cobra.Command{
		Use:   "flowrun",
		Short: "Typed, checked dataflow pipelines over Apache Arrow",
		Long: `flowrun runs declarative YAML pipelines of sources, expression-based
transforms, windows and sinks as a DAG of goroutines passing Arrow batches.`,
		Example: `  flowrun validate pipelines/*.yaml
  flowrun run examples/pinterest_local.yaml
  flowrun graph examples/pinterest_local.yaml --format mermaid`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newValidateCmd(reg),
		newRunCmd(reg),
		newScheduleCmd(reg),
		newRunsCmd(),
		newHBaseCmd(reg),
		newGraphCmd(reg),
		newSchemaCmd(reg),
		newTestCmd(reg),
		newEmulateCmd(),
		newVersionCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print flowrun's version",
		Example: "  flowrun version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version
			if info, ok := debug.ReadBuildInfo(); ok && v == "dev" {
				for _, s := range info.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						v = "dev-" + s.Value[:12]
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "flowrun %s (%s)\n", v, info.GoVersion)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "flowrun %s\n", v)
			return nil
		},
	}
}
