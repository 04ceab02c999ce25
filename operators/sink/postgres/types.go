package postgres

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/types"
)

// kind is how one Arrow column is read into a value pgx can encode.
type kind int

const (
	kInt64 kind = iota
	kInt32
	kInt16
	kFloat64
	kFloat32
	kBool
	kString
	kLargeString
	kBinary
	kTimestamp
	kDate
	kListString
	kListInt64
	kListFloat64
	kListBool
)

// mapping is one row of the documented type mapping.
type mapping struct {
	kind kind
	// create is the SQL type `create: true` uses.
	create string
	// accept lists the pg_type names an existing column may have.
	accept []string
}

// mapOf returns how an Arrow type is written, or ok=false when the sink
// cannot write it.
func mapOf(t arrow.DataType) (mapping, bool) {
	switch t.ID() {
	case arrow.INT64:
		return mapping{kInt64, "bigint", []string{"int8", "numeric"}}, true
	case arrow.INT32:
		return mapping{kInt32, "integer", []string{"int4", "int8", "numeric"}}, true
	case arrow.INT16:
		return mapping{kInt16, "smallint", []string{"int2", "int4", "int8", "numeric"}}, true
	case arrow.FLOAT64:
		return mapping{kFloat64, "double precision", []string{"float8", "numeric"}}, true
	case arrow.FLOAT32:
		return mapping{kFloat32, "real", []string{"float4", "float8", "numeric"}}, true
	case arrow.BOOL:
		return mapping{kBool, "boolean", []string{"bool"}}, true
	case arrow.STRING:
		return mapping{kString, "text", stringTypes}, true
	case arrow.LARGE_STRING:
		return mapping{kLargeString, "text", stringTypes}, true
	case arrow.BINARY:
		return mapping{kBinary, "bytea", []string{"bytea"}}, true
	case arrow.TIMESTAMP:
		return mapping{kTimestamp, "timestamptz", []string{"timestamptz", "timestamp"}}, true
	case arrow.DATE32:
		return mapping{kDate, "date", []string{"date"}}, true
	case arrow.LIST:
		switch t.(*arrow.ListType).Elem().ID() {
		case arrow.STRING:
			return mapping{kListString, "text[]", []string{"_text", "_varchar"}}, true
		case arrow.INT64:
			return mapping{kListInt64, "bigint[]", []string{"_int8", "_numeric"}}, true
		case arrow.FLOAT64:
			return mapping{kListFloat64, "double precision[]", []string{"_float8", "_numeric"}}, true
		case arrow.BOOL:
			return mapping{kListBool, "boolean[]", []string{"_bool"}}, true
		}
	}
	return mapping{}, false
}

// stringTypes are the SQL types a string column may fill; PostgreSQL (or
// pgx, for uuid) parses the text, and a value it refuses is a bad row.
var stringTypes = []string{"text", "varchar", "bpchar", "uuid", "json", "jsonb", "citext", "name"}

// TypeMapping is the documented table of Arrow column types and the SQL
// types the sink creates and accepts, in the order of the docs.
func TypeMapping() [][3]string {
	var rows [][3]string
	for _, t := range []arrow.DataType{
		arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Float64,
		arrow.BinaryTypes.String, arrow.FixedWidthTypes.Boolean, types.Timestamp, arrow.BinaryTypes.Binary,
		arrow.ListOf(arrow.BinaryTypes.String), arrow.ListOf(arrow.PrimitiveTypes.Int64), arrow.ListOf(arrow.PrimitiveTypes.Float64),
	} {
		m, _ := mapOf(t)
		acc := ""
		for i, a := range m.accept {
			if i > 0 {
				acc += ", "
			}
			acc += a
		}
		rows = append(rows, [3]string{types.Name(t), m.create, acc})
	}
	return rows
}

// column reads one Arrow column of the current record.
type column struct {
	kind kind
	arr  arrow.Array
}

// value returns row's value as pgx encodes it (nil for null).
func (c *column) value(row int) any {
	if c.arr.IsNull(row) {
		return nil
	}
	switch c.kind {
	case kInt64:
		return c.arr.(*array.Int64).Value(row)
	case kInt32:
		return c.arr.(*array.Int32).Value(row)
	case kInt16:
		return c.arr.(*array.Int16).Value(row)
	case kFloat64:
		return c.arr.(*array.Float64).Value(row)
	case kFloat32:
		return c.arr.(*array.Float32).Value(row)
	case kBool:
		return c.arr.(*array.Boolean).Value(row)
	case kString:
		return c.arr.(*array.String).Value(row)
	case kLargeString:
		return c.arr.(*array.LargeString).Value(row)
	case kBinary:
		return c.arr.(*array.Binary).Value(row)
	case kTimestamp:
		ts := c.arr.(*array.Timestamp)
		unit := ts.DataType().(*arrow.TimestampType).Unit
		return ts.Value(row).ToTime(unit)
	case kDate:
		return c.arr.(*array.Date32).Value(row).ToTime()
	case kListString, kListInt64, kListFloat64, kListBool:
		l := c.arr.(*array.List)
		start, end := l.ValueOffsets(row)
		vals := l.ListValues()
		switch c.kind {
		case kListString:
			s := vals.(*array.String)
			if s.NullN() == 0 {
				// The common case: no null element, so pgx's fast []string path.
				out := make([]string, end-start)
				for i := start; i < end; i++ {
					out[i-start] = s.Value(int(i))
				}
				return out
			}
			return nullableElems(s, start, end, s.Value)
		case kListInt64:
			s := vals.(*array.Int64)
			return nullableElems(s, start, end, s.Value)
		case kListFloat64:
			s := vals.(*array.Float64)
			return nullableElems(s, start, end, s.Value)
		default:
			s := vals.(*array.Boolean)
			return nullableElems(s, start, end, s.Value)
		}
	}
	return nil
}

// nullableElems copies list elements [start, end) of a child array as
// pointers, nil for a null element (pgx writes NULL for a nil pointer).
func nullableElems[T any](arr arrow.Array, start, end int64, value func(int) T) []*T {
	out := make([]*T, 0, end-start)
	for i := start; i < end; i++ {
		if arr.IsNull(int(i)) {
			out = append(out, nil)
			continue
		}
		v := value(int(i))
		out = append(out, &v)
	}
	return out
}
