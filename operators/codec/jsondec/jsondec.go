// Package jsondec decodes JSON objects, one per call, straight into the
// column builders of an Arrow schema. It scans each object with a hand-written
// byte tokenizer, finds the column of each key by name, and parses the value
// into a per-row slot; only when the whole object is valid are the slots
// appended to the builders, so a bad record leaves every builder untouched.
// Nothing is allocated per record in the steady state: strings are appended
// from slices of the input line (or of a reused unescape buffer).
//
// Coercions: a JSON number or boolean into a string column keeps its text; an
// array or object into a string column is a type error naming the field (it
// is not stored as its raw text). A numeric string into an integer or float
// column is parsed. Integer columns are parsed exactly, never through a
// float64: 3, 3.0, 3e2 and "30E-1" are integers, while 1.5, 1e-999 or
// 9007199254740993.5 are errors naming the field, as is a value outside the
// column's range. An RFC 3339 string (or "2006-01-02 15:04:05",
// "2006-01-02") into a timestamp column is parsed as UTC unless it has an
// offset; a JSON array into a list column decodes each element with the same
// rules. Unknown keys are skipped, missing keys and JSON null become null.
package jsondec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flowrun/flowrun/dsl/types"
)

// Options tunes a Decoder. It is empty for now and kept for additions (such
// as columns stamped from outside the record).
type Options struct{}

type kind uint8

const (
	kString kind = iota
	kBinary
	kInt64
	kInt32
	kFloat64
	kBool
	kTimestamp
	kList
	kUnsupported
)

// target appends scalar values of one kind to one builder.
type target struct {
	kind kind
	unit arrow.TimeUnit
	b    array.Builder
	sb   *array.BinaryBuilder
	ib   *array.Int64Builder
	i32  *array.Int32Builder
	fb   *array.Float64Builder
	bb   *array.BooleanBuilder
	tb   *array.TimestampBuilder
}

type column struct {
	name string
	typ  arrow.DataType
	target
	elem target // for lists
	lb   *array.ListBuilder
	str  *strCol // top-level string and binary columns
}

const (
	stMissing uint8 = iota
	stNull
	stSet
)

// span locates string bytes in the line or in the unescape buffer.
type span struct {
	off, end int32
	scratch  bool
}

// val is one decoded value waiting to be appended.
type val struct {
	state  uint8
	b      bool
	i      int64
	f      float64
	s      span
	lo, hi int32 // list items in Decoder.items
}

// Decoder decodes JSON objects into Arrow record batches of a fixed schema.
// It is not safe for concurrent use.
type Decoder struct {
	schema *arrow.Schema
	rb     *array.RecordBuilder
	cols   []column
	keys   []int32 // open-addressing table of column names: column+1, 0 empty
	slots  []val
	items  []val
	order  []int // column of the k-th key of the previous object, to skip map lookups
	line   []byte
	buf    []byte // unescaped strings of the current row
	key    []byte // unescaped key
	text   []byte // AppendText's fields end to end
	rows   int
	bytes  int
	depth  int
	arrs   []arrow.Array // Flush's columns
}

// NewDecoder returns a decoder for schema whose builders use alloc.
func NewDecoder(schema *arrow.Schema, alloc memory.Allocator, opts Options) *Decoder {
	d := &Decoder{
		schema: schema,
		rb:     array.NewRecordBuilder(alloc, schema),
		slots:  make([]val, schema.NumFields()),
	}
	d.cols = make([]column, schema.NumFields())
	for i, f := range schema.Fields() {
		c := &d.cols[i]
		c.name = f.Name
		c.typ = f.Type
		b := d.rb.Field(i)
		if lt, ok := f.Type.(*arrow.ListType); ok {
			c.kind, c.b = kList, b
			c.lb = b.(*array.ListBuilder)
			c.elem = newTarget(lt.Elem(), c.lb.ValueBuilder())
			if c.elem.kind == kList || c.elem.kind == kUnsupported {
				c.kind = kUnsupported
			}
		} else {
			c.target = newTarget(f.Type, b)
			if c.kind == kString || c.kind == kBinary {
				c.str = newStrCol(f.Type, alloc)
			}
		}
	}
	n := 8
	for n < 2*len(d.cols) {
		n *= 2
	}
	d.keys = make([]int32, n)
	for i := range d.cols {
		if d.lookup([]byte(d.cols[i].name)) < 0 { // the first of duplicate names wins
			p := keyHash([]byte(d.cols[i].name)) & uint32(n-1)
			for d.keys[p] != 0 {
				p = (p + 1) & uint32(n-1)
			}
			d.keys[p] = int32(i + 1)
		}
	}
	return d
}

