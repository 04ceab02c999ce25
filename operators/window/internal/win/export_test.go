package win

import "hash/maphash"

// SetKeyHash replaces the hash of w's key table, for tests that force
// collisions. Call it before the first batch.
func SetKeyHash(w *Window, h func(maphash.Seed, []byte) uint64) { w.keys.hash = h }

// SetUnitSeq sets the number of the last window made, to test its wrap.
func SetUnitSeq(w *Window, n uint32) { w.unitSeq = n }
