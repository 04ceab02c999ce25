package hbaseclient

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowrun/flowrun/internal/testenv"
)

// Table returns a fresh table name for a test and drops it at the end.
func testTable(t *testing.T, c *Conn, families ...string) string {
	t.Helper()
	name := fmt.Sprintf("t_%s_%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")), time.Now().UnixNano())
	ctx := context.Background()
	if err := c.CreateTable(ctx, name, families); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c2, err := Dial(ctx, c.Addr(), Options{})
		if err == nil {
			_ = c2.DropTable(ctx, name)
			c2.Close()
		}
	})
	return name
}

func TestPutScanGet(t *testing.T) {
	addr := testenv.HBase(t)
	ctx := context.Background()
	c, err := Dial(ctx, addr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	table := testTable(t, c, "a", "b")
	ok, err := c.TableExists(ctx, table)
	if err != nil || !ok {
		t.Fatalf("TableExists = %v, %v", ok, err)
	}
	if names, err := c.Tables(ctx, table[:len(table)-3]+".*"); err != nil || len(names) != 1 || names[0] != table {
		t.Fatalf("Tables = %q, %v; want [%s]", names, err, table)
	}
	var puts []Put
	for i := range 2500 {
		puts = append(puts, Put{Row: []byte(fmt.Sprintf("r%05d", i)), Cells: []Cell{
			{Family: []byte("a"), Qualifier: []byte("s"), Value: []byte(fmt.Sprint("v", i))},
			{Family: []byte("b"), Qualifier: []byte("n"), Value: AppendInt64(nil, int64(i)*-3)},
		}})
	}
	if err := c.PutMultiple(ctx, table, puts); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Scan(ctx, table, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2500 {
		t.Fatalf("scanned %d rows, want 2500", len(rows))
	}
	for i, r := range rows {
		if string(r.Key) != fmt.Sprintf("r%05d", i) || len(r.Cells) != 2 {
			t.Fatalf("row %d: %q with %d cells", i, r.Key, len(r.Cells))
		}
		n, err := Decode(EncInt64, r.Cells[1].Value)
		if err != nil || n != int64(i)*-3 || string(r.Cells[0].Value) != fmt.Sprint("v", i) {
			t.Fatalf("row %d: cells %q %v %v", i, r.Cells[0].Value, n, err)
		}
	}
	limited, err := c.Scan(ctx, table, []byte("r00010"), []byte("r00020"), 5)
	if err != nil || len(limited) != 5 || string(limited[0].Key) != "r00010" {
		t.Fatalf("limited scan: %d rows, %v", len(limited), err)
	}
	got, err := c.Get(ctx, table, [][]byte{[]byte("r00007"), []byte("nope")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Equal(got[0].Cells[0].Value, []byte("v7")) || len(got[1].Cells) != 0 {
		t.Fatalf("get: %+v", got)
	}
}

func TestErrorsClassified(t *testing.T) {
	addr := testenv.HBase(t)
	ctx := context.Background()
	c, err := Dial(ctx, addr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	table := testTable(t, c, "a")
	// An unknown family: HBase refuses the rows themselves.
	err = c.PutMultiple(ctx, table, []Put{{Row: []byte("x"), Cells: []Cell{{Family: []byte("zz"), Qualifier: []byte("q"), Value: []byte("v")}}}})
	if err == nil || Classify(err) != Permanent {
		t.Fatalf("unknown family: %v (%v)", err, Classify(err))
	}
	t.Logf("unknown family: %v", err)
	if c.Broken() {
		t.Fatal("a TIOError must leave the connection usable")
	}
	// A missing table: the gateway says only "Failed 1 action" (the sink
	// checks the table exists before writing, so it never gets here).
	if ok, err := c.TableExists(ctx, table+"_missing"); ok || err != nil {
		t.Fatalf("TableExists(missing) = %v, %v", ok, err)
	}
	if err = c.PutMultiple(ctx, table+"_missing", []Put{{Row: []byte("x"), Cells: []Cell{{Family: []byte("a"), Qualifier: []byte("q"), Value: []byte("v")}}}}); err == nil {
		t.Fatal("put into a missing table succeeded")
	}
	// The connection still works after both.
	if err := c.PutMultiple(ctx, table, []Put{{Row: []byte("ok"), Cells: []Cell{{Family: []byte("a"), Qualifier: []byte("q"), Value: []byte("v")}}}}); err != nil {
		t.Fatal(err)
	}
	// Nothing listens: retryable.
	_, err = Dial(ctx, "127.0.0.1:1", Options{ConnectTimeout: time.Second})
	if err == nil || Classify(err) != Retryable {
		t.Fatalf("refused: %v", err)
	}
}