// keyHash mixes a key's length and three of its bytes: cheap, and enough to
// tell a schema's column names apart (lookup compares the names anyway).
func keyHash(k []byte) uint32 {
	n := len(k)
	if n == 0 {
		return 0
	}
	h := uint32(n)*0x9E3779B1 ^ uint32(k[0])*0x85EBCA77 ^ uint32(k[n-1])*0xC2B2AE3D ^ uint32(k[n/2])*0x27D4EB2F
	return h ^ h>>15
}

// lookup returns the column named key, or -1.
func (d *Decoder) lookup(key []byte) int {
	mask := uint32(len(d.keys) - 1)
	for p := keyHash(key) & mask; ; p = (p + 1) & mask {
		c := d.keys[p]
		if c == 0 {
			return -1
		}
		if d.cols[c-1].name == string(key) {
			return int(c - 1)
		}
	}
}

func newTarget(t arrow.DataType, b array.Builder) target {
	tg := target{b: b, kind: kUnsupported}
	switch t.ID() {
	case arrow.STRING:
		tg.kind, tg.sb = kString, b.(*array.StringBuilder).BinaryBuilder
	case arrow.BINARY:
		tg.kind, tg.sb = kBinary, b.(*array.BinaryBuilder)
	case arrow.INT64:
		tg.kind, tg.ib = kInt64, b.(*array.Int64Builder)
	case arrow.INT32:
		tg.kind, tg.i32 = kInt32, b.(*array.Int32Builder)
	case arrow.FLOAT64:
		tg.kind, tg.fb = kFloat64, b.(*array.Float64Builder)
	case arrow.BOOL:
		tg.kind, tg.bb = kBool, b.(*array.BooleanBuilder)
	case arrow.TIMESTAMP:
		tg.kind, tg.tb, tg.unit = kTimestamp, b.(*array.TimestampBuilder), t.(*arrow.TimestampType).Unit
	case arrow.LIST:
		tg.kind = kList
	}
	return tg
}

// Schema is the schema of the batches Flush returns.
func (d *Decoder) Schema() *arrow.Schema { return d.schema }

// Rows is the number of rows buffered since the last Flush.
func (d *Decoder) Rows() int { return d.rows }

// Bytes approximates the bytes buffered since the last Flush (the input size).
func (d *Decoder) Bytes() int { return d.bytes }

// Flush returns the buffered rows as a record batch, which the caller
// releases, and starts a new one. With no rows it returns an empty batch.
func (d *Decoder) Flush() arrow.RecordBatch {
	rows := d.rows
	d.rows, d.bytes = 0, 0
	d.arrs = d.arrs[:0]
	for i := range d.cols {
		c := &d.cols[i]
		if c.str != nil {
			d.arrs = append(d.arrs, c.str.finish())
			continue
		}
		d.arrs = append(d.arrs, c.b.NewArray())
		// Size the next batch's buffers like this one's, so the builders
		// do not regrow (and copy, and zero) them row after row.
		if rows > 0 {
			c.b.Reserve(rows)
		}
	}
	rec := array.NewRecordBatch(d.schema, d.arrs, int64(rows))
	for i, a := range d.arrs {
		a.Release()
		d.arrs[i] = nil
	}
	return rec
}

