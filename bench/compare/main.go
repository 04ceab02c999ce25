// Command compare checks that two JSON-lines outputs of the benchmark hold
// the same cleaned records, matched by unique_id:
//
//	go run ./bench/compare bench/data/flowrun.jsonl bench/data/benthos.jsonl
//
// Records are normalised before comparing: key order is ignored, a key whose
// value is null counts as absent, and numbers compare by value (1200, 1200.0
// and 1.2e3 are equal). Duplicate unique_ids are compared as multisets, so
// the two sides may write records in any order. Every record is compared;
// for records that differ, the fields that differ are counted and a few
// examples are printed. The exit status is 1 when the outputs differ.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
)

type digest [16]byte

func main() {
	key := flag.String("key", "unique_id", "field that identifies a record")
	examples := flag.Int("examples", 3, "differing records to print")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: compare [-key unique_id] [-examples 3] A.jsonl B.jsonl")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	same, err := run(os.Stdout, flag.Arg(0), flag.Arg(1), *key, *examples)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	if !same {
		os.Exit(1)
	}
}

// side is one output file digested: per key, the digests of its records.
type side struct {
	name    string
	records int
	noKey   int
	byKey   map[string][]digest
}

func run(w io.Writer, a, b, key string, examples int) (bool, error) {
	sa, err := digestFile(a, key)
	if err != nil {
		return false, err
	}
	sb, err := digestFile(b, key)
	if err != nil {
		return false, err
	}
	var onlyA, onlyB, differ, same []string
	for k, da := range sa.byKey {
		db, ok := sb.byKey[k]
		switch {
		case !ok:
			onlyA = append(onlyA, k)
		case slices.Equal(da, db):
			same = append(same, k)
		default:
			differ = append(differ, k)
		}
	}
	for k := range sb.byKey {
		if _, ok := sa.byKey[k]; !ok {
			onlyB = append(onlyB, k)
		}
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	sort.Strings(differ)
	fmt.Fprintf(w, "A %s: %d records, %d distinct %s, %d without %s\n", a, sa.records, len(sa.byKey), key, sa.noKey, key)
	fmt.Fprintf(w, "B %s: %d records, %d distinct %s, %d without %s\n", b, sb.records, len(sb.byKey), key, sb.noKey, key)
	fmt.Fprintf(w, "%s identical: %d; differing: %d; only in A: %d; only in B: %d\n", key, len(same), len(differ), len(onlyA), len(onlyB))
	for i, k := range onlyA {
		if i == examples {
			break
		}
		fmt.Fprintf(w, "  only in A: %s\n", k)
	}
	for i, k := range onlyB {
		if i == examples {
			break
		}
		fmt.Fprintf(w, "  only in B: %s\n", k)
	}
	if len(differ) > 0 {
		if err := explain(w, a, b, key, differ, examples); err != nil {
			return false, err
		}
	}
	ok := len(differ) == 0 && len(onlyA) == 0 && len(onlyB) == 0 && sa.records == sb.records && sa.noKey == 0 && sb.noKey == 0
	if ok {
		fmt.Fprintln(w, "SAME: both outputs hold the same cleaned records")
	} else {
		fmt.Fprintln(w, "DIFFERENT")
	}
	return ok, nil
}

func digestFile(path, key string) (*side, error) {
	s := &side{name: path, byKey: make(map[string][]digest)}
	err := eachRecord(path, func(line int, m map[string]any) error {
		s.records++
		id, ok := m[key].(string)
		if !ok {
			s.noKey++
			return nil
		}
		s.byKey[id] = append(s.byKey[id], digestOf(m))
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, ds := range s.byKey {
		slices.SortFunc(ds, func(x, y digest) int { return bytes.Compare(x[:], y[:]) })
	}
	return s, nil
}

// eachRecord calls fn with each line of path decoded and normalised.
func eachRecord(path string, fn func(line int, m map[string]any) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 1<<20))
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return fmt.Errorf("%s:%d: %v", path, line, err)
		}
		normalise(m)
		if err := fn(line, m); err != nil {
			return err
		}
	}
	return sc.Err()
}

// normalise drops null-valued keys and rewrites numbers canonically, in
// place and recursively.
func normalise(m map[string]any) {
	for k, v := range m {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = normValue(v)
	}
}

func normValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		return canonNumber(x)
	case map[string]any:
		normalise(x)
		return x
	case []any:
		for i := range x {
			x[i] = normValue(x[i])
		}
		return x
	}
	return v
}

// canonNumber writes integers (also 1200.0 and 1.2e3) as digits and other
// numbers in Go's shortest float form, wrapped so they stay distinct from
// strings.
func canonNumber(n json.Number) json.RawMessage {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return json.RawMessage(strconv.FormatInt(i, 10))
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return json.RawMessage(n)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return json.RawMessage(strconv.FormatInt(int64(f), 10))
	}
	return json.RawMessage(strconv.FormatFloat(f, 'g', -1, 64))
}

func canonical(m map[string]any) []byte {
	b, err := json.Marshal(m) // map keys are sorted
	if err != nil {
		panic(err) // values came from json.Decode; cannot fail
	}
	return b
}

func digestOf(m map[string]any) digest {
	h := sha256.Sum256(canonical(m))
	var d digest
	copy(d[:], h[:])
	return d
}

// explain re-reads both files for the differing keys, counts which fields
// differ and prints a few examples.
func explain(w io.Writer, a, b, key string, differ []string, examples int) error {
	want := make(map[string]bool, len(differ))
	for _, k := range differ {
		want[k] = true
	}
	collect := func(path string) (map[string][]map[string]any, error) {
		out := make(map[string][]map[string]any)
		err := eachRecord(path, func(_ int, m map[string]any) error {
			if id, ok := m[key].(string); ok && want[id] {
				out[id] = append(out[id], m)
			}
			return nil
		})
		return out, err
	}
	ra, err := collect(a)
	if err != nil {
		return err
	}
	rb, err := collect(b)
	if err != nil {
		return err
	}
	fieldDiffs := map[string]int{}
	shown := 0
	for _, k := range differ {
		xa, xb := ra[k], rb[k]
		if len(xa) != len(xb) {
			fieldDiffs[fmt.Sprintf("(record count for one %s)", key)]++
		} else if len(xa) == 1 {
			for _, f := range fieldsOf(xa[0], xb[0]) {
				if !bytes.Equal(canonical(map[string]any{f: xa[0][f]}), canonical(map[string]any{f: xb[0][f]})) {
					fieldDiffs[f]++
				}
			}
		} else {
			fieldDiffs[fmt.Sprintf("(duplicate %s, records differ)", key)]++
		}
		if shown < examples {
			shown++
			fmt.Fprintf(w, "  %s %s:\n", key, k)
			for _, m := range xa {
				fmt.Fprintf(w, "    A %s\n", canonical(m))
			}
			for _, m := range xb {
				fmt.Fprintf(w, "    B %s\n", canonical(m))
			}
		}
	}
	names := make([]string, 0, len(fieldDiffs))
	for f := range fieldDiffs {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		fmt.Fprintf(w, "  field %s differs in %d records\n", f, fieldDiffs[f])
	}
	return nil
}

func fieldsOf(x, y map[string]any) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]any{x, y} {
		for f := range m {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return out
}
