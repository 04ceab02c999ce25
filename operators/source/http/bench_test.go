package httpsrc

import (
	"bytes"
	"net/http"
	"testing"
)

// BenchmarkPostSingle measures one post per request through a real
// listener (loopback), a sink that acknowledges at once and 64 concurrent
// clients: the API's own cost per request.
func BenchmarkPostSingle(b *testing.B) {
	out := &fakeOut{}
	h := start(b, Config{}, out, 1024)
	bodies, _ := genPosts(5, 64)
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			resp, err := cl.Post(h.url+DefaultPath, "application/json", bytes.NewReader(bodies[i%len(bodies)]))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = resp.Body.Read(make([]byte, 64))
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// nullWriter is a ResponseWriter that keeps only the status.
type nullWriter struct {
	h      http.Header
	status int
}

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkServeSingle is the handler alone (no sockets): read the body,
// decode, coalesce, emit, answer, with 32 requests at a time.
func BenchmarkServeSingle(b *testing.B) {
	out := &fakeOut{}
	h := start(b, Config{}, out, 1024)
	bodies, _ := genPosts(5, 64)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		w := &nullWriter{h: http.Header{}}
		for pb.Next() {
			i++
			body := bodies[i%len(bodies)]
			r, _ := http.NewRequest(http.MethodPost, DefaultPath, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			w.status = 0
			h.src.ServeHTTP(w, r)
			if w.status != 200 {
				b.Errorf("status %d", w.status)
				return
			}
		}
	})
}