// Release frees the builders. The decoder must not be used afterwards.
func (d *Decoder) Release() {
	if d.rb != nil {
		d.rb.Release()
		d.rb = nil
		for i := range d.cols {
			if c := d.cols[i].str; c != nil {
				c.release()
			}
		}
	}
}

// maxBatchText bounds the input bytes of one batch, so that no string
// column's 32-bit offsets can overflow (a column never holds more bytes
// than the records it came from).
const maxBatchText = 1<<31 - 1

var errBatchFull = errors.New("the batch being built would exceed 2 GiB; flush it first")

// Append decodes one JSON object (surrounding whitespace allowed) into one
// row. On error nothing is appended.
func (d *Decoder) Append(line []byte) error {
	if d.bytes+len(line) > maxBatchText {
		return errBatchFull
	}
	d.line = line
	d.buf = d.buf[:0]
	d.items = d.items[:0]
	for i := range d.slots {
		d.slots[i].state = stMissing
	}
	if err := d.object(); err != nil {
		d.line = nil
		return err
	}
	d.commit()
	d.line = nil
	d.bytes += len(line)
	return nil
}

// AppendText appends one row from text fields, as read from CSV: vals[i]
// fills column cols[i]; columns not named are null. Each text is decoded as
// if it were a JSON string, so the same coercions apply; an empty text is
// null except in string columns, and a list column takes a JSON array.
func (d *Decoder) AppendText(cols []int, vals []string) error {
	d.buf = d.buf[:0]
	d.items = d.items[:0]
	for i := range d.slots {
		d.slots[i].state = stMissing
	}
	n := 0
	for _, v := range vals {
		n += len(v)
	}
	if d.bytes+n > maxBatchText {
		return errBatchFull
	}
	// Lay the texts end to end in the line so spans can point at them.
	line := d.text[:0]
	for _, v := range vals {
		line = append(line, v...)
	}
	d.text = line
	d.line = line
	off := 0
	for k, v := range vals {
		if k >= len(cols) {
			break
		}
		ci := cols[k]
		if ci < 0 || ci >= len(d.cols) {
			off += len(v)
			continue
		}
		c := &d.cols[ci]
		sp := span{off: int32(off), end: int32(off + len(v))}
		off += len(v)
		slot := &d.slots[ci]
		if v == "" && c.kind != kString {
			slot.state = stNull
			continue
		}
		if c.kind == kList {
			if err := d.listFromText(c, slot, sp); err != nil {
				d.line = nil
				return err
			}
			continue
		}
		if err := d.fromString(&c.target, c.name, slot, sp, false); err != nil {
			d.line = nil
			return err
		}
	}
	d.commit()
	d.line = nil
	d.bytes += n
	return nil
}

func (d *Decoder) listFromText(c *column, slot *val, sp span) error {
	i := skipWS(d.line, int(sp.off))
	if i >= int(sp.end) || d.line[i] != '[' {
		return fmt.Errorf("field '%s': expected %s, got %s", c.name, types.Name(c.typ), quote(d.line[sp.off:sp.end]))
	}
	saved := d.line
	d.line = d.line[:sp.end]
	defer func() { d.line = saved }()
	j, err := d.value(c, slot, i)
	if err != nil {
		return err
	}
	if j = skipWS(d.line, j); j != int(sp.end) {
		return fmt.Errorf("field '%s': unexpected text after the list", c.name)
	}
	return nil
}

func (d *Decoder) commit() {
	for i := range d.cols {
		c := &d.cols[i]
		s := &d.slots[i]
		if c.str != nil {
			if s.state == stSet {
				c.str.append(d.str(s.s))
			} else {
				c.str.appendNull()
			}
			continue
		}
		if s.state != stSet {
			c.b.AppendNull()
			continue
		}
		if c.kind == kList {
			c.lb.Append(true)
			for k := s.lo; k < s.hi; k++ {
				d.put(&c.elem, &d.items[k])
			}
			continue
		}
		d.put(&c.target, s)
	}
	d.rows++
}

