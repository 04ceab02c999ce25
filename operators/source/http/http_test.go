package httpsrc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/flowrun/flowrun/operators/source/generate/posts"
	"github.com/flowrun/flowrun/runtime/batch"
	"github.com/flowrun/flowrun/runtime/op"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

type fixedClock struct{}

func (fixedClock) Now() time.Time                         { return t0 }
func (fixedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// fakeOut is an op.Output that records the unique_id and stamp of every row
// and finishes each batch's ack with fail() after delay or once hold closes.
type fakeOut struct {
	schema  *arrow.Schema
	fail    func() error
	emitErr error // Emit fails the batch and returns this
	delay   time.Duration
	hold    chan struct{}

	mu      sync.Mutex
	ids     []string
	index   []int64 // -1 for null
	stamps  []int64
	batches int
	wg      sync.WaitGroup
}

func (o *fakeOut) Schema() *arrow.Schema { return o.schema }

func (o *fakeOut) Reject(record, reason string) error { return errors.New("no dead letters") }

func (o *fakeOut) Emit(ctx context.Context, b batch.Batch) error {
	if o.emitErr != nil {
		b.Release(o.emitErr)
		return o.emitErr
	}
	o.mu.Lock()
	o.batches++
	ids := b.Rec.Column(b.Rec.Schema().FieldIndices("unique_id")[0]).(*array.String)
	st := b.Rec.Column(b.Rec.Schema().FieldIndices("ingested_at")[0]).(*array.Timestamp)
	idx := b.Rec.Column(b.Rec.Schema().FieldIndices("index")[0]).(*array.Int64)
	for i := range ids.Len() {
		o.ids = append(o.ids, ids.Value(i))
		if idx.IsNull(i) {
			o.index = append(o.index, -1)
		} else {
			o.index = append(o.index, idx.Value(i))
		}
		o.stamps = append(o.stamps, int64(st.Value(i)))
		if st.IsNull(i) {
			o.stamps[len(o.stamps)-1] = -1
		}
	}
	o.mu.Unlock()
	finish := func() {
		var err error
		if o.fail != nil {
			err = o.fail()
		}
		b.Release(err)
	}
	if o.delay == 0 && o.hold == nil {
		finish()
		return nil
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		if o.hold != nil {
			<-o.hold
		}
		time.Sleep(o.delay)
		finish()
	}()
	return nil
}

func (o *fakeOut) rows() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ids...)
}

type harness struct {
	t    testing.TB
	src  *Source
	out  *fakeOut
	url  string
	cl   *http.Client
	stop func() error
	mem  *memory.CheckedAllocator
}

func start(t testing.TB, cfg Config, out *fakeOut, batchRows int) *harness {
	t.Helper()
	return startWith(t, cfg, out, op.Resources{BatchRows: batchRows})
}

