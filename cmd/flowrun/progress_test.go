package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/exec"
	"github.com/flowrun/flowrun/runtime/op"
)

// TestLogProgress: off a terminal, a long run logs plain progress lines
// with rows read per source.
func TestLogProgress(t *testing.T) {
	res, errs := validate.Load("p.yaml", []byte(`flowrun: 1
name: p
sources:
  posts: {generate: {count: 2000, seed: 1}}
sinks:
  out: {from: posts, discard: {}}
`), func(string) (string, bool) { return "", false }, op.Default)
	if len(errs) > 0 {
		t.Fatal(errs.Render())
	}
	p, err := exec.New(res, exec.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	buf := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(buf, nil))
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { defer close(stopped); logProgress(log, p, time.Now(), 5*time.Millisecond, done) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "msg=progress") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(done)
	<-stopped
	if out := buf.String(); !strings.Contains(out, "node=posts rows=2000") {
		t.Errorf("no progress line with the rows read:\n%s", out)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