func (d *Decoder) put(t *target, v *val) {
	if v.state != stSet {
		t.b.AppendNull()
		return
	}
	switch t.kind {
	case kString, kBinary:
		t.sb.Append(d.str(v.s))
	case kInt64:
		t.ib.Append(v.i)
	case kInt32:
		t.i32.Append(int32(v.i))
	case kFloat64:
		t.fb.Append(v.f)
	case kBool:
		t.bb.Append(v.b)
	case kTimestamp:
		t.tb.Append(arrow.Timestamp(v.i))
	default:
		t.b.AppendNull()
	}
}

func (d *Decoder) str(s span) []byte {
	if s.scratch {
		return d.buf[s.off:s.end]
	}
	return d.line[s.off:s.end]
}

// SyntaxError is a malformed-JSON error with the byte offset in the line.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.Offset, e.Msg)
}

func (d *Decoder) syntax(i int, format string, args ...any) error {
	return &SyntaxError{Offset: i, Msg: fmt.Sprintf(format, args...)}
}

func (d *Decoder) unexpected(i int, what string) error {
	if i >= len(d.line) {
		return d.syntax(i, "unexpected end of input, expected %s", what)
	}
	return d.syntax(i, "unexpected %q, expected %s", d.line[i], what)
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func (d *Decoder) object() error {
	b := d.line
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		if i >= len(b) {
			return d.syntax(i, "empty record")
		}
		return d.unexpected(i, "'{' (a record must be a JSON object)")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for k := 0; ; k++ {
			if i >= len(b) || b[i] != '"' {
				return d.unexpected(i, "a string key")
			}
			ks, ke, esc, _, j, err := d.scanString(i)
			if err != nil {
				return err
			}
			key := b[ks:ke]
			if esc {
				d.key = unescape(d.key[:0], key)
				key = d.key
			}
			col := -1
			if k < len(d.order) {
				if g := d.order[k]; g >= 0 && d.cols[g].name == string(key) {
					col = g
				}
			}
			if col < 0 {
				col = d.lookup(key)
				if k < len(d.order) {
					d.order[k] = col
				} else if k < 4*len(d.cols)+4 {
					d.order = append(d.order, col)
				}
			}
			i = skipWS(b, j)
			if i >= len(b) || b[i] != ':' {
				return d.unexpected(i, "':' after an object key")
			}
			i = skipWS(b, i+1)
			if col < 0 {
				d.depth = 0
				i, err = d.skip(i)
			} else {
				d.slots[col].state = stMissing
				i, err = d.value(&d.cols[col], &d.slots[col], i)
			}
			if err != nil {
				return err
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return d.unexpected(i, "',' or '}'")
		}
	}
	if i = skipWS(b, i); i != len(b) {
		return d.unexpected(i, "end of record")
	}
	return nil
}

// value decodes the value at i into slot for column c.
func (d *Decoder) value(c *column, slot *val, i int) (int, error) {
	b := d.line
	if i >= len(b) {
		return i, d.unexpected(i, "a value")
	}
	switch ch := b[i]; {
	case ch == '[':
		if c.kind == kList {
			return d.list(c, slot, i)
		}
		return d.raw(c.name, c.typ, i, "an array")
	case ch == '{':
		return d.raw(c.name, c.typ, i, "an object")
	case c.kind == kList:
		if ch == 'n' {
			return d.scalar(&c.target, c.name, c.typ, slot, i)
		}
		j, err := d.skipScalar(i)
		if err != nil {
			return j, err
		}
		return j, d.wrongType(c.name, c.typ, b[i:j])
	}
	return d.scalar(&c.target, c.name, c.typ, slot, i)
}

// raw skips an array or object where a scalar column expects a value and
// reports the type error (after checking its syntax, so malformed JSON is
// reported as such).
func (d *Decoder) raw(name string, typ arrow.DataType, i int, what string) (int, error) {
	d.depth = 0
	j, err := d.skip(i)
	if err != nil {
		return j, err
	}
	return j, fmt.Errorf("field '%s': expected %s, got %s", name, types.Name(typ), what)
}

func (d *Decoder) list(c *column, slot *val, i int) (int, error) {
	b := d.line
	lo := len(d.items)
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		slot.state, slot.lo, slot.hi = stSet, int32(lo), int32(lo)
		return i + 1, nil
	}
	for {
		d.items = append(d.items, val{})
		it := &d.items[len(d.items)-1]
		if i >= len(b) {
			return i, d.unexpected(i, "a value")
		}
		var err error
		switch b[i] {
		case '[':
			i, err = d.raw(c.name+"[]", c.typ.(*arrow.ListType).Elem(), i, "an array")
		case '{':
			i, err = d.raw(c.name+"[]", c.typ.(*arrow.ListType).Elem(), i, "an object")
		default:
			i, err = d.scalar(&c.elem, c.name+"[]", c.typ.(*arrow.ListType).Elem(), it, i)
		}
		if err != nil {
			return i, err
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			slot.state, slot.lo, slot.hi = stSet, int32(lo), int32(len(d.items))
			return i + 1, nil
		}
		return i, d.unexpected(i, "',' or ']'")
	}
}

