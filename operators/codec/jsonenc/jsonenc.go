// Package jsonenc writes rows of Arrow record batches as JSON objects: fields
// in schema order, nulls as null, timestamps as RFC 3339 (UTC, nanosecond
// precision trimmed), lists as arrays, structs as objects, and strings
// escaped as encoding/json would (invalid UTF-8 becomes U+FFFD). It is used
// by JSON-lines sinks and for the text of dead-letter records.
package jsonenc

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Encoder writes rows of batches with one schema. It holds no per-row state
// and is safe for concurrent use.
type Encoder struct {
	keys [][]byte // `"name":` with a leading comma for all but the first
}

// NewEncoder returns an encoder for batches of schema.
func NewEncoder(schema *arrow.Schema) *Encoder {
	e := &Encoder{}
	for i, f := range schema.Fields() {
		var k []byte
		if i > 0 {
			k = append(k, ',')
		}
		k = AppendString(k, f.Name)
		k = append(k, ':')
		e.keys = append(e.keys, k)
	}
	return e
}

// AppendRow appends row of rec as one JSON object (no newline) to dst.
// rec must have the encoder's schema.
func (e *Encoder) AppendRow(dst []byte, rec arrow.RecordBatch, row int) []byte {
	dst = append(dst, '{')
	for i, k := range e.keys {
		dst = append(dst, k...)
		dst = AppendValue(dst, rec.Column(i), row)
	}
	return append(dst, '}')
}

// AppendValue appends element i of arr as JSON.
func AppendValue(dst []byte, arr arrow.Array, i int) []byte {
	if arr.IsNull(i) {
		return append(dst, "null"...)
	}
	switch a := arr.(type) {
	case *array.String:
		return AppendString(dst, a.Value(i))
	case *array.LargeString:
		return AppendString(dst, a.Value(i))
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(i), 10)
	case *array.Int32:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10)
	case *array.Int16:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10)
	case *array.Int8:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10)
	case *array.Uint64:
		return strconv.AppendUint(dst, a.Value(i), 10)
	case *array.Uint32:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10)
	case *array.Float64:
		return appendFloat(dst, a.Value(i), 64)
	case *array.Float32:
		return appendFloat(dst, float64(a.Value(i)), 32)
	case *array.Boolean:
		if a.Value(i) {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return AppendTime(dst, a.Value(i).ToTime(unit))
	case *array.Date32:
		dst = append(dst, '"')
		dst = a.Value(i).ToTime().AppendFormat(dst, time.DateOnly)
		return append(dst, '"')
	case *array.Binary:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, a.Value(i))
		return append(dst, '"')
	case *array.List:
		lo, hi := a.ValueOffsets(i)
		vals := a.ListValues()
		dst = append(dst, '[')
		for k := lo; k < hi; k++ {
			if k > lo {
				dst = append(dst, ',')
			}
			dst = AppendValue(dst, vals, int(k))
		}
		return append(dst, ']')
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		dst = append(dst, '{')
		for f := 0; f < a.NumField(); f++ {
			if f > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, st.Field(f).Name)
			dst = append(dst, ':')
			dst = AppendValue(dst, a.Field(f), i)
		}
		return append(dst, '}')
	}
	// Anything else (rare types) through arrow's own JSON form; slow but exact.
	b, err := json.Marshal(arr.GetOneForMarshal(i))
	if err != nil {
		return AppendString(dst, arr.ValueStr(i))
	}
	return append(dst, b...)
}

// AppendTime appends t as a quoted RFC 3339 timestamp in UTC.
func AppendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	// Like encoding/json: plain notation unless very large or small.
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	return strconv.AppendFloat(dst, f, format, -1, bits)
}

const hex = "0123456789abcdef"

// safe marks ASCII bytes that need no escaping inside a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = false, false
	return
}()

// AppendString appends s as a quoted JSON string.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 break JavaScript; escape them as encoding/json does.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
