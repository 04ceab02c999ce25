package win

import "hash/maphash"

// SetKeyHash replaces the hash of w's key table, for tests that force
// collisions. Call it before the first batch.
func SetKeyHash(w *Window, h func(maphash.Seed, []byte) uint64) { w.keys.hash = h }