// scalar decodes a string, number, true, false or null at i.
func (d *Decoder) scalar(t *target, name string, typ arrow.DataType, slot *val, i int) (int, error) {
	b := d.line
	switch ch := b[i]; {
	case ch == '"':
		s, e, esc, hi, j, err := d.scanString(i)
		if err != nil {
			return j, err
		}
		sp := span{off: int32(s), end: int32(e)}
		if esc {
			off := len(d.buf)
			d.buf = unescape(d.buf, b[s:e])
			sp = span{off: int32(off), end: int32(len(d.buf)), scratch: true}
			hi = true
		}
		return j, d.fromString(t, name, slot, sp, hi)
	case ch == 'n':
		if hasPrefix(b[i:], "null") {
			slot.state = stNull
			return i + 4, nil
		}
	case ch == 't' || ch == 'f':
		lit, v := "false", false
		if ch == 't' {
			lit, v = "true", true
		}
		if !hasPrefix(b[i:], lit) {
			break
		}
		j := i + len(lit)
		switch t.kind {
		case kBool:
			slot.state, slot.b = stSet, v
		case kString:
			slot.state, slot.s = stSet, span{off: int32(i), end: int32(j)}
		default:
			return j, d.wrongType(name, typ, b[i:j])
		}
		return j, nil
	case ch == '-' || (ch >= '0' && ch <= '9'):
		j, _, err := d.scanNumber(i)
		if err != nil {
			return j, err
		}
		num := b[i:j]
		switch t.kind {
		case kString:
			slot.state, slot.s = stSet, span{off: int32(i), end: int32(j)}
			return j, nil
		case kInt64, kInt32:
			v, r := exactInt(num)
			if r == intOK && t.kind == kInt32 && (v < math.MinInt32 || v > math.MaxInt32) {
				r = intRange
			}
			if r != intOK {
				return j, intError(name, typ, num, r)
			}
			slot.state, slot.i = stSet, v
			return j, nil
		case kFloat64:
			f, err := strconv.ParseFloat(unsafeString(num), 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return j, fmt.Errorf("field '%s': bad number %s", name, clip(num))
			}
			slot.state, slot.f = stSet, f
			return j, nil
		}
		return j, d.wrongType(name, typ, num)
	}
	return i, d.unexpected(i, "a value")
}