// startWith starts a source with res (its Node, Alloc, Clock and Log are set
// here).
func startWith(t testing.TB, cfg Config, out *fakeOut, res op.Resources) *harness {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	if cfg.Schema == nil {
		cfg.Schema = posts.Schema()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Stamp == "" {
		cfg.Stamp = DefaultStamp
	}
	res.Node, res.Alloc, res.Clock, res.Log = "in", mem, fixedClock{}, quiet
	src, err := New(cfg, res)
	if err != nil {
		t.Fatal(err)
	}
	out.schema = src.Schema()
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- src.Run(ctx, out) }()
	select {
	case <-src.Ready():
	case err := <-runErr:
		cancel()
		t.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	h := &harness{t: t, src: src, out: out, url: "http://" + src.Addr(), cl: &http.Client{Transport: tr, Timeout: 20 * time.Second}, mem: mem}
	var once sync.Once
	var stopErr error
	h.stop = func() error {
		once.Do(func() {
			cancel()
			stopErr = <-runErr
			out.wg.Wait()
			tr.CloseIdleConnections()
			mem.AssertSize(t, 0)
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (h *harness) post(path, ctype string, body []byte) reply {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) reply {
	resp, err := h.cl.Do(req)
	if err != nil {
		h.t.Errorf("%s %s: %v", req.Method, req.URL.Path, err)
		return reply{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		h.t.Errorf("%s %s: response is not JSON: %q", req.Method, req.URL.Path, raw)
	}
	return r
}

func genPosts(seed int64, n int) ([][]byte, []string) {
	g := posts.New(seed)
	var p posts.Post
	var bodies [][]byte
	var ids []string
	for range n {
		g.Next(&p)
		bodies = append(bodies, posts.AppendJSON(nil, &p))
		ids = append(ids, p.UniqueID)
	}
	return bodies, ids
}

func TestSinglePost(t *testing.T) {
	out := &fakeOut{}
	h := start(t, Config{}, out, 1024)
	bodies, ids := genPosts(1, 3)
	for i, b := range bodies {
		r := h.post(DefaultPath, "application/json", b)
		if r.status != 200 || r.body["accepted"] != 1.0 {
			t.Fatalf("post %d: %d %s", i, r.status, r.raw)
		}
	}
	got := out.rows()
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("rows %v, want %v", got, ids)
	}
	for _, s := range out.stamps {
		if s != t0.UnixMicro() {
			t.Errorf("stamp %d, want the clock's %d", s, t0.UnixMicro())
		}
	}
}

// TestExactIntegers: an integer written with a fraction or exponent is
// stored exactly when it is a whole number, not rounded through a float64.
func TestExactIntegers(t *testing.T) {
	out := &fakeOut{}
	h := start(t, Config{}, out, 1024)
	for _, body := range []string{
		`{"unique_id":"a","index":9007199254740993.0}`,
		`{"unique_id":"b","index":"9007199254740993"}`,
		`{"unique_id":"c","index":12.5e1}`,
	} {
		if r := h.post(DefaultPath, "application/json", []byte(body)); r.status != 200 {
			t.Fatalf("%s: %d %s", body, r.status, r.raw)
		}
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if want := []int64{9007199254740993, 9007199254740993, 125}; fmt.Sprint(out.index) != fmt.Sprint(want) {
		t.Errorf("index %v, want %v", out.index, want)
	}
}

func TestStampCarried(t *testing.T) {
	out := &fakeOut{}
	h := start(t, Config{}, out, 1024)
	r := h.post(DefaultPath, "application/json", []byte(`{"unique_id":"a","ingested_at":"2023-01-02T03:04:05Z"}`))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	want := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC).UnixMicro()
	if len(out.stamps) != 1 || out.stamps[0] != want {
		t.Errorf("stamps %v, want [%d]", out.stamps, want)
	}
}

func TestBatch(t *testing.T) {
	bodies, ids := genPosts(2, 50)
	array := append([]byte("[\n"), bytes.Join(bodies, []byte(",\n"))...)
	array = append(array, "\n]"...)
	ndjson := append(bytes.Join(bodies, []byte("\n")), "\n\n"...)
	for _, tc := range []struct {
		name, ctype string
		body        []byte
	}{
		{"array", "application/json", array},
		{"ndjson", "application/x-ndjson", ndjson},
		{"ndjson-crlf", "application/x-ndjson; charset=utf-8", bytes.ReplaceAll(ndjson, []byte("\n"), []byte("\r\n"))},
		{"json-lines-as-json", "application/json", ndjson},
		{"utf8-charset", "application/json; charset=UTF-8", array},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &fakeOut{}
			h := start(t, Config{}, out, 1024)
			r := h.post(DefaultBatchPath, tc.ctype, tc.body)
			if r.status != 200 || r.body["accepted"] != 50.0 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if got := out.rows(); strings.Join(got, ",") != strings.Join(ids, ",") {
				t.Errorf("rows differ: got %d rows", len(got))
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	good, _ := genPosts(3, 3)
	badBatch := append([]byte("["), good[0]...)
	badBatch = append(badBatch, ',')
	badBatch = append(badBatch, good[1]...)
	badBatch = append(badBatch, `,{"unique_id":"x","downloaded":"yes"}]`...)
	for _, tc := range []struct {
		name, method, path, ctype string
		body                      string
		status                    int
		field                     string
		index                     float64 // -1: no index
		msg                       string
	}{
		{"malformed", "POST", DefaultPath, "application/json", `{"unique_id": "a",`, 400, "", 0, "invalid JSON"},
		{"not an object", "POST", DefaultPath, "application/json", `42`, 400, "", 0, "must be a JSON object"},
		{"array to single", "POST", DefaultPath, "application/json", `[{}]`, 400, "", 0, "send several posts to /v1/posts/batch"},
		{"wrong type", "POST", DefaultPath, "application/json", `{"unique_id":"a","index":"forty"}`, 400, "index", 0, "expected int64"},
		{"tiny exponent into int64", "POST", DefaultPath, "application/json", `{"unique_id":"a","index":1e-999}`, 400, "index", 0, "1e-999 is not a whole number"},
		{"fraction into int64", "POST", DefaultPath, "application/json", `{"unique_id":"a","index":1.5}`, 400, "index", 0, "1.5 is not a whole number"},
		{"past int64", "POST", DefaultPath, "application/json", `{"unique_id":"a","index":9223372036854775808.0}`, 400, "index", 0, "does not fit int64"},
		{"object into string", "POST", DefaultPath, "application/json", `{"unique_id":"a","title":{"an":"object"}}`, 400, "title", 0, "expected string, got an object"},
		{"batch array into string", "POST", DefaultBatchPath, "application/x-ndjson", `{"unique_id":"a"}` + "\n" + `{"unique_id":["b"]}`, 400, "unique_id", 1, "expected string, got an array"},
		{"wrong stamp", "POST", DefaultPath, "application/json", `{"ingested_at":"yesterday"}`, 400, "ingested_at", 0, "expected timestamp"},
		{"batch bad post", "POST", DefaultBatchPath, "application/json", string(badBatch), 400, "downloaded", 2, "expected int64"},
		{"batch bad line", "POST", DefaultBatchPath, "application/x-ndjson", string(good[0]) + "\n{oops}\n", 400, "", 1, "invalid JSON"},
		{"batch unterminated", "POST", DefaultBatchPath, "application/json", `[{"a":"b"}, {"c": "`, 400, "", 1, "unterminated string"},
		{"batch trailing", "POST", DefaultBatchPath, "application/json", `[{"a":"b"}] x`, 400, "", 0, "after the array"},
		{"empty batch", "POST", DefaultBatchPath, "application/json", `[]`, 400, "", 0, "no posts"},
		{"empty body", "POST", DefaultBatchPath, "application/x-ndjson", "\n \n", 400, "", 0, "no posts"},
		{"oversize", "POST", DefaultPath, "application/json", `{"title":"` + strings.Repeat("x", 5000) + `"}`, 413, "", -1, "max_body"},
		{"wrong content type", "POST", DefaultPath, "text/plain", `{}`, 415, "", -1, "Content-Type"},
		{"form", "POST", DefaultBatchPath, "application/x-www-form-urlencoded", `a=b`, 415, "", -1, "Content-Type"},
		{"no content type", "POST", DefaultPath, "", `{}`, 415, "", -1, "missing Content-Type"},
		{"latin-1", "POST", DefaultPath, "application/json; charset=ISO-8859-1", `{}`, 415, "", -1, "posts must be UTF-8"},
		{"utf-16 ndjson", "POST", DefaultBatchPath, "application/x-ndjson; charset=utf-16", `{}`, 415, "", -1, "posts must be UTF-8"},
		{"wrong method", "GET", DefaultPath, "", ``, 405, "", -1, "use POST"},
		{"put", "PUT", DefaultBatchPath, "application/json", `[]`, 405, "", -1, "use POST"},
		{"unknown path", "POST", "/v2/nope", "application/json", `{}`, 404, "", -1, "no such endpoint"},
		{"post healthz", "POST", "/healthz", "", ``, 405, "", -1, "use GET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &fakeOut{}
			h := start(t, Config{MaxBody: 4096}, out, 1024)
			req, _ := http.NewRequest(tc.method, h.url+tc.path, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			r := h.do(req)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
			}
			msg, _ := r.body["error"].(string)
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q does not contain %q", msg, tc.msg)
			}
			if f, _ := r.body["field"].(string); f != tc.field {
				t.Errorf("field %q, want %q (%s)", f, tc.field, r.raw)
			}
			idx, has := r.body["index"].(float64)
			if tc.index >= 0 && (!has || idx != tc.index) {
				t.Errorf("index %v, want %v (%s)", r.body["index"], tc.index, r.raw)
			}
			if tc.index < 0 && has {
				t.Errorf("unexpected index in %s", r.raw)
			}
			if n := len(out.rows()); n != 0 {
				t.Errorf("%d rows emitted for a rejected request", n)
			}
		})
	}
}

func TestOversizeChunked(t *testing.T) {
	out := &fakeOut{}
	h := start(t, Config{MaxBody: 100}, out, 1024)
	// An io.Reader body of unknown length is sent chunked, without Content-Length.
	body := io.MultiReader(strings.NewReader(`{"title":"`), strings.NewReader(strings.Repeat("y", 500)), strings.NewReader(`"}`))
	req, _ := http.NewRequest("POST", h.url+DefaultPath, body)
	req.Header.Set("Content-Type", "application/json")
	if r := h.do(req); r.status != 413 {
		t.Errorf("status %d, want 413: %s", r.status, r.raw)
	}
}

func TestAckFailure(t *testing.T) {
	out := &fakeOut{fail: func() error { return errors.New("kafka: broker not available") }}
	h := start(t, Config{}, out, 1024)
	bodies, _ := genPosts(4, 2)
	r := h.post(DefaultPath, "application/json", bodies[0])
	if r.status != 503 || !strings.Contains(r.raw, "broker not available") {
		t.Errorf("single: %d %s", r.status, r.raw)
	}
	r = h.post(DefaultBatchPath, "application/x-ndjson", bytes.Join(bodies, []byte("\n")))
	if r.status != 503 || !strings.Contains(r.raw, "broker not available") {
		t.Errorf("batch: %d %s", r.status, r.raw)
	}
}

func TestEmitError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src, err := New(Config{Schema: posts.Schema(), Listen: "127.0.0.1:0"}, op.Resources{Alloc: mem, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	out := &fakeOut{schema: src.Schema(), emitErr: errors.New("pipeline aborted")}
	done := make(chan error, 1)
	go func() { done <- src.Run(context.Background(), out) }()
	<-src.Ready()
	h := &harness{t: t, cl: &http.Client{Transport: &http.Transport{}}, url: "http://" + src.Addr()}
	defer h.cl.CloseIdleConnections()
	start := time.Now()
	r := h.post(DefaultPath, "application/json", []byte(`{"unique_id":"a"}`))
	if r.status != 503 || !strings.Contains(r.raw, "pipeline aborted") {
		t.Errorf("%d %s", r.status, r.raw)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "pipeline aborted") {
		t.Errorf("Run returned %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Run took %s to stop after a failed Emit", el)
	}
}

func TestAckTimeout(t *testing.T) {
	hold := make(chan struct{})
	out := &fakeOut{hold: hold}
	h := start(t, Config{AckTimeout: 50 * time.Millisecond}, out, 1024)
	defer close(hold)
	r := h.post(DefaultPath, "application/json", []byte(`{"unique_id":"a"}`))
	if r.status != 503 || !strings.Contains(r.raw, "ack_timeout") {
		t.Errorf("%d %s", r.status, r.raw)
	}
}

func TestSaturation(t *testing.T) {
	hold := make(chan struct{})
	out := &fakeOut{hold: hold}
	h := start(t, Config{MaxInflight: 2}, out, 1024)
	var wg sync.WaitGroup
	replies := make([]reply, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = h.post(DefaultPath, "application/json", fmt.Appendf(nil, `{"unique_id":"u%d"}`, i))
		}()
	}
	// Wait until both wait for their acks.
	deadline := time.Now().Add(5 * time.Second)
	for len(out.rows()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s only %d of 2 posts reached the output", len(out.rows()))
		}
		time.Sleep(2 * time.Millisecond)
	}
	r := h.post(DefaultPath, "application/json", []byte(`{"unique_id":"u3"}`))
	if r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Errorf("saturated: %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), r.raw)
	}
	req, _ := http.NewRequest("GET", h.url+"/readyz", nil)
	if r := h.do(req); r.status != 503 || !strings.Contains(r.raw, "saturated") {
		t.Errorf("readyz while saturated: %d %s", r.status, r.raw)
	}
	req, _ = http.NewRequest("GET", h.url+"/healthz", nil)
	if r := h.do(req); r.status != 200 {
		t.Errorf("healthz while saturated: %d %s", r.status, r.raw)
	}
	close(hold)
	wg.Wait()
	for i, r := range replies {
		if r.status != 200 {
			t.Errorf("held request %d: %d %s", i, r.status, r.raw)
		}
	}
	req, _ = http.NewRequest("GET", h.url+"/readyz", nil)
	if r := h.do(req); r.status != 200 {
		t.Errorf("readyz after: %d %s", r.status, r.raw)
	}
}

func TestCoalescing(t *testing.T) {
	out := &fakeOut{}
	h := start(t, Config{Linger: 20 * time.Millisecond}, out, 1000)
	bodies, _ := genPosts(5, 40)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for _, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := h.post(DefaultPath, "application/json", b); r.status != 200 {
				bad.Add(1)
			}
		}()
	}
	// A batch request joins the same batches.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if r := h.post(DefaultBatchPath, "application/x-ndjson", bytes.Join(bodies[:5], []byte("\n"))); r.status != 200 || r.body["accepted"] != 5.0 {
			bad.Add(1)
		}
	}()
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d requests failed", bad.Load())
	}
	if n := len(out.rows()); n != 45 {
		t.Errorf("%d rows, want 45", n)
	}
	out.mu.Lock()
	batches := out.batches
	out.mu.Unlock()
	if batches >= 41 {
		t.Errorf("%d batches for 41 requests: not coalesced", batches)
	}
	t.Logf("41 requests in %d batches", batches)
}

