package httpsrc

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flowrun/flowrun/operators/source/generate/posts"
)

// FuzzIngestBody throws random bodies at both ingest paths: the handler must
// never panic and never answer 5xx (the fake downstream always acks); 415
// only for a missing Content-Type.
func FuzzIngestBody(f *testing.F) {
	g := posts.New(1)
	var p posts.Post
	for range 3 {
		g.Next(&p)
		one := posts.AppendJSON(nil, &p)
		f.Add(one, uint8(0))
		f.Add(append(append([]byte("["), one...), ']'), uint8(1))
		f.Add(append(append(one, '\n'), one...), uint8(2))
	}
	for _, s := range []string{`{`, `[{},{]`, `{"index":"x"}`, `[1,[2,{"a":"]"}]]`, `{"tag_list":[1,2]}`, "\xff", `{"ingested_at":"2020-01-01"}`, `[` + string(bytes.Repeat([]byte("["), 600)), "{\n  \"unique_id\": \"p\",\n  \"index\": 1e-999\n}\n", `{"index":9007199254740993.0}`, `{"title":{"a":1}}`} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(5)) // no Content-Type
	}
	out := &fakeOut{}
	h := start(f, Config{MaxBody: 64 << 10, Linger: 50 * time.Microsecond}, out, 64)
	ctypes := []string{"application/json", "application/x-ndjson", ""}
	f.Fuzz(func(t *testing.T, body []byte, sel uint8) {
		path := DefaultPath
		if sel&1 == 1 {
			path = DefaultBatchPath
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		if ct := ctypes[int(sel>>1)%len(ctypes)]; ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		rec := httptest.NewRecorder()
		h.src.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 413:
		case 415:
			if req.Header.Get("Content-Type") != "" {
				t.Fatalf("415 for Content-Type %q", req.Header.Get("Content-Type"))
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var reply map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
			t.Fatalf("response is not JSON: %q", rec.Body)
		}
		if rec.Code == 200 && reply["accepted"] == nil {
			t.Fatalf("200 without accepted: %s", rec.Body)
		}
		if rec.Code == 400 && reply["index"] == nil {
			t.Fatalf("400 without index: %s", rec.Body)
		}
	})
}
