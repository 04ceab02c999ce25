// Command pqread is the lake benchmark's baseline reader: it reads every
// Parquet file under a folder with arrow-go's pqarrow alone (all columns,
// batches of 64Ki rows) and prints the rows and the time taken.
//
//	go run ./bench/lake/pqread bench/data/lake
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pqread DIR")
		os.Exit(2)
	}
	t0 := time.Now()
	var rows, files int64
	err := filepath.WalkDir(os.Args[1], func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != os.Args[1] && (strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".parquet") || strings.HasPrefix(name, ".") {
			return nil
		}
		files++
		pf, err := pqfile.OpenParquetFile(path, false)
		if err != nil {
			return err
		}
		defer pf.Close()
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 * 1024}, memory.DefaultAllocator)
		if err != nil {
			return err
		}
		rr, err := fr.GetRecordReader(context.Background(), nil, nil)
		if err != nil {
			return err
		}
		defer rr.Release()
		for {
			rec, err := rr.Read()
			if errors.Is(err, io.EOF) || (err == nil && rec == nil) {
				return nil
			}
			if err != nil {
				return err
			}
			rows += rec.NumRows()
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pqread:", err)
		os.Exit(1)
	}
	el := time.Since(t0)
	fmt.Printf("pqread: %d files, %d rows in %s (%.0f rows/s)\n", files, rows, el.Round(time.Millisecond), float64(rows)/el.Seconds())
}