func TestBatchRowsFlush(t *testing.T) {
	// With a long linger, reaching BatchRows must flush at once.
	out := &fakeOut{}
	h := start(t, Config{Linger: time.Hour}, out, 10)
	bodies, _ := genPosts(6, 10)
	startT := time.Now()
	r := h.post(DefaultBatchPath, "application/x-ndjson", bytes.Join(bodies, []byte("\n")))
	if r.status != 200 || time.Since(startT) > 5*time.Second {
		t.Errorf("%d %s after %s", r.status, r.raw, time.Since(startT))
	}
}

func TestSlowClient(t *testing.T) {
	out := &fakeOut{}
	h := start(t, Config{ReadTimeout: 400 * time.Millisecond, MaxInflight: 4}, out, 1024)
	// A client that sends its headers and then trickles the body.
	conn, err := net.Dial("tcp", h.src.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", DefaultPath)
	trickleDone := make(chan error, 1)
	go func() {
		for range 100 {
			if _, err := conn.Write([]byte(" ")); err != nil {
				trickleDone <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		trickleDone <- nil
	}()
	bodies, _ := genPosts(7, 20)
	for i, b := range bodies {
		if r := h.post(DefaultPath, "application/json", b); r.status != 200 {
			t.Fatalf("post %d while a client trickles: %d %s", i, r.status, r.raw)
		}
	}
	// The trickler is cut off by ReadTimeout: its connection ends.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("trickling client got 200")
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("trickling client was not cut off: %v", err)
	}
	conn.Close()
	<-trickleDone
}

func TestGoodTrafficAmongBad(t *testing.T) {
	out := &fakeOut{}
	h := start(t, Config{MaxBody: 4096, MaxInflight: 256}, out, 64)
	bodies, ids := genPosts(8, 200)
	bad := [][]byte{[]byte(`{`), []byte(`{"index":"x"}`), []byte(`[1,2`), bytes.Repeat([]byte("a"), 5000), []byte("\x00\xff"), []byte(`{"unique_id":"\xff"}`)}
	var wg sync.WaitGroup
	var goodFail, badOK atomic.Int32
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := w; i < len(bodies); i += 4 {
				if r := h.post(DefaultPath, "application/json", bodies[i]); r.status != 200 {
					goodFail.Add(1)
					t.Errorf("good post: %d %s", r.status, r.raw)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 50 {
				b := bad[(i+w)%len(bad)]
				path := DefaultPath
				if i%2 == 1 {
					path = DefaultBatchPath
				}
				if r := h.post(path, "application/json", b); r.status == 200 {
					badOK.Add(1)
					t.Errorf("bad post %q accepted", b)
				}
			}
		}()
	}
	wg.Wait()
	got := out.rows()
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	want := map[string]int{}
	for _, id := range ids {
		want[id]++
	}
	if len(got) != len(ids) {
		t.Errorf("%d rows, want %d", len(got), len(ids))
	}
	for id, n := range want {
		if seen[id] != n {
			t.Errorf("id %q: %d rows, want %d", id, seen[id], n)
		}
	}
	if goodFail.Load() > 0 || badOK.Load() > 0 {
		t.Errorf("%d good posts failed, %d bad ones accepted", goodFail.Load(), badOK.Load())
	}
}

func TestGracefulStop(t *testing.T) {
	out := &fakeOut{delay: 100 * time.Millisecond}
	h := start(t, Config{Linger: 30 * time.Millisecond}, out, 1024)
	bodies, _ := genPosts(9, 10)
	var wg sync.WaitGroup
	replies := make([]reply, len(bodies))
	for i, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = h.post(DefaultPath, "application/json", b)
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(h.src.sem) < len(bodies) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s only %d of %d posts in flight", len(h.src.sem), len(bodies))
		}
		time.Sleep(time.Millisecond)
	}
	if err := h.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	wg.Wait()
	for i, r := range replies {
		if r.status != 200 {
			t.Errorf("request %d in flight at stop: %d %s", i, r.status, r.raw)
		}
	}
	if n := len(out.rows()); n != len(bodies) {
		t.Errorf("%d rows, want %d", n, len(bodies))
	}
}

