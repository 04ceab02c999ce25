// Command rsschild runs the http source alone, acknowledging every batch at
// once, for the RSS test of package httpsrc (a process of its own, built
// without the race detector, so its memory is the source's). It prints
// "ADDR host:port" and serves until its standard input closes.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	httpsrc "github.com/flowrun/flowrun/operators/source/http"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

type discard struct{ schema *arrow.Schema }

func (o discard) Schema() *arrow.Schema                       { return o.schema }
func (o discard) Reject(string, string) error                 { return nil }
func (o discard) Emit(_ context.Context, b batch.Batch) error { b.Release(nil); return nil }

func main() {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "unique_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "title", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	src, err := httpsrc.New(httpsrc.Config{Listen: "127.0.0.1:0", Schema: schema, Stamp: httpsrc.DefaultStamp, ReadTimeout: time.Minute},
		op.Resources{Node: "in", Alloc: memory.DefaultAllocator})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, discard{src.Schema()}) }()
	<-src.Ready()
	fmt.Printf("ADDR %s\n", src.Addr())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
