// Package arrowx converts between Go values and Arrow columns, for
// expression evaluation and record decoders.
//
// The mapping is fixed and small: int64 and int32 columns read as Go int,
// float64 as float64, string as string, bool as bool, timestamp as
// time.Time (UTC), list<string> as []string, list<int64> as []int,
// list<float64> as []float64 and binary as []byte. Nulls read as nil and
// nil appends a null. GoType and ArrowType state the mapping as types.
//
// Memory: strings and byte slices returned by a Getter may share the
// column's buffers; they stay valid while the array is alive (always the
// case with Go-allocated memory, which the garbage collector keeps). Copy
// them before releasing an array allocated outside the Go heap.
package arrowx

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flowrun/flowrun/dsl/types"
)

// Getter returns the Go value of one row of a column; nil for null.
type Getter func(row int) any

// NewGetter returns the Getter for arr. Columns of a type outside the
// mapping read as arr.GetOneForMarshal(row) (GoType reports any for them).
// The Getter does not retain arr: keep arr alive while using it.
func NewGetter(arr arrow.Array) Getter {
	switch a := arr.(type) {
	case *array.Int64:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return int(a.Value(i))
		}
	case *array.Int32:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return int(a.Value(i))
		}
	case *array.Float64:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return a.Value(i)
		}
	case *array.Float32:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return float64(a.Value(i))
		}
	case *array.String:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return a.Value(i)
		}
	case *array.LargeString:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return a.Value(i)
		}
	case *array.Boolean:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return a.Value(i)
		}
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return a.Value(i).ToTime(unit).UTC()
		}
	case *array.Binary:
		return func(i int) any {
			if a.IsNull(i) {
				return nil
			}
			return a.Value(i)
		}
	case *array.List:
		switch vals := a.ListValues().(type) {
		case *array.String:
			return func(i int) any {
				if a.IsNull(i) {
					return nil
				}
				lo, hi := a.ValueOffsets(i)
				out := make([]string, hi-lo)
				for j := range out {
					out[j] = vals.Value(int(lo) + j)
				}
				return out
			}
		case *array.Int64:
			return func(i int) any {
				if a.IsNull(i) {
					return nil
				}
				lo, hi := a.ValueOffsets(i)
				out := make([]int, hi-lo)
				for j := range out {
					out[j] = int(vals.Value(int(lo) + j))
				}
				return out
			}
		case *array.Float64:
			return func(i int) any {
				if a.IsNull(i) {
					return nil
				}
				lo, hi := a.ValueOffsets(i)
				out := make([]float64, hi-lo)
				for j := range out {
					out[j] = vals.Value(int(lo) + j)
				}
				return out
			}
		}
	}
	return func(i int) any {
		if arr.IsNull(i) {
			return nil
		}
		return arr.GetOneForMarshal(i)
	}
}

var (
	tInt      = reflect.TypeFor[int]()
	tFloat    = reflect.TypeFor[float64]()
	tString   = reflect.TypeFor[string]()
	tBool     = reflect.TypeFor[bool]()
	tTime     = reflect.TypeFor[time.Time]()
	tBytes    = reflect.TypeFor[[]byte]()
	tStrings  = reflect.TypeFor[[]string]()
	tInts     = reflect.TypeFor[[]int]()
	tInt64s   = reflect.TypeFor[[]int64]()
	tFloats   = reflect.TypeFor[[]float64]()
	tAny      = reflect.TypeFor[any]()
	listStr   = arrow.ListOf(arrow.BinaryTypes.String)
	listInt   = arrow.ListOf(arrow.PrimitiveTypes.Int64)
	listFloat = arrow.ListOf(arrow.PrimitiveTypes.Float64)
)

// GoType is the type of the non-nil values NewGetter returns for columns of
// type t; the empty interface type for types outside the mapping.
func GoType(t arrow.DataType) reflect.Type {
	switch t.ID() {
	case arrow.INT64, arrow.INT32:
		return tInt
	case arrow.FLOAT64, arrow.FLOAT32:
		return tFloat
	case arrow.STRING, arrow.LARGE_STRING:
		return tString
	case arrow.BOOL:
		return tBool
	case arrow.TIMESTAMP:
		return tTime
	case arrow.BINARY:
		return tBytes
	case arrow.LIST:
		switch t.(*arrow.ListType).Elem().ID() {
		case arrow.STRING:
			return tStrings
		case arrow.INT64:
			return tInts
		case arrow.FLOAT64:
			return tFloats
		}
	}
	return tAny
}