func TestListenError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src, err := New(Config{Schema: posts.Schema(), Listen: "256.0.0.1:1"}, op.Resources{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Run(context.Background(), &fakeOut{}); err == nil {
		t.Error("Run listened on an invalid address")
	}
	if err := src.Close(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestCloseWithoutRun(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src, err := New(Config{Schema: posts.Schema()}, op.Resources{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	_ = src.Close(context.Background())
	_ = src.Close(context.Background())
}

func TestSplitArray(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{`[]`, nil, ""},
		{` [ {"a":1} , {"b":"]}"} ] `, []string{`{"a":1}`, `{"b":"]}"}`}, ""},
		{`[{"a":[1,{"b":2}]},{"c":"\"}"}]`, []string{`{"a":[1,{"b":2}]}`, `{"c":"\"}"}`}, ""},
		{`[1,"x",null]`, []string{`1`, `"x"`, `null`}, ""},
		{`[{},]`, []string{`{}`, ``}, ""},
		{`[{}`, []string{`{}`}, "unexpected end of input"},
		{`[{"a":"b}]`, nil, "unterminated string"},
		{`{}`, nil, "expected a JSON array"},
		{`[{} {}]`, []string{`{}`}, "expected ',' or ']'"},
	} {
		var got []string
		_, err := splitArray([]byte(tc.in), func(i int, e []byte) error {
			got = append(got, string(e))
			return nil
		})
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: elements %q, want %q", tc.in, got, tc.want)
		}
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
		}
	}
}

// TestPrettyObjectOnBatch: one pretty-printed object on the batch endpoint
// is a batch of one, whatever the content type says.
func TestPrettyObjectOnBatch(t *testing.T) {
	out := &fakeOut{}
	h := start(t, Config{}, out, 1024)
	pretty := "{\n  \"unique_id\": \"p1\",\n  \"title\": \"multi\\nline\",\n  \"index\": 3\n}\n"
	for _, ct := range []string{"application/json", "application/x-ndjson"} {
		if r := h.post(DefaultBatchPath, ct, []byte(pretty)); r.status != 200 || r.body["accepted"] != 1.0 {
			t.Fatalf("%s: %d %s", ct, r.status, r.raw)
		}
	}
	if got := out.rows(); strings.Join(got, ",") != "p1,p1" {
		t.Fatalf("rows %v", got)
	}
}

// rejectOut is an op.Output standing for a sink that can never store the
// rows whose title starts with "huge": like the kafka sink it then stores
// nothing of the batch and fails its ack with op.RejectedRows. It keeps
// the unique_ids it stored, and can count rows as if a transform had added
// one in front of every batch (the rows changed on the way).
type rejectOut struct {
	schema  *arrow.Schema
	addHead bool
	mu      sync.Mutex
	stored  []string
	batches int
	maxRows int
	wg      sync.WaitGroup
}

func (o *rejectOut) Schema() *arrow.Schema              { return o.schema }
func (o *rejectOut) Reject(record, reason string) error { return errors.New("no dead letters") }
func (o *rejectOut) Emit(ctx context.Context, b batch.Batch) error {
	rec := b.Rec
	shift := 0
	if o.addHead {
		shift = 1 // as if a transform had added a row in front
	}
	ids := rec.Column(rec.Schema().FieldIndices("unique_id")[0]).(*array.String)
	titles := rec.Column(rec.Schema().FieldIndices("title")[0]).(*array.String)
	var rj *op.RejectedRows
	for i := range int(rec.NumRows()) {
		if strings.HasPrefix(titles.Value(i), "huge") {
			if rj == nil {
				rj = &op.RejectedRows{Rows: int(rec.NumRows()) + shift}
			}
			rj.Index = append(rj.Index, i+shift)
			rj.Reasons = append(rj.Reasons, "message too large for the topic")
		}
	}
	// Rows titled "flaky..." fail to be stored while the others are
	// (op.FailedRows), as when one partition's broker is down.
	var fr *op.FailedRows
	o.mu.Lock()
	o.batches++
	o.maxRows = max(o.maxRows, int(b.Rec.NumRows()))
	if rj == nil {
		for i := range ids.Len() {
			if strings.HasPrefix(titles.Value(i), "flaky") {
				if fr == nil {
					fr = &op.FailedRows{Rows: int(rec.NumRows()), Err: errors.New("partition 1 is down")}
				}
				fr.Index = append(fr.Index, i)
				continue
			}
			o.stored = append(o.stored, ids.Value(i))
		}
	}
	o.mu.Unlock()
	// Acknowledge a little later, as a real sink does, so that requests
	// arriving meanwhile coalesce into the next batch.
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		time.Sleep(30 * time.Millisecond)
		if rj != nil {
			b.Release(rj)
			return
		}
		if fr != nil {
			b.Release(fr)
			return
		}
		b.Release(nil)
	}()
	return nil
}

// TestRejectedPostsDoNotFailNeighbours: requests coalesced into one batch
// are answered from the fate of their own posts. The request with a post a
// sink can never store gets 422 naming it (a batch request all or nothing,
// none of it stored); a post the sink failed to store while storing the
// others gets 503; every other request gets 200 and its posts are stored
// once.
func TestRejectedPostsDoNotFailNeighbours(t *testing.T) {
	for _, addHead := range []bool{false, true} {
		t.Run(fmt.Sprint("rows-changed=", addHead), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src, err := New(Config{Listen: "127.0.0.1:0", Schema: posts.Schema(), Stamp: DefaultStamp, Linger: 200 * time.Millisecond},
				op.Resources{Node: "in", Alloc: mem, Clock: fixedClock{}, BatchRows: 1024, Log: quiet})
			if err != nil {
				t.Fatal(err)
			}
			out := &rejectOut{schema: src.Schema(), addHead: addHead}
			ctx, cancel := context.WithCancel(context.Background())
			runErr := make(chan error, 1)
			go func() { runErr <- src.Run(ctx, out) }()
			<-src.Ready()
			url := "http://" + src.Addr()
			type req struct {
				path, body string
				status     int
			}
			reqs := []req{
				{DefaultPath, `{"unique_id":"a1"}`, 200},
				{DefaultPath, `{"unique_id":"a2","title":"huge one"}`, 422},
				{DefaultPath, `{"unique_id":"a3"}`, 200},
				{DefaultBatchPath, `[{"unique_id":"b1"},{"unique_id":"b2","title":"huge two"},{"unique_id":"b3"}]`, 422},
				{DefaultBatchPath, `[{"unique_id":"c1"},{"unique_id":"c2"}]`, 200},
				{DefaultPath, `{"unique_id":"f1","title":"flaky"}`, 503},
				{DefaultPath, `{"unique_id":"a4"}`, 200},
			}
			// A first post keeps a batch in flight so the others coalesce.
			if r, err := http.Post(url+DefaultPath, "application/json", strings.NewReader(`{"unique_id":"first"}`)); err != nil {
				t.Fatal(err)
			} else {
				r.Body.Close()
			}
			var wg sync.WaitGroup
			got := make([]int, len(reqs))
			msgs := make([]string, len(reqs))
			for i, rq := range reqs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := http.Post(url+rq.path, "application/json", strings.NewReader(rq.body))
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					got[i], msgs[i] = resp.StatusCode, string(b)
				}()
			}
			wg.Wait()
			cancel()
			if err := <-runErr; err != nil {
				t.Fatal(err)
			}
			out.wg.Wait()
			if out.maxRows < 3 {
				t.Errorf("largest batch held %d rows: the requests were not coalesced", out.maxRows)
			}
			for i, rq := range reqs {
				if got[i] != rq.status {
					t.Errorf("%s: %d %s, want %d", rq.body, got[i], msgs[i], rq.status)
				}
				if rq.status == 422 && !strings.Contains(msgs[i], "message too large for the topic") {
					t.Errorf("422 without the reason: %s", msgs[i])
				}
			}
			if !addHead && !strings.Contains(msgs[3], `"index":1`) {
				t.Errorf("batch rejection does not name post 1: %s", msgs[3])
			}
			if addHead && strings.Contains(msgs[3], `"index"`) {
				t.Errorf("batch rejection names a post although the rows changed on the way: %s", msgs[3])
			}
			out.mu.Lock()
			defer out.mu.Unlock()
			stored := append([]string(nil), out.stored...)
			sort.Strings(stored)
			want := "a1,a3,a4,c1,c2,first"
			if strings.Join(stored, ",") != want {
				t.Errorf("stored %v, want %s", stored, want)
			}
		})
	}
}