// fromString decodes string text (already unescaped) at sp into slot.
func (d *Decoder) fromString(t *target, name string, slot *val, sp span, nonASCII bool) error {
	s := d.str(sp)
	switch t.kind {
	case kString:
		if nonASCII && !utf8.Valid(s) {
			return fmt.Errorf("field '%s': invalid UTF-8 in string", name)
		}
		slot.state, slot.s = stSet, sp
		return nil
	case kBinary:
		slot.state, slot.s = stSet, sp
		return nil
	case kInt64, kInt32:
		num := trim(s)
		v, r := exactInt(num)
		if r == intOK && t.kind == kInt32 && (v < math.MinInt32 || v > math.MaxInt32) {
			r = intRange
		}
		switch r {
		case intOK:
			slot.state, slot.i = stSet, v
			return nil
		case intFraction, intRange:
			return intError(name, t.b.Type(), num, r)
		}
	case kFloat64:
		f, err := strconv.ParseFloat(unsafeString(trim(s)), 64)
		if err == nil || errors.Is(err, strconv.ErrRange) {
			slot.state, slot.f = stSet, f
			return nil
		}
	case kBool:
		switch string(s) {
		case "true", "TRUE", "True":
			slot.state, slot.b = stSet, true
			return nil
		case "false", "FALSE", "False":
			slot.state, slot.b = stSet, false
			return nil
		}
	case kTimestamp:
		if v, ok := parseTime(trim(s), t.unit); ok {
			slot.state, slot.i = stSet, v
			return nil
		}
	case kUnsupported:
		return fmt.Errorf("field '%s': its type is not supported by the JSON decoder", name)
	}
	return fmt.Errorf("field '%s': expected %s, got string %s", name, kindName(t), quote(s))
}

func kindName(t *target) string {
	switch t.kind {
	case kString:
		return "string"
	case kBinary:
		return "binary"
	case kInt64:
		return "int64"
	case kInt32:
		return "int32"
	case kFloat64:
		return "float64"
	case kBool:
		return "bool"
	case kTimestamp:
		return "timestamp"
	}
	return "a supported type"
}

func (d *Decoder) wrongType(name string, typ arrow.DataType, tok []byte) error {
	what := "number " + clip(tok)
	switch tok[0] {
	case 't', 'f':
		what = "bool " + string(tok)
	case '"':
		what = "string " + quote(tok[1:len(tok)-1])
	}
	return fmt.Errorf("field '%s': expected %s, got %s", name, types.Name(typ), what)
}

func quote(s []byte) string {
	if len(s) > 40 {
		r := s[:40]
		for k := 0; k < 3 && !utf8.Valid(r); k++ {
			r = r[:len(r)-1]
		}
		return strconv.Quote(string(r)) + "…"
	}
	return strconv.Quote(string(s))
}

func trim(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// intResult is the outcome of exactInt.
type intResult uint8

const (
	intOK       intResult = iota
	intSyntax             // not a decimal number
	intFraction           // a number, but not a whole one
	intRange              // a whole number outside int64
)

// exactInt parses a decimal number (an optional sign, digits, an optional
// fraction and an optional exponent, as in JSON, with '+' allowed) and
// returns its value when it is exactly an integer in int64's range. It never
// rounds: the digits are compared as written, so 1e-999 is a fraction and
// 9007199254740993.0 is 9007199254740993.
func exactInt(b []byte) (int64, intResult) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	intPart := b[:i]
	if i == len(b) { // the common case: plain digits
		if i == 0 {
			return 0, intSyntax
		}
		return digitsToInt(intPart, nil, 0, neg)
	}
	var frac []byte
	if b[i] == '.' {
		j := i + 1
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		frac = b[i+1 : j]
		i = j
	}
	if len(intPart) == 0 && len(frac) == 0 {
		return 0, intSyntax
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			eneg = b[i] == '-'
			i++
		}
		k := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if exp < 1<<30 { // saturate far beyond any length that matters
				exp = exp*10 + int(b[i]-'0')
			}
			i++
		}
		if i == k {
			return 0, intSyntax
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(b) {
		return 0, intSyntax
	}
	return digitsToInt(intPart, frac, exp, neg)
}