// ArrowType is the inverse of GoType: the column type that stores Go values
// of type t. It reports false for types with no column type (interfaces,
// maps, structs other than time.Time).
func ArrowType(t reflect.Type) (arrow.DataType, bool) {
	if t == nil {
		return nil, false
	}
	switch t {
	case tTime:
		return types.Timestamp, true
	case tBytes:
		return arrow.BinaryTypes.Binary, true
	case tStrings:
		return listStr, true
	case tInts, tInt64s:
		return listInt, true
	case tFloats:
		return listFloat, true
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return arrow.PrimitiveTypes.Int64, true
	case reflect.Int32:
		return arrow.PrimitiveTypes.Int32, true
	case reflect.Float64, reflect.Float32:
		return arrow.PrimitiveTypes.Float64, true
	case reflect.String:
		return arrow.BinaryTypes.String, true
	case reflect.Bool:
		return arrow.FixedWidthTypes.Boolean, true
	}
	return nil, false
}

// Appender appends one Go value to a builder; nil appends a null.
type Appender func(v any) error

// NewAppender returns the Appender for b. It converts between Go numeric
// types where no information is lost (an int into a float64 column, a whole
// float64 into an int64 column), parses RFC 3339 strings into timestamp
// columns, and otherwise returns an error such as
// `cannot store string "abc" in int64 column`. On error nothing is appended.
func NewAppender(b array.Builder) Appender {
	dt := b.Type()
	mismatch := func(v any) error {
		return fmt.Errorf("cannot store %s in %s column", describe(v), types.Name(dt))
	}
	switch bb := b.(type) {
	case *array.Int64Builder:
		return func(v any) error {
			switch x := v.(type) {
			case nil:
				bb.AppendNull()
			case int:
				bb.Append(int64(x))
			case int64:
				bb.Append(x)
			case int32:
				bb.Append(int64(x))
			case float64:
				n, ok := wholeInt(x, math.MinInt64, math.MaxInt64)
				if !ok {
					return mismatch(v)
				}
				bb.Append(n)
			default:
				return mismatch(v)
			}
			return nil
		}
	case *array.Int32Builder:
		return func(v any) error {
			var n int64
			switch x := v.(type) {
			case nil:
				bb.AppendNull()
				return nil
			case int:
				n = int64(x)
			case int64:
				n = x
			case int32:
				n = int64(x)
			case float64:
				var ok bool
				if n, ok = wholeInt(x, math.MinInt32, math.MaxInt32); !ok {
					return mismatch(v)
				}
			default:
				return mismatch(v)
			}
			if n < math.MinInt32 || n > math.MaxInt32 {
				return fmt.Errorf("cannot store %s in int32 column: out of range", describe(v))
			}
			bb.Append(int32(n))
			return nil
		}
	case *array.Float64Builder:
		return func(v any) error {
			switch x := v.(type) {
			case nil:
				bb.AppendNull()
			case float64:
				bb.Append(x)
			case int:
				bb.Append(float64(x))
			case int64:
				bb.Append(float64(x))
			case int32:
				bb.Append(float64(x))
			case float32:
				bb.Append(float64(x))
			default:
				return mismatch(v)
			}
			return nil
		}
	case *array.StringBuilder:
		return func(v any) error {
			switch x := v.(type) {
			case nil:
				bb.AppendNull()
			case string:
				bb.Append(x)
			case []byte:
				bb.BinaryBuilder.Append(x)
			default:
				return mismatch(v)
			}
			return nil
		}
	case *array.BooleanBuilder:
		return func(v any) error {
			switch x := v.(type) {
			case nil:
				bb.AppendNull()
			case bool:
				bb.Append(x)
			default:
				return mismatch(v)
			}
			return nil
		}
	case *array.TimestampBuilder:
		unit := dt.(*arrow.TimestampType).Unit
		return func(v any) error {
			var t time.Time
			switch x := v.(type) {
			case nil:
				bb.AppendNull()
				return nil
			case time.Time:
				t = x
			case string:
				var err error
				if t, err = time.Parse(time.RFC3339Nano, x); err != nil {
					return fmt.Errorf("cannot store %s in timestamp column: not an RFC 3339 time", describe(v))
				}
			default:
				return mismatch(v)
			}
			ts, err := arrow.TimestampFromTime(t, unit)
			if err != nil {
				return fmt.Errorf("cannot store %s in timestamp column: %w", describe(v), err)
			}
			bb.Append(ts)
			return nil
		}
	case *array.BinaryBuilder:
		return func(v any) error {
			switch x := v.(type) {
			case nil:
				bb.AppendNull()
			case []byte:
				bb.Append(x)
			case string:
				bb.AppendString(x)
			default:
				return mismatch(v)
			}
			return nil
		}
	case *array.ListBuilder:
		elem := NewAppender(bb.ValueBuilder())
		return func(v any) error {
			switch x := v.(type) {
			case nil:
				bb.AppendNull()
				return nil
			case []string:
				// Check first so a failure appends nothing.
				if err := checkElems(dt, v); err != nil {
					return err
				}
				bb.Append(true)
				for _, s := range x {
					_ = elem(s)
				}
			case []int:
				if err := checkElems(dt, v); err != nil {
					return err
				}
				bb.Append(true)
				for _, n := range x {
					if err := elem(n); err != nil {
						return err
					}
				}
			case []int64:
				bb.Append(true)
				for _, n := range x {
					if err := elem(n); err != nil {
						return err
					}
				}
			case []float64:
				bb.Append(true)
				for _, n := range x {
					if err := elem(n); err != nil {
						return err
					}
				}
			case []any:
				if err := checkAny(dt.(*arrow.ListType).Elem(), x); err != nil {
					return err
				}
				bb.Append(true)
				for _, e := range x {
					if err := elem(e); err != nil {
						return err
					}
				}
			default:
				return mismatch(v)
			}
			return nil
		}
	}
	return func(v any) error {
		if v == nil {
			b.AppendNull()
			return nil
		}
		return fmt.Errorf("cannot store %s in %s column: unsupported column type", describe(v), types.Name(dt))
	}
}