// TestSlowBodiesDoNotLockOut: many more slow senders than in-flight slots
// neither take the slots of real posts nor make /readyz fail; each slow
// sender gets 408 at read_timeout, with no socket address in the message.
func TestSlowBodiesDoNotLockOut(t *testing.T) {
	out := &fakeOut{}
	h := start(t, Config{ReadTimeout: 1500 * time.Millisecond, MaxInflight: 4}, out, 1024)
	const slow = 60
	conns := make([]net.Conn, 0, slow)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range slow {
		c, err := net.Dial("tcp", h.src.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", DefaultPath)
	}
	stop := make(chan struct{})
	var trickle sync.WaitGroup
	trickle.Add(1)
	go func() { // one byte per connection every 100ms
		defer trickle.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, c := range conns {
				_, _ = c.Write([]byte(" "))
			}
		}
	}()
	bodies, _ := genPosts(9, 40)
	for i, b := range bodies {
		if r := h.post(DefaultPath, "application/json", b); r.status != 200 {
			t.Fatalf("post %d among %d slow senders: %d %s", i, slow, r.status, r.raw)
		}
		if i%10 == 0 {
			req, _ := http.NewRequest("GET", h.url+"/readyz", nil)
			if r := h.do(req); r.status != 200 {
				t.Fatalf("readyz among slow senders: %d %s", r.status, r.raw)
			}
		}
	}
	close(stop)
	trickle.Wait()
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("slow sender %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "read_timeout") || strings.Contains(string(b), "127.0.0.1") {
			t.Fatalf("slow sender %d: %d %s", i, resp.StatusCode, b)
		}
	}
}

