// Command gen writes N generated Pinterest posts as JSON lines: the input of
// the flowrun-versus-Benthos benchmark (see bench/README.md).
//
//	go run ./bench/gen -n 1000000 -seed 42 -out bench/data/posts.jsonl
//
// The posts come from the project's seeded generator, so equal -n and -seed
// give the same file byte for byte.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flowrun/flowrun/operators/source/generate/posts"
)

func main() {
	n := flag.Int("n", 1_000_000, "number of posts")
	seed := flag.Int64("seed", 42, "generator seed")
	out := flag.String("out", "bench/data/posts.jsonl", "output file")
	flag.Parse()
	if err := run(*n, *seed, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(n int, seed int64, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	g := posts.New(seed)
	var p posts.Post
	var buf []byte
	var bytes int64
	for range n {
		g.Next(&p)
		buf = posts.AppendJSON(buf[:0], &p)
		buf = append(buf, '\n')
		bytes += int64(len(buf))
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: wrote %d posts (%d bytes, %.0f bytes/post) to %s\n", n, bytes, float64(bytes)/float64(max(n, 1)), out)
	return nil
}
