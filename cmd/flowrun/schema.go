package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/flowrun/flowrun/dsl/jsonschema"
	"github.com/flowrun/flowrun/dsl/testfile"
	"github.com/flowrun/flowrun/runtime/op"
)

func newSchemaCmd(reg *op.Registry) *cobra.Command {
	var tests bool
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of pipeline files",
		Long: `Schema prints a JSON Schema (draft 2020-12) of the pipeline language,
generated from the specs of every built-in operator: their keys, types,
defaults, allowed values and docs. Point your editor's YAML language server
at it to get completion and checking while you write pipelines.`,
		Example: `  flowrun schema > flowrun.schema.json
  # then, first line of a pipeline file, for the YAML language server:
  # yaml-language-server: $schema=./flowrun.schema.json
  flowrun schema --tests > flowrun.test.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tests {
				b, err := json.MarshalIndent(testfile.FileSchema(), "", "  ")
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(append(b, '\n'))
				return err
			}
			b, err := jsonschema.Generate(reg)
			if err != nil {
				return err
			}
			b = append(b, '\n')
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().BoolVar(&tests, "tests", false, "print the JSON Schema of NAME.test.yaml files instead")
	return cmd
}
