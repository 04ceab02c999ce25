// Package all imports every built-in operator so that its init function
// registers it. Adding an operator is one folder plus one line here.
package all

import (
	_ "github.com/flowrun/flowrun/operators/sink/discard"
	_ "github.com/flowrun/flowrun/operators/sink/file"
	_ "github.com/flowrun/flowrun/operators/sink/hbase"
	_ "github.com/flowrun/flowrun/operators/sink/kafka"
	_ "github.com/flowrun/flowrun/operators/sink/lake"
	_ "github.com/flowrun/flowrun/operators/sink/postgres"
	_ "github.com/flowrun/flowrun/operators/sink/stdout"
	_ "github.com/flowrun/flowrun/operators/source/file"
	_ "github.com/flowrun/flowrun/operators/source/generate"
	_ "github.com/flowrun/flowrun/operators/source/http"
	_ "github.com/flowrun/flowrun/operators/source/kafka"
	_ "github.com/flowrun/flowrun/operators/source/lake"
	_ "github.com/flowrun/flowrun/operators/transform/aggregate"
	_ "github.com/flowrun/flowrun/operators/transform/cast"
	_ "github.com/flowrun/flowrun/operators/transform/dedupe"
	_ "github.com/flowrun/flowrun/operators/transform/drop"
	_ "github.com/flowrun/flowrun/operators/transform/explode"
	_ "github.com/flowrun/flowrun/operators/transform/filter"
	_ "github.com/flowrun/flowrun/operators/transform/map"
	_ "github.com/flowrun/flowrun/operators/transform/rename"
	_ "github.com/flowrun/flowrun/operators/transform/require"
	_ "github.com/flowrun/flowrun/operators/transform/select"
	_ "github.com/flowrun/flowrun/operators/window/session"
	_ "github.com/flowrun/flowrun/operators/window/sliding"
	_ "github.com/flowrun/flowrun/operators/window/tumbling"
)
