// Package types owns the column type names a pipeline file may write
// ("int64", "list<string>", "timestamp") and their Arrow equivalents, plus
// the fixed schema of dead-letter records.
package types

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// Timestamp is the one timestamp type flowrun uses: microseconds, UTC.
var Timestamp = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

var scalars = map[string]arrow.DataType{
	"string":    arrow.BinaryTypes.String,
	"int64":     arrow.PrimitiveTypes.Int64,
	"int":       arrow.PrimitiveTypes.Int64,
	"int32":     arrow.PrimitiveTypes.Int32,
	"float64":   arrow.PrimitiveTypes.Float64,
	"float":     arrow.PrimitiveTypes.Float64,
	"bool":      arrow.FixedWidthTypes.Boolean,
	"timestamp": Timestamp,
	"binary":    arrow.BinaryTypes.Binary,
}

// Names lists the scalar type names accepted by Parse, for suggestions.
func Names() []string {
	return []string{"string", "int64", "int32", "float64", "bool", "timestamp", "binary", "list<string>", "list<int64>", "list<float64>"}
}

// Parse turns a type name such as "int64" or "list<string>" into an Arrow type.
func Parse(name string) (arrow.DataType, error) {
	n := strings.TrimSpace(strings.ToLower(name))
	if t, ok := scalars[n]; ok {
		return t, nil
	}
	if strings.HasPrefix(n, "list<") && strings.HasSuffix(n, ">") {
		elem, err := Parse(n[5 : len(n)-1])
		if err != nil {
			return nil, err
		}
		return arrow.ListOf(elem), nil
	}
	return nil, fmt.Errorf("unknown type %q", name)
}

// Name is the inverse of Parse, used in messages and generated docs.
func Name(t arrow.DataType) string {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING:
		return "string"
	case arrow.INT64:
		return "int64"
	case arrow.INT32:
		return "int32"
	case arrow.FLOAT64:
		return "float64"
	case arrow.BOOL:
		return "bool"
	case arrow.TIMESTAMP:
		return "timestamp"
	case arrow.BINARY:
		return "binary"
	case arrow.LIST:
		return "list<" + Name(t.(*arrow.ListType).Elem()) + ">"
	}
	return t.String()
}

// Dead-letter columns: the rejected record as text (JSON for rows), the node
// that rejected it, why, and when.
const (
	DeadRecord = "record"
	DeadNode   = "node"
	DeadReason = "reason"
	DeadTime   = "time"
)

// DeadLetterSchema is the schema every dead-letter output receives.
var DeadLetterSchema = arrow.NewSchema([]arrow.Field{
	{Name: DeadRecord, Type: arrow.BinaryTypes.String},
	{Name: DeadNode, Type: arrow.BinaryTypes.String},
	{Name: DeadReason, Type: arrow.BinaryTypes.String},
	{Name: DeadTime, Type: Timestamp},
}, nil)
