package win

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Group keys are interned in a keyTable: each distinct key (with its
// partition in per_partition mode) gets a small id, its encoded bytes live
// in one arena, and an open-addressing table finds the id from the bytes.
// A million distinct keys thus cost a few slices, not a million strings
// and map entries.
//
// The encoding is order-preserving: comparing two keys' bytes compares
// their values column by column the way the output promises (nulls first,
// then numbers, strings and booleans in their natural order, NaN before
// every other float), so emission sorts keys without decoding them.
const (
	tagNull byte = 0x00
	tagNaN  byte = 0x01 // floats: NaN sorts before the numbers
	tagVal  byte = 0x02
)

// encodeKey appends the order-preserving encoding of v's row r to b.
func encodeKey(b []byte, v *view, r int32) []byte {
	if v.null(r) {
		return append(b, tagNull)
	}
	switch v.k {
	case kString:
		s := v.str.Value(int(r))
		b = append(b, tagVal)
		// 0x00 is escaped as 0x00 0xff and the value ends with 0x00 0x00,
		// so a value that is a prefix of another sorts first.
		for {
			i := indexZero(s)
			if i < 0 {
				b = append(b, s...)
				break
			}
			b = append(b, s[:i+1]...)
			b = append(b, 0xff)
			s = s[i+1:]
		}
		return append(b, 0, 0)
	case kFloat:
		f := v.float(r)
		if f != f {
			return binary.BigEndian.AppendUint64(append(b, tagNaN), math.Float64bits(f))
		}
		u := math.Float64bits(f)
		if u>>63 != 0 {
			u = ^u
		} else {
			u |= 1 << 63
		}
		return binary.BigEndian.AppendUint64(append(b, tagVal), u)
	case kBool:
		if v.b.Value(int(r)) {
			return append(b, tagVal, 1)
		}
		return append(b, tagVal, 0)
	}
	return binary.BigEndian.AppendUint64(append(b, tagVal), uint64(v.int(r))^(1<<63))
}

func indexZero(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// keyDecoder appends encoded keys to the output's key columns.
type keyDecoder struct {
	kinds []colKind
	buf   []byte
}

// put decodes one key's column values from enc onto the builders bs.
func (d *keyDecoder) put(enc []byte, bs []array.Builder) {
	for i, k := range d.kinds {
		tag := enc[0]
		enc = enc[1:]
		if tag == tagNull {
			bs[i].AppendNull()
			continue
		}
		switch k {
		case kString:
			// The common case holds no escaped zero: the value is the
			// bytes up to the terminator.
			end := bytes.IndexByte(enc, 0)
			if enc[end+1] == 0 {
				bs[i].(*array.StringBuilder).BinaryBuilder.Append(enc[:end])
				enc = enc[end+2:]
				continue
			}
			d.buf = d.buf[:0]
			for {
				end := bytes.IndexByte(enc, 0)
				d.buf = append(d.buf, enc[:end]...)
				esc := enc[end+1]
				enc = enc[end+2:]
				if esc == 0 {
					break
				}
				d.buf = append(d.buf, 0)
			}
			bs[i].(*array.StringBuilder).BinaryBuilder.Append(d.buf)
		case kFloat:
			u := binary.BigEndian.Uint64(enc)
			enc = enc[8:]
			if tag == tagVal {
				if u>>63 != 0 {
					u &^= 1 << 63
				} else {
					u = ^u
				}
			}
			bs[i].(*array.Float64Builder).Append(math.Float64frombits(u))
		case kBool:
			bs[i].(*array.BooleanBuilder).Append(enc[0] == 1)
			enc = enc[1:]
		default:
			x := int64(binary.BigEndian.Uint64(enc) ^ (1 << 63))
			enc = enc[8:]
			switch b := bs[i].(type) {
			case *array.Int64Builder:
				b.Append(x)
			case *array.Int32Builder:
				b.Append(int32(x))
			case *array.TimestampBuilder:
				b.Append(arrow.Timestamp(x))
			}
		}
	}
}

// keyTable interns encoded keys. Entries of the open-addressing table
// (linear probing, at most half full) hold 32 bits of the key's hash and
// its id + 1 (0 is an empty entry). A removed key stays in the table and
// the arena as dead until a sweep rebuilds both from the live keys; a dead
// key found again comes back with its id, so keys that recur window after
// window are not inserted anew each time.
type keyTable struct {
	seed maphash.Seed
	// hash is maphash over the encoded key; tests replace it to force
	// collisions.
	hash func(seed maphash.Seed, b []byte) uint64

	tab  []uint64 // hash<<32 | id+1
	ids  []keyEnt // by id
	free []int32
	live int
	dead int

	arena []byte
}

// keyEnt is what a key id holds; one entry, so a lookup touches one
// cache line for all of it.
type keyEnt struct {
	off, n uint32 // its bytes in the arena
	h      uint32 // its hash
	refs   int32  // live groups of the key; dead: -1, free: -2
	// The key's group in the unit it was last added to: the next row of
	// the key most often goes to the same window.
	lastUnit uint32
	lastSlot int32
}

const (
	dead = -1 // in the table, not used
	free = -2 // not in the table
)

// keyCost is the bytes a key holds beyond its encoding: its entry of the
// table (counted twice, the table being at most half full) and its keyEnt.
const keyCost = 2*8 + int64(unsafe.Sizeof(keyEnt{}))

func newKeyTable() keyTable {
	return keyTable{seed: maphash.MakeSeed(), hash: maphash.Bytes, tab: make([]uint64, 16)}
}

// bytes is the memory held for keys, dead ones included.
func (t *keyTable) bytes() int64 {
	return int64(t.live+t.dead)*keyCost + int64(len(t.arena))
}

func (t *keyTable) key(id int32) []byte {
	e := &t.ids[id]
	return t.arena[e.off : e.off+e.n : e.off+e.n]
}

// keyString is the key's bytes as a string sharing the arena: valid until
// the next insert, removal or sweep.
func (t *keyTable) keyString(id int32) string {
	b := t.key(id)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// find returns the id of enc and false, or makes it live with no
// references (inserted, or back from dead) and returns its id and true.
func (t *keyTable) find(enc []byte) (int32, bool) {
	h := uint32(t.hash(t.seed, enc))
	mask := uint32(len(t.tab) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		e := t.tab[i]
		if e == 0 {
			break
		}
		if uint32(e>>32) == h {
			if id := int32(uint32(e)) - 1; bytes.Equal(t.key(id), enc) {
				if t.ids[id].refs != dead {
					return id, false
				}
				t.ids[id].refs = 0
				t.dead--
				t.live++
				return id, true
			}
		}
	}
	if 2*(t.live+t.dead+1) > len(t.tab) {
		if t.dead >= t.live {
			t.sweep()
		}
		if 2*(t.live+t.dead+1) > len(t.tab) {
			t.resize(2 * len(t.tab))
		}
	}
	var id int32
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		id = int32(len(t.ids))
		t.ids = append(t.ids, keyEnt{})
	}
	if len(t.arena)+len(enc) > math.MaxUint32 {
		panic("win: key arena over 4 GiB") // max_state_bytes stops long before
	}
	t.ids[id] = keyEnt{off: uint32(len(t.arena)), n: uint32(len(enc)), h: h}
	t.arena = append(t.arena, enc...)
	t.live++
	t.place(uint64(h)<<32 | uint64(id+1))
	return id, true
}

func (t *keyTable) place(e uint64) {
	mask := uint32(len(t.tab) - 1)
	i := uint32(e>>32) & mask
	for t.tab[i] != 0 {
		i = (i + 1) & mask
	}
	t.tab[i] = e
}

func (t *keyTable) resize(n int) {
	old := t.tab
	t.tab = make([]uint64, n)
	for _, e := range old {
		if e != 0 {
			t.place(e)
		}
	}
}

// remove makes key id dead (it has no reference left).
func (t *keyTable) remove(id int32) {
	t.ids[id].refs = dead
	t.live--
	t.dead++
	if t.live == 0 {
		t.reset()
	}
}

// reset forgets every key.
func (t *keyTable) reset() {
	t.arena = t.arena[:0]
	t.ids, t.free = t.ids[:0], t.free[:0]
	t.live, t.dead = 0, 0
	if len(t.tab) > 1024 {
		t.tab = make([]uint64, 16) // let a spike's table go
	} else {
		clear(t.tab)
	}
}

// maybeSweep sweeps when dead keys outnumber live ones well beyond what
// recurring keys need.
func (t *keyTable) maybeSweep() {
	if t.dead > 2*t.live+4096 {
		t.sweep()
	}
}

// sweep frees the dead keys: the live keys move to a new arena and table.
func (t *keyTable) sweep() {
	if t.dead == 0 {
		return
	}
	size := 16
	for size < 2*t.live+2 {
		size *= 2
	}
	if size < len(t.tab)/4 {
		t.tab = make([]uint64, size)
	} else {
		clear(t.tab)
	}
	var n int
	for i := range t.ids {
		if e := &t.ids[i]; e.refs >= 0 {
			n += int(e.n)
		}
	}
	a := make([]byte, 0, n+n/4)
	for i := range t.ids {
		switch e := &t.ids[i]; {
		case e.refs >= 0:
			o := uint32(len(a))
			a = append(a, t.key(int32(i))...)
			e.off = o
			t.place(uint64(e.h)<<32 | uint64(i+1))
		case e.refs == dead:
			*e = keyEnt{refs: free}
			t.free = append(t.free, int32(i))
		}
	}
	t.arena, t.dead = a, 0
}