// TestBodiesChargeMemoryBudget: request bodies are charged to the
// pipeline's memory budget while they are read and decoded: with the
// budget spent, a post waits and gets 503 at read_timeout; with room, posts
// go through and every byte is given back.
func TestBodiesChargeMemoryBudget(t *testing.T) {
	budget := op.NewBudget(1 << 20)
	out := &fakeOut{}
	h := startWith(t, Config{ReadTimeout: time.Second}, out, op.Resources{BatchRows: 1024, Memory: budget})
	budget.Charge(1 << 20) // the queues hold everything
	r := h.post(DefaultPath, "application/json", []byte(`{"unique_id":"a"}`))
	if r.status != 503 || !strings.Contains(r.raw, "memory budget") || r.header.Get("Retry-After") == "" {
		t.Fatalf("post with the budget spent: %d %s", r.status, r.raw)
	}
	budget.Release(1 << 20)
	bodies, _ := genPosts(11, 20)
	for i, b := range bodies {
		if r := h.post(DefaultPath, "application/json", b); r.status != 200 {
			t.Fatalf("post %d: %d %s", i, r.status, r.raw)
		}
	}
	if budget.Peak() < minBodyBuf {
		t.Errorf("budget peak %d: bodies were not charged", budget.Peak())
	}
	if n := budget.InUse(); n != 0 {
		t.Errorf("%d bytes still charged after every request finished", n)
	}
}

