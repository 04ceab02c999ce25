package hbaseclient

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/thrift/lib/go/thrift"
)

func TestEncodingRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 24, 13, 4, 5, 123456000, time.UTC)
	for _, tc := range []struct {
		name string
		enc  Encoding
		b    []byte
		want any
	}{
		{"int", EncInt64, AppendInt64(nil, -42), int64(-42)},
		{"int max", EncInt64, AppendInt64(nil, math.MaxInt64), int64(math.MaxInt64)},
		{"float", EncFloat64, AppendFloat64(nil, 2.5), 2.5},
		{"true", EncBool, AppendBool(nil, true), true},
		{"false", EncBool, AppendBool(nil, false), false},
		{"timestamp", EncTimestampMicros, AppendInt64(nil, ts.UnixMicro()), ts},
		{"string", EncString, []byte("é"), "é"},
	} {
		got, err := Decode(tc.enc, tc.b)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tt, ok := got.(time.Time); ok {
			if !tt.Equal(tc.want.(time.Time)) {
				t.Fatalf("%s: %v", tc.name, got)
			}
			continue
		}
		if got != tc.want {
			t.Fatalf("%s: got %#v, want %#v", tc.name, got, tc.want)
		}
	}
	// Bytes.toBytes(long) for 1 is 00 00 00 00 00 00 00 01.
	if b := AppendInt64(nil, 1); string(b) != "\x00\x00\x00\x00\x00\x00\x00\x01" {
		t.Fatalf("int64 1 = %x", b)
	}
	if _, err := Decode(EncInt64, []byte{1, 2}); err == nil {
		t.Fatal("a 2-byte int decoded")
	}
	for typ, want := range map[arrow.DataType]Encoding{
		arrow.BinaryTypes.String: EncString, arrow.PrimitiveTypes.Int32: EncInt64, arrow.PrimitiveTypes.Float32: EncFloat64,
		arrow.FixedWidthTypes.Boolean: EncBool, arrow.ListOf(arrow.BinaryTypes.String): EncJSON,
	} {
		if got := EncodingOf(typ); got != want {
			t.Errorf("EncodingOf(%s) = %v, want %v", typ, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Class
	}{
		{&IOError{Message: "Failed 1 action: org.apache.hadoop.hbase.regionserver.NoSuchColumnFamilyException: Column family zz does not exist"}, Permanent},
		{&IOError{Message: "org.apache.hadoop.hbase.TableNotFoundException: t"}, Fatal},
		{&IOError{Message: "Failed 3 actions: RegionTooBusyException: Over memstore limit"}, Retryable},
		{&IOError{Message: "bad", Illegal: true}, Permanent},
		{&appError{method: "putMultiple", ex: thrift.NewTApplicationException(thrift.INTERNAL_ERROR, "Internal error processing putMultiple")}, Permanent},
		{&appError{method: "x", ex: thrift.NewTApplicationException(thrift.UNKNOWN_METHOD, "Invalid method name")}, Fatal},
		{errors.New("read tcp: connection reset by peer"), Retryable},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	e := &IOError{Message: "Failed 1 action: org.apache.hadoop.hbase.regionserver.NoSuchColumnFamilyException: Column family zz does not exist in region r, {TABLE_ATTRIBUTES => {...}}\n\tat org.apache..."}
	if got, want := e.Error(), "hbase: Failed 1 action: NoSuchColumnFamilyException: Column family zz does not exist in region r"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), []byte("x"))
	f.Add(uint8(2), AppendInt64(nil, 7))
	f.Add(uint8(7), []byte(`["a"]`))
	f.Fuzz(func(t *testing.T, e uint8, b []byte) {
		enc := Encoding(e % 8)
		v, err := Decode(enc, b)
		if err == nil && enc == EncInt64 {
			if got := AppendInt64(nil, v.(int64)); string(got) != string(b) {
				t.Fatalf("int64 round trip %x → %x", b, got)
			}
		}
	})
}
