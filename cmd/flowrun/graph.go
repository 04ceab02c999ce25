package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/op"
)

func newGraphCmd(reg *op.Registry) *cobra.Command {
	var (
		sets   []string
		format string
		once   bool
	)
	cmd := &cobra.Command{
		Use:   "graph FILE",
		Short: "Draw a pipeline's node graph as Mermaid or Graphviz dot",
		Long: `Graph validates a pipeline and prints its node graph: one box per node
labelled with its name, operator type and description (if any), an arrow for
each 'from', and a dashed arrow from each node to its dead-letter sink. The
pipeline's name and description are the title. Mermaid output renders
in GitHub and most Markdown viewers; dot output feeds Graphviz.

An invalid pipeline is reported as by 'flowrun validate' and nothing is drawn.`,
		Example: `  flowrun graph pipeline.yaml
  flowrun graph pipeline.yaml --format dot | dot -Tsvg > pipeline.svg`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "mermaid" && format != "dot" {
				return fmt.Errorf("--format %q: want mermaid or dot", format)
			}
			res, errs, err := loadPipelineFor(validate.Options{Once: once}, args[0], sets, nil, reg)
			if err != nil {
				return err
			}
			if len(errs) > 0 {
				fmt.Fprint(cmd.ErrOrStderr(), errs.Render())
				return &exitError{code: 1}
			}
			if format == "dot" {
				writeDot(cmd.OutOrStdout(), res)
			} else {
				writeMermaid(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "mermaid or dot")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "set a variable: NAME=VALUE (repeatable)")
	cmd.Flags().BoolVar(&once, "once", false, "check for a run with --once (unbounded sources stop at their current end)")
	return cmd
}

func writeMermaid(w io.Writer, res *validate.Result) {
	ids := map[*validate.Node]string{}
	for i, n := range res.Nodes {
		ids[n] = "n" + strconv.Itoa(i)
	}
	if title := pipelineTitle(res.Pipeline); title != "" {
		fmt.Fprintf(w, "---\ntitle: %s\n---\n", strconv.Quote(title))
	}
	fmt.Fprintln(w, "flowchart LR")
	for _, n := range res.Nodes {
		label := strings.ReplaceAll(n.Name()+"\n("+n.AST.Type+")", `"`, "#quot;")
		label = strings.ReplaceAll(label, "\n", "<br/>")
		if d := n.AST.Description; d != "" {
			label += "<br/><i>" + strings.ReplaceAll(shorten(d, 60), `"`, "#quot;") + "</i>"
		}
		open, closing := "[", "]"
		switch n.AST.Section {
		case ast.Sources:
			open, closing = "([", "])"
		case ast.Sinks:
			open, closing = "[(", ")]"
		case ast.Windows:
			open, closing = "[[", "]]"
		}
		fmt.Fprintf(w, "  %s%s\"%s\"%s\n", ids[n], open, label, closing)
	}
	for _, n := range res.Nodes {
		for _, in := range n.Inputs {
			fmt.Fprintf(w, "  %s --> %s\n", ids[in], ids[n])
		}
		if n.DeadLetter != nil {
			fmt.Fprintf(w, "  %s -. dead letters .-> %s\n", ids[n], ids[n.DeadLetter])
		}
		if n.Late != nil {
			fmt.Fprintf(w, "  %s -. late .-> %s\n", ids[n], ids[n.Late])
		}
	}
}

func writeDot(w io.Writer, res *validate.Result) {
	fmt.Fprintf(w, "digraph %s {\n  rankdir=LR;\n  node [shape=box];\n", strconv.Quote(res.Pipeline.Name))
	if title := pipelineTitle(res.Pipeline); title != "" {
		fmt.Fprintf(w, "  labelloc=t;\n  label=%s;\n", strconv.Quote(title))
	}
	for _, n := range res.Nodes {
		shape := "box"
		switch n.AST.Section {
		case ast.Sources:
			shape = "invhouse"
		case ast.Sinks:
			shape = "cylinder"
		case ast.Windows:
			shape = "box3d"
		}
		tooltip := ""
		if d := n.AST.Description; d != "" {
			tooltip = ", tooltip=" + strconv.Quote(d)
		}
		fmt.Fprintf(w, "  %s [label=%s, shape=%s%s];\n", strconv.Quote(n.Name()), strconv.Quote(n.Name()+"\n("+n.AST.Type+")"), shape, tooltip)
	}
	for _, n := range res.Nodes {
		for _, in := range n.Inputs {
			fmt.Fprintf(w, "  %s -> %s;\n", strconv.Quote(in.Name()), strconv.Quote(n.Name()))
		}
		if n.DeadLetter != nil {
			fmt.Fprintf(w, "  %s -> %s [style=dashed, label=\"dead letters\"];\n", strconv.Quote(n.Name()), strconv.Quote(n.DeadLetter.Name()))
		}
		if n.Late != nil {
			fmt.Fprintf(w, "  %s -> %s [style=dashed, label=\"late\"];\n", strconv.Quote(n.Name()), strconv.Quote(n.Late.Name()))
		}
	}
	fmt.Fprintln(w, "}")
}

// pipelineTitle is "name: description", either part when only one is set.
func pipelineTitle(p *ast.Pipeline) string {
	switch {
	case p.Name != "" && p.Description != "":
		return p.Name + ": " + p.Description
	case p.Name != "":
		return p.Name
	}
	return p.Description
}

// shorten cuts s to at most n characters, marking the cut with "…".
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
