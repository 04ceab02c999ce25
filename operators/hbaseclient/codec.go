package hbaseclient

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// The cell value encoding flowrun writes and reads back (docs/hbase.md).
// It follows HBase's own org.apache.hadoop.hbase.util.Bytes, so a Java
// client reads the cells with Bytes.toLong, Bytes.toDouble, Bytes.toString:
//
//	string, large_string     UTF-8 bytes
//	binary                   the bytes as they are
//	int8..int64, uint8..uint64  8-byte big-endian two's complement (Bytes.toBytes(long))
//	float32, float64         8-byte big-endian IEEE 754 double (Bytes.toBytes(double))
//	bool                     1 byte: 0xFF true, 0x00 false (Bytes.toBytes(boolean))
//	timestamp (any unit)     8-byte big-endian microseconds since the Unix epoch, UTC
//	date32                   8-byte big-endian days since the Unix epoch
//	list, struct, map, ...   UTF-8 JSON text
//	null                     no cell at all (the qualifier is absent from the row)
//
// Decode turns such bytes back into a Go value for a column type.

// Encoding names the encoding of one Arrow type.
type Encoding int

const (
	EncString Encoding = iota
	EncBytes
	EncInt64
	EncFloat64
	EncBool
	EncTimestampMicros
	EncDays
	EncJSON
)

// EncodingOf returns how values of type t are stored.
func EncodingOf(t arrow.DataType) Encoding {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		return EncString
	case arrow.BINARY, arrow.LARGE_BINARY, arrow.FIXED_SIZE_BINARY, arrow.BINARY_VIEW:
		return EncBytes
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return EncInt64
	case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
		return EncFloat64
	case arrow.BOOL:
		return EncBool
	case arrow.TIMESTAMP:
		return EncTimestampMicros
	case arrow.DATE32, arrow.DATE64:
		return EncDays
	}
	return EncJSON
}

func (e Encoding) String() string {
	return [...]string{"utf-8", "bytes", "int64 big-endian", "float64 big-endian", "bool byte", "timestamp µs big-endian", "days big-endian", "json"}[e]
}

// AppendInt64 appends v as 8 bytes big-endian.
func AppendInt64(dst []byte, v int64) []byte { return binary.BigEndian.AppendUint64(dst, uint64(v)) }

// AppendFloat64 appends v as an 8-byte big-endian IEEE 754 double.
func AppendFloat64(dst []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(v))
}

// AppendBool appends 0xFF for true and 0x00 for false.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 0xFF)
	}
	return append(dst, 0)
}

// Decode turns a stored cell value back into a Go value of the encoding:
// string, []byte, int64, float64, bool, time.Time (UTC), or for JSON the
// decoded value (any).
func Decode(e Encoding, b []byte) (any, error) {
	switch e {
	case EncString:
		return string(b), nil
	case EncBytes:
		return b, nil
	case EncInt64, EncDays:
		if len(b) != 8 {
			return nil, fmt.Errorf("hbase: %s value has %d bytes, want 8", e, len(b))
		}
		return int64(binary.BigEndian.Uint64(b)), nil
	case EncFloat64:
		if len(b) != 8 {
			return nil, fmt.Errorf("hbase: %s value has %d bytes, want 8", e, len(b))
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
	case EncBool:
		if len(b) != 1 {
			return nil, fmt.Errorf("hbase: bool value has %d bytes, want 1", len(b))
		}
		return b[0] != 0, nil
	case EncTimestampMicros:
		if len(b) != 8 {
			return nil, fmt.Errorf("hbase: timestamp value has %d bytes, want 8", len(b))
		}
		return time.UnixMicro(int64(binary.BigEndian.Uint64(b))).UTC(), nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("hbase: json value: %w", err)
	}
	return v, nil
}

// ParseEncoding maps a column type name (as in a pipeline's schemas:
// string, int64, float64, bool, timestamp, date, list<string>, json, bytes)
// to its encoding.
func ParseEncoding(name string) (Encoding, error) {
	switch name {
	case "string", "utf8":
		return EncString, nil
	case "bytes", "binary":
		return EncBytes, nil
	case "int", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64":
		return EncInt64, nil
	case "float", "float32", "float64", "double":
		return EncFloat64, nil
	case "bool", "boolean":
		return EncBool, nil
	case "timestamp":
		return EncTimestampMicros, nil
	case "date", "date32":
		return EncDays, nil
	case "json":
		return EncJSON, nil
	}
	if strings.HasPrefix(name, "list<") || strings.HasPrefix(name, "struct<") || strings.HasPrefix(name, "map<") {
		return EncJSON, nil
	}
	return 0, fmt.Errorf("unknown value type %q (want string, bytes, int64, float64, bool, timestamp, date, json)", name)
}

// Text renders a decoded value for display (JSON-compatible).
func Text(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case time.Time:
		return strconv.Quote(x.Format(time.RFC3339Nano))
	case []byte:
		return strconv.Quote(fmt.Sprintf("%x", x))
	}
	b, _ := json.Marshal(v)
	return string(b)
}