// checkElems rejects a typed slice whose element kind the list's element
// builder cannot take, before anything is appended.
func checkElems(dt arrow.DataType, v any) error {
	et := dt.(*arrow.ListType).Elem().ID()
	ok := true
	switch v.(type) {
	case []string:
		ok = et == arrow.STRING || et == arrow.LARGE_STRING || et == arrow.BINARY
	case []int:
		ok = et == arrow.INT64 || et == arrow.INT32 || et == arrow.FLOAT64
	}
	if !ok {
		return fmt.Errorf("cannot store %s in %s column", describe(v), types.Name(dt))
	}
	return nil
}

// checkAny verifies every element of x fits elem so a failed append leaves
// the builder unchanged.
func checkAny(elem arrow.DataType, x []any) error {
	for _, e := range x {
		if e == nil {
			continue
		}
		ok := true
		switch elem.ID() {
		case arrow.STRING, arrow.LARGE_STRING:
			_, ok = e.(string)
		case arrow.INT64, arrow.INT32:
			switch n := e.(type) {
			case int, int64, int32:
			case float64:
				_, ok = wholeInt(n, math.MinInt64, math.MaxInt64)
			default:
				ok = false
			}
		case arrow.FLOAT64:
			switch e.(type) {
			case int, int64, int32, float64, float32:
			default:
				ok = false
			}
		case arrow.BOOL:
			_, ok = e.(bool)
		}
		if !ok {
			return fmt.Errorf("cannot store %s in list<%s> column", describe(e), types.Name(elem))
		}
	}
	return nil
}

func wholeInt(f float64, lo, hi float64) (int64, bool) {
	if f != math.Trunc(f) || f < lo || f >= hi || math.IsNaN(f) {
		return 0, false
	}
	return int64(f), true
}

// describe renders a value for error messages: its Go type and a short
// form of the value.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:37] + "..."
		}
		return "string " + strconv.Quote(x)
	case []byte:
		return fmt.Sprintf("[]byte of length %d", len(x))
	case time.Time:
		return "time " + x.Format(time.RFC3339Nano)
	}
	s := fmt.Sprintf("%v", v)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return fmt.Sprintf("%T %s", v, s)
}

// Text renders a scalar value of the mapping as text, the one way flowrun
// turns values into strings (casts, to_string, message keys and headers):
// integers in decimal, floats in the shortest form that round-trips,
// timestamps as RFC 3339 in UTC. ok is false for other values (lists, nil).
func Text(v any) (s string, ok bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), true
	}
	return "", false
}