// TestBodyBufferGrowsWithData: a request announcing a large body holds a
// small buffer until the bytes arrive.
func TestBodyBufferGrowsWithData(t *testing.T) {
	out := &fakeOut{}
	h := start(t, Config{ReadTimeout: 10 * time.Second, MaxBodyMemory: 1 << 20, MaxBody: 1 << 20}, out, 1024)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Each announces the whole max_body and sends 10 bytes: with buffers
	// sized from Content-Length, the second would already wait.
	for range 20 {
		c, err := net.Dial("tcp", h.src.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"title\":\"", DefaultPath, 1<<20)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.src.budget.inUse() < 20*firstBodyBuf && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := h.src.budget.inUse(); n != 20*firstBodyBuf {
		t.Fatalf("20 stalled bodies hold %d bytes, want %d", n, 20*firstBodyBuf)
	}
	if r := h.post(DefaultPath, "application/json", []byte(`{"unique_id":"real"}`)); r.status != 200 {
		t.Fatalf("real post beside stalled ones: %d %s", r.status, r.raw)
	}
}

// TestSmallPostsAmongStalledLargeBodies: large bodies that stall just before
// their end fill max_body_memory; small posts still get in at once (first
// buffers have a reserve growing bodies cannot use) instead of waiting for
// the stalled ones to time out.
func TestSmallPostsAmongStalledLargeBodies(t *testing.T) {
	out := &fakeOut{}
	const mib = 1 << 20
	h := start(t, Config{ReadTimeout: 5 * time.Second, MaxBodyMemory: 2 * mib, MaxBody: mib}, out, 1024)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", h.src.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		body := append([]byte(`{"title":"`), bytes.Repeat([]byte("z"), mib-100-10)...)
		if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", DefaultPath, mib, body); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.src.budget.inUse() < 2*mib && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := h.src.budget.inUse(); n != 2*mib {
		t.Fatalf("stalled bodies hold %d bytes, want the whole max_body_memory", n)
	}
	bodies, _ := genPosts(12, 10)
	for i, b := range bodies {
		t0 := time.Now()
		if r := h.post(DefaultPath, "application/json", b); r.status != 200 {
			t.Fatalf("post %d: %d %s", i, r.status, r.raw)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Fatalf("post %d took %s: it waited for the stalled bodies", i, d)
		}
	}
}
