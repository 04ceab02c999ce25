// Command benthos is Benthos v4 core (pure and io components only), built
// from its own Go module so that the benchmark does not pull Benthos's
// dependencies into flowrun's go.mod.
package main

import (
	"context"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
