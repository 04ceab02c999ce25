// Command gateways measures HBase's two gateways side by side on the same
// rows: Thrift2 putMultiple (github.com/apache/thrift, binary protocol, one
// connection per request in flight) and REST (a JSON CellSet PUT per
// request, keep-alive). Each round writes N rows of 10 cells (~450 bytes,
// shaped like a Pinterest post) in requests of B rows with P requests in
// flight, then counts the rows back with a Thrift2 scan.
//
//	go run ./bench/hbase/gateways -rows 200000 -batch 1000 -parallel 1,4
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowrun/flowrun/operators/hbaseclient"
)

func main() {
	thriftAddr := flag.String("thrift", envOr("HBASE_THRIFT_ADDR", "127.0.0.1:9090"), "Thrift2 gateway host:port")
	restURL := flag.String("rest", envOr("HBASE_REST_URL", "http://127.0.0.1:8080"), "REST gateway base URL")
	rows := flag.Int("rows", 100000, "rows per round")
	batch := flag.Int("batch", 1000, "rows per request")
	par := flag.String("parallel", "1,4", "requests in flight, comma-separated rounds")
	flag.Parse()
	ctx := context.Background()
	admin, err := hbaseclient.Dial(ctx, *thriftAddr, hbaseclient.Options{})
	check(err)
	puts := makePuts(*rows)
	for _, ps := range strings.Split(*par, ",") {
		p, _ := strconv.Atoi(ps)
		for _, gw := range []string{"thrift2", "rest"} {
			table := fmt.Sprintf("bench_%s_%d_%d", gw, p, time.Now().UnixNano())
			check(admin.CreateTable(ctx, table, []string{"t", "n"}))
			t0 := time.Now()
			if gw == "thrift2" {
				check(runThrift(ctx, *thriftAddr, table, puts, *batch, p))
			} else {
				check(runREST(*restURL, table, puts, *batch, p))
			}
			el := time.Since(t0)
			got, err := admin.Scan(ctx, table, nil, nil, 0)
			check(err)
			if len(got) != *rows {
				check(fmt.Errorf("%s: read back %d rows, wrote %d", gw, len(got), *rows))
			}
			fmt.Printf("%-8s rows=%d batch=%d in_flight=%d  %.2fs  %.0f rows/s  (read back %d)\n",
				gw, *rows, *batch, p, el.Seconds(), float64(*rows)/el.Seconds(), len(got))
			check(admin.DropTable(ctx, table))
		}
	}
}

func makePuts(n int) []hbaseclient.Put {
	cats := []string{"art", "beauty", "diy", "education", "finance", "travel"}
	puts := make([]hbaseclient.Put, n)
	for i := range puts {
		c := cats[i%len(cats)]
		cell := func(f, q, v string) hbaseclient.Cell {
			return hbaseclient.Cell{Family: []byte(f), Qualifier: []byte(q), Value: []byte(v)}
		}
		puts[i] = hbaseclient.Put{Row: []byte(fmt.Sprintf("%02x|%s|%08d-aaaa-bbbb-cccc-dddddddddddd", i%256, c, i)), Cells: []hbaseclient.Cell{
			cell("t", "title", fmt.Sprintf("Post number %d about %s and other things", i, c)),
			cell("t", "description", strings.Repeat("some description text ", 6)),
			cell("t", "poster_name", "A poster name"),
			cell("t", "tag_list", `["tag one","tag two","tag three"]`),
			cell("t", "image_src", "https://i.pinimg.com/originals/aa/bb/cc/aabbccddeeff.jpg"),
			cell("t", "save_location", "/data/"+c),
			cell("t", "is_image_or_video", "image"),
			{Family: []byte("n"), Qualifier: []byte("follower_count"), Value: hbaseclient.AppendInt64(nil, int64(i*37))},
			{Family: []byte("n"), Qualifier: []byte("downloaded"), Value: hbaseclient.AppendBool(nil, i%2 == 0)},
			{Family: []byte("n"), Qualifier: []byte("index"), Value: hbaseclient.AppendInt64(nil, int64(i))},
		}}
	}
	return puts
}

func chunks(puts []hbaseclient.Put, batch int) chan []hbaseclient.Put {
	ch := make(chan []hbaseclient.Put)
	go func() {
		defer close(ch)
		for i := 0; i < len(puts); i += batch {
			ch <- puts[i:min(i+batch, len(puts))]
		}
	}()
	return ch
}

func runThrift(ctx context.Context, addr, table string, puts []hbaseclient.Put, batch, par int) error {
	ch := chunks(puts, batch)
	var wg sync.WaitGroup
	errs := make(chan error, par)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := hbaseclient.Dial(ctx, addr, hbaseclient.Options{})
			if err != nil {
				errs <- err
				for range ch {
				}
				return
			}
			defer c.Close()
			for b := range ch {
				if err := c.PutMultiple(ctx, table, b); err != nil {
					errs <- err
					for range ch {
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

type restCell struct {
	Column string `json:"column"`
	Value  string `json:"$"`
}
type restRow struct {
	Key  string     `json:"key"`
	Cell []restCell `json:"Cell"`
}
type restCellSet struct {
	Row []restRow `json:"Row"`
}

func runREST(base, table string, puts []hbaseclient.Put, batch, par int) error {
	ch := chunks(puts, batch)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: par}, Timeout: 2 * time.Minute}
	var wg sync.WaitGroup
	errs := make(chan error, par)
	b64 := base64.StdEncoding.EncodeToString
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range ch {
				var cs restCellSet
				for _, p := range b {
					r := restRow{Key: b64(p.Row)}
					for _, c := range p.Cells {
						r.Cell = append(r.Cell, restCell{Column: b64([]byte(string(c.Family) + ":" + string(c.Qualifier))), Value: b64(c.Value)})
					}
					cs.Row = append(cs.Row, r)
				}
				body, _ := json.Marshal(cs)
				req, _ := http.NewRequest(http.MethodPut, base+"/"+table+"/fakerow", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json")
				resp, err := client.Do(req)
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("REST PUT: %s", resp.Status)
				}
				if resp != nil {
					resp.Body.Close()
				}
				if err != nil {
					errs <- err
					for range ch {
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateways:", err)
		os.Exit(1)
	}
}
