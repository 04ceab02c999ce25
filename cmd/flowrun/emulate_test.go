package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flowrun/flowrun/internal/emulator"
)

func TestEmulateCmd(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/posts/batch" || r.Header.Get("Content-Type") != "application/x-ndjson" {
			w.WriteHeader(404)
			return
		}
		n.Add(1)
		_, _ = w.Write([]byte(`{"accepted":5}`))
	}))
	defer srv.Close()

	cmd := newEmulateCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"--url", srv.URL + "/v1/posts", "--count", "20", "--batch", "5", "--rate", "0", "--json"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var rep emulator.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep.Accepted != 20 || n.Load() != 4 {
		t.Errorf("accepted %d in %d requests", rep.Accepted, n.Load())
	}
}

func TestEmulateCmdFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cmd := newEmulateCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--url", srv.URL, "--count", "1", "--retries", "1", "--progress"})
	err := cmd.Execute()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("error %v, want exit 1", err)
	}
	if !strings.Contains(out.String(), "failed    1 (503: 1)") || !strings.Contains(out.String(), "\rsent 1/1") {
		t.Errorf("output:\n%s", out.String())
	}
}
