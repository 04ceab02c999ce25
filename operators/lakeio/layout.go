package lakeio

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowrun/flowrun/runtime/batch"
)

// NullPartition is the folder value of a null partition value (Hive's).
const NullPartition = "__HIVE_DEFAULT_PARTITION__"

// EscapeValue escapes a partition value for a folder name the way Hive does:
// characters that are not safe in a path become %XX.
func EscapeValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte("\"#%'*/:=?\\{[]^", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// UnescapeValue reverses EscapeValue.
func UnescapeValue(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) {
			if n, err := strconv.ParseUint(v[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// SplitPartition parses a folder name "key=value" (value unescaped).
func SplitPartition(dir string) (key, value string, ok bool) {
	k, v, ok := strings.Cut(strings.TrimSuffix(dir, "/"), "=")
	if !ok || k == "" {
		return "", "", false
	}
	return k, UnescapeValue(v), true
}

// Name is what a data file's name says about its rows: every row it holds
// came from offsets First..Last of one partition of one topic. A replay of
// those offsets rewrites (or removes) this file instead of adding another.
type Name struct {
	Topic     string
	Partition int32
	First     int64
	Last      int64
}

// String is the file name: topic-pN-first-last.parquet, offsets zero-padded
// so names sort by offset.
func (n Name) String() string {
	return fmt.Sprintf("%s-p%d-%019d-%019d.parquet", n.Topic, n.Partition, n.First, n.Last)
}

var nameRE = regexp.MustCompile(`^(.+)-p(\d+)-(\d{19})-(\d{19})\.parquet$`)

// ParseName parses a file name made by Name.String.
func ParseName(base string) (Name, bool) {
	m := nameRE.FindStringSubmatch(base)
	if m == nil {
		return Name{}, false
	}
	p, err1 := strconv.ParseInt(m[2], 10, 32)
	f, err2 := strconv.ParseInt(m[3], 10, 64)
	l, err3 := strconv.ParseInt(m[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Name{}, false
	}
	return Name{Topic: m[1], Partition: int32(p), First: f, Last: l}, true
}

// Segment is the run of rows one source batch put in a file, in row order;
// a file's footer lists them (key SegmentsKey), so a replay that starts in
// the middle of a file can keep exactly the rows before it.
type Segment struct {
	First, Last int64
	Rows        int64
}

// SegmentsKey is the Parquet key-value metadata key holding a file's segments.
const SegmentsKey = "flowrun.segments"

// FormatSegments renders segments as "first:last:rows,...".
func FormatSegments(segs []Segment) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d:%d", s.First, s.Last, s.Rows)
	}
	return b.String()
}

// ParseSegments parses FormatSegments' output.
func ParseSegments(s string) ([]Segment, error) {
	if s == "" {
		return nil, nil
	}
	var out []Segment
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(part, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("bad segment %q", part)
		}
		var seg Segment
		var err error
		if seg.First, err = strconv.ParseInt(f[0], 10, 64); err == nil {
			if seg.Last, err = strconv.ParseInt(f[1], 10, 64); err == nil {
				seg.Rows, err = strconv.ParseInt(f[2], 10, 64)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("bad segment %q", part)
		}
		out = append(out, seg)
	}
	return out, nil
}

// RecordsDir is where a sink keeps its commit records, per sink node.
func RecordsDir(node string) string { return "_flowrun/" + EscapeValue(node) + "/" }

// Record lists data files a sink is about to commit (written before the
// files become visible), so that after a crash and a replay the sink finds
// the files the replayed offsets are in without listing the whole lake.
type Record struct {
	Files []RecordFile `json:"files"`
}

// RecordFile is one committed (or about to be) data file. A file of one
// source partition has Name (and Source); a file of batches that carried
// several positions (a merged acknowledgement, e.g. after an aggregate) has
// Ranges, the union of its batches' positions.
type RecordFile struct {
	Key string `json:"key"` // relative to the lake root
	Name
	Source string           // the source node of Name's offsets
	Ranges []batch.Position // merged files: every position their rows came from
	At     int64            // unix seconds when it was recorded
}

// Cover returns the positions the file's rows came from.
func (f RecordFile) Cover() []batch.Position {
	if f.Merged() || f.Topic == "" {
		return f.Ranges
	}
	return []batch.Position{{Source: f.Source, Topic: f.Topic, Partition: f.Partition, First: f.First, Last: f.Last}}
}

// Merged reports whether the file holds batches of several positions.
func (f RecordFile) Merged() bool { return len(f.Ranges) > 0 }

// jsonPos is a position as records and footers write it.
type jsonPos struct {
	Source    string `json:"source,omitempty"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	First     int64  `json:"first"`
	Last      int64  `json:"last"`
}

func toJSONPos(ps []batch.Position) []jsonPos {
	if len(ps) == 0 {
		return nil
	}
	out := make([]jsonPos, len(ps))
	for i, p := range ps {
		out[i] = jsonPos{p.Source, p.Topic, p.Partition, p.First, p.Last}
	}
	return out
}

func fromJSONPos(js []jsonPos) []batch.Position {
	if len(js) == 0 {
		return nil
	}
	out := make([]batch.Position, len(js))
	for i, p := range js {
		out[i] = batch.Position{Source: p.Source, Topic: p.Topic, Partition: p.Partition, First: p.First, Last: p.Last}
	}
	return out
}

// MarshalJSON keeps the record small and explicit.
func (f RecordFile) MarshalJSON() ([]byte, error) {
	m := map[string]any{"key": f.Key, "at": f.At}
	if f.Merged() {
		m["ranges"] = toJSONPos(f.Ranges)
	} else {
		m["topic"], m["partition"], m["first"], m["last"] = f.Topic, f.Partition, f.First, f.Last
		if f.Source != "" {
			m["source"] = f.Source
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads MarshalJSON's output.
func (f *RecordFile) UnmarshalJSON(b []byte) error {
	var v struct {
		Key       string    `json:"key"`
		Source    string    `json:"source"`
		Topic     string    `json:"topic"`
		Partition int32     `json:"partition"`
		First     int64     `json:"first"`
		Last      int64     `json:"last"`
		Ranges    []jsonPos `json:"ranges"`
		At        int64     `json:"at"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = RecordFile{Key: v.Key, Name: Name{Topic: v.Topic, Partition: v.Partition, First: v.First, Last: v.Last},
		Source: v.Source, Ranges: fromJSONPos(v.Ranges), At: v.At}
	return nil
}

// PositionsKey is the Parquet key-value metadata key of a merged file's
// segments: the rows of each batch, in row order, with all its positions.
const PositionsKey = "flowrun.positions"

// MergedSegment is the run of rows one batch with several positions put in
// a file.
type MergedSegment struct {
	Rows int64
	Pos  []batch.Position
}

type jsonSeg struct {
	Rows int64     `json:"rows"`
	Pos  []jsonPos `json:"pos"`
}

// FormatMergedSegments renders segments as JSON.
func FormatMergedSegments(segs []MergedSegment) string {
	js := make([]jsonSeg, len(segs))
	for i, s := range segs {
		js[i] = jsonSeg{Rows: s.Rows, Pos: toJSONPos(s.Pos)}
	}
	b, _ := json.Marshal(js)
	return string(b)
}

// ParseMergedSegments parses FormatMergedSegments' output.
func ParseMergedSegments(s string) ([]MergedSegment, error) {
	var js []jsonSeg
	if err := json.Unmarshal([]byte(s), &js); err != nil {
		return nil, fmt.Errorf("bad %s: %w", PositionsKey, err)
	}
	out := make([]MergedSegment, len(js))
	for i, j := range js {
		if j.Rows < 0 {
			return nil, fmt.Errorf("bad %s: %d rows", PositionsKey, j.Rows)
		}
		out[i] = MergedSegment{Rows: j.Rows, Pos: fromJSONPos(j.Pos)}
	}
	return out, nil
}

// Records is a sink's set of commit records, loaded at start.
type Records struct {
	store Store
	dir   string
	seq   int64
	keys  []string // record objects read at load, oldest first
	Files []RecordFile
}

// LoadRecords reads every record under dir.
func LoadRecords(ctx context.Context, s Store, dir string) (*Records, error) {
	ents, err := s.List(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	r := &Records{store: s, dir: dir, seq: time.Now().UnixNano()}
	seen := map[string]int{}
	for _, e := range ents {
		base := Base(e.Key)
		if e.Dir || !strings.HasSuffix(base, ".json") || IsTemp(base) {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSuffix(base, ".json"), 10, 64); err == nil && n >= r.seq {
			r.seq = n + 1
		}
		data, err := ReadAll(ctx, s, e.Key)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", e.Key, err)
		}
		var rec Record
		if err := json.Unmarshal(data, &rec); err != nil {
			return nil, fmt.Errorf("reading %s: %w", e.Key, err)
		}
		r.keys = append(r.keys, e.Key)
		for _, f := range rec.Files {
			if i, dup := seen[f.Key]; dup {
				r.Files[i] = f
				continue
			}
			seen[f.Key] = len(r.Files)
			r.Files = append(r.Files, f)
		}
	}
	return r, nil
}

// Append writes a new record listing files.
func (r *Records) Append(ctx context.Context, files []RecordFile) error {
	data, err := json.Marshal(Record{Files: files})
	if err != nil {
		return err
	}
	r.seq++
	key := fmt.Sprintf("%s%019d.json", r.dir, r.seq)
	if err := WriteAll(ctx, r.store, key, data); err != nil {
		return err
	}
	r.keys = append(r.keys, key)
	return nil
}

// Count is the number of record objects.
func (r *Records) Count() int { return len(r.keys) }

// Compact replaces every record by one listing keep.
func (r *Records) Compact(ctx context.Context, keep []RecordFile) error {
	old := r.keys
	r.keys = nil
	sort.Slice(keep, func(i, j int) bool { return keep[i].Key < keep[j].Key })
	if err := r.Append(ctx, keep); err != nil {
		r.keys = append(old, r.keys...)
		return err
	}
	for _, k := range old {
		if err := r.store.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}