// digitsToInt returns ±(intPart frac) × 10^(exp-len(frac)), the digits read
// as one decimal integer, when that is a whole number in int64's range.
func digitsToInt(intPart, frac []byte, exp int, neg bool) (int64, intResult) {
	// Leading zeros carry nothing; trailing zeros move into the exponent.
	for len(intPart) > 0 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if len(intPart) == 0 {
		for len(frac) > 0 && frac[0] == '0' {
			frac = frac[1:]
			exp--
		}
	}
	exp -= len(frac)
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
		exp++
	}
	if len(frac) == 0 {
		for len(intPart) > 0 && intPart[len(intPart)-1] == '0' {
			intPart = intPart[:len(intPart)-1]
			exp++
		}
	}
	n := len(intPart) + len(frac) // significant digits
	if n == 0 {
		return 0, intOK // zero, whatever its exponent
	}
	if exp < 0 {
		return 0, intFraction // the last digit is not zero and sits right of the point
	}
	if n+exp > 19 {
		return 0, intRange // at least 10^19 > MaxInt64
	}
	var u uint64
	for _, c := range intPart {
		u = u*10 + uint64(c-'0')
	}
	for _, c := range frac {
		u = u*10 + uint64(c-'0')
	}
	for ; exp > 0; exp-- {
		u *= 10
	}
	if neg {
		if u > 1<<63 {
			return 0, intRange
		}
		return int64(-u), intOK //nolint:gosec // -(1<<63) wraps to MinInt64
	}
	if u > math.MaxInt64 {
		return 0, intRange
	}
	return int64(u), intOK
}

// intError names the field and why num is not a value of typ.
func intError(name string, typ arrow.DataType, num []byte, r intResult) error {
	if r == intFraction {
		return fmt.Errorf("field '%s': %s is not a whole number (%s)", name, clip(num), types.Name(typ))
	}
	return fmt.Errorf("field '%s': %s does not fit %s", name, clip(num), types.Name(typ))
}

// clip shortens a token's text for an error message.
func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

var layouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"}

func parseTime(b []byte, unit arrow.TimeUnit) (int64, bool) {
	if len(b) < 10 || b[4] != '-' {
		return 0, false
	}
	s := unsafeString(b)
	for _, l := range layouts {
		t, err := time.Parse(l, s)
		if err != nil {
			continue
		}
		switch unit {
		case arrow.Second:
			return t.Unix(), true
		case arrow.Millisecond:
			return t.UnixMilli(), true
		case arrow.Microsecond:
			return t.UnixMicro(), true
		default:
			return t.UnixNano(), true
		}
	}
	return 0, false
}

// strSpecial marks bytes that end the fast path of a string scan.
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return
}()

const (
	ones     = 0x0101010101010101
	highBits = 0x8080808080808080
	// flip maps '"' (0x22) to 0x20 and the bytes 0x20-0x21 above it, so
	// that "below 0x21" after the flip is exactly a control byte or a quote.
	flip        = 0x02 * ones
	backslashes = '\\' * ones
)

func hasZero(x uint64) uint64 { return (x - ones) &^ x & highBits }

func hasLess(x uint64, n byte) uint64 { return (x - uint64(n)*ones) &^ x & highBits }

// scanString scans the string whose quote is at i. It returns the content
// bounds, whether it holds escapes, whether it holds non-ASCII bytes, and
// the index after the closing quote.
func (d *Decoder) scanString(i int) (start, end int, esc, nonASCII bool, next int, err error) {
	b := d.line
	start = i + 1
	var high8 uint64 // the bytes seen word by word, or-ed (non-ASCII if a high bit is set)
	var high byte    // the same for the bytes seen one by one
	j := start
	// Eight bytes at a time. The lowest flagged byte of the mask is exactly
	// the first quote, backslash or control byte (the borrow of the
	// subtraction only flags bytes above a real match), so the scan jumps
	// straight to it. Flipping bit 1 maps the control bytes onto themselves
	// and '"' onto 0x20 (and ' ', '!' onto 0x22, 0x23): one comparison
	// finds both.
	for j+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[j:])
		m := hasLess(w^flip, 0x21) | hasZero(w^backslashes)
		if m == 0 {
			high8 |= w
			j += 8
			continue
		}
		k := bits.TrailingZeros64(m) >> 3
		high8 |= w & (1<<(8*uint(k)) - 1)
		j += k
		switch c := b[j]; c {
		case '"':
			return start, j, esc, (high8&highBits) != 0 || high >= 0x80, j + 1, nil
		case '\\':
			esc = true
			n, err := d.escape(j)
			if err != nil {
				return 0, 0, false, false, j, err
			}
			j = n
		default:
			return 0, 0, false, false, j, d.syntax(j, "control character %#02x in string", c)
		}
	}
	for j < len(b) {
		c := b[j]
		if !strSpecial[c] {
			high |= c
			j++
			continue
		}
		switch {
		case c == '"':
			return start, j, esc, (high8&highBits) != 0 || high >= 0x80, j + 1, nil
		case c == '\\':
			esc = true
			n, err := d.escape(j)
			if err != nil {
				return 0, 0, false, false, j, err
			}
			j = n
		default:
			return 0, 0, false, false, j, d.syntax(j, "control character %#02x in string", c)
		}
	}
	return 0, 0, false, false, len(b), d.syntax(len(b), "unterminated string")
}

// escape checks the escape sequence whose backslash is at j and returns
// the index after it.
func (d *Decoder) escape(j int) (int, error) {
	b := d.line
	if j+1 >= len(b) {
		return j, d.syntax(j, "unterminated string")
	}
	switch b[j+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return j + 2, nil
	case 'u':
		if j+6 > len(b) || !isHex4(b[j+2:j+6]) {
			return j, d.syntax(j, "bad \\u escape")
		}
		return j + 6, nil
	}
	return j, d.syntax(j, "bad escape \\%c", b[j+1])
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if hexVal(c) < 0 {
			return false
		}
	}
	return true
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

func hex4(b []byte) rune {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

// unescape appends the decoded form of a scanned (valid) string body.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := utf16.DecodeRune(r, hex4(s[i+2:])); r2 != utf8.RuneError {
						dst = utf8.AppendRune(dst, r2)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // " \ /
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// scanNumber checks the JSON number at i; isInt is false when it has a
// fraction or an exponent.
func (d *Decoder) scanNumber(i int) (next int, isInt bool, err error) {
	b := d.line
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return j, false, d.unexpected(j, "a digit")
	}
	isInt = true
	if j < len(b) && b[j] == '.' {
		isInt = false
		j++
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == k {
			return j, false, d.unexpected(j, "a digit")
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		isInt = false
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == k {
			return j, false, d.unexpected(j, "a digit")
		}
	}
	return j, isInt, nil
}

func (d *Decoder) skipScalar(i int) (int, error) {
	b := d.line
	switch c := b[i]; {
	case c == '"':
		_, _, _, _, j, err := d.scanString(i)
		return j, err
	case c == 't' && hasPrefix(b[i:], "true"):
		return i + 4, nil
	case c == 'f' && hasPrefix(b[i:], "false"):
		return i + 5, nil
	case c == 'n' && hasPrefix(b[i:], "null"):
		return i + 4, nil
	case c == '-' || (c >= '0' && c <= '9'):
		j, _, err := d.scanNumber(i)
		return j, err
	}
	return i, d.unexpected(i, "a value")
}

const maxDepth = 512

// skip checks and skips any value at i (set d.depth to 0 first).
func (d *Decoder) skip(i int) (int, error) {
	b := d.line
	if i >= len(b) {
		return i, d.unexpected(i, "a value")
	}
	open := b[i]
	if open != '[' && open != '{' {
		return d.skipScalar(i)
	}
	d.depth++
	if d.depth > maxDepth {
		return i, d.syntax(i, "nesting deeper than %d", maxDepth)
	}
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == closer {
		d.depth--
		return i + 1, nil
	}
	for {
		var err error
		if open == '{' {
			if i >= len(b) || b[i] != '"' {
				return i, d.unexpected(i, "a string key")
			}
			if _, _, _, _, i, err = d.scanString(i); err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, d.unexpected(i, "':' after an object key")
			}
			i = skipWS(b, i+1)
		}
		if i, err = d.skip(i); err != nil {
			return i, err
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == closer {
			d.depth--
			return i + 1, nil
		}
		return i, d.unexpected(i, fmt.Sprintf("',' or '%c'", closer))
	}
}
