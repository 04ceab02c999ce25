package httpsrc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rss reads VmRSS and VmHWM (peak) of pid in MiB.
func rss(t *testing.T, pid int) (cur, peak int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			cur = kb >> 10
		case "VmHWM:":
			peak = kb >> 10
		}
	}
	return cur, peak
}

// TestRSSUnderLargeAnnouncedBodies measures the server process (a child,
// so nothing else counts) while 1,000 connections announce
// Content-Length: 1048576: first with headers only, then with all but the
// last 100 bytes of each body sent. Buffers grow only as bytes arrive and
// bodies in memory are bounded by max_body_memory (64 MiB), so the peak RSS
// must stay under 400 MiB (it was 2.64 GB when buffers were sized from
// Content-Length); after the connections close, memory goes back.
func TestRSSUnderLargeAnnouncedBodies(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read RSS")
	}
	// The server is a process of its own, built without the race detector
	// even under go test -race, so its RSS is the source's alone.
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "rsschild")
	if out, err := exec.Command(goTool, "build", "-o", bin, "./internal/rsschild").CombinedOutput(); err != nil {
		t.Fatalf("go build ./internal/rsschild: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("child did not report its address")
	}
	pid := cmd.Process.Pid
	base, _ := rss(t, pid)

	const conns, announced = 1000, 1 << 20
	cs := make([]*net.TCPConn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		tc := c.(*net.TCPConn)
		_ = tc.SetWriteBuffer(64 << 10) // keep the kernel's share of the test small
		cs = append(cs, tc)
		if _, err := fmt.Fprintf(tc, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", DefaultPath, announced); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	headers, _ := rss(t, pid)

	// All but the last 100 bytes of every body. Connections whose bytes do
	// not fit the body budget are not read: their writes block until the
	// deadline, which is the point.
	chunk := []byte(`{"title":"` + strings.Repeat("z", 64<<10))
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(8 * time.Second))
			left := announced - 100
			for first := true; left > 0; first = false {
				part := chunk
				if !first {
					part = chunk[len(`{"title":"`):] // only the title's z's
				}
				n := min(left, len(part))
				if _, err := c.Write(part[:n]); err != nil {
					return
				}
				left -= n
			}
		}()
	}
	var peakDuring int
	for range 8 {
		time.Sleep(time.Second)
		cur, _ := rss(t, pid)
		peakDuring = max(peakDuring, cur)
	}
	wg.Wait()
	_, hwm := rss(t, pid)
	for _, c := range cs {
		c.Close()
	}
	cs = nil
	time.Sleep(7 * time.Second)
	after, _ := rss(t, pid)
	t.Logf("child RSS: %d MiB at start, %d MiB with %d connections announcing %d bytes, peak %d MiB (VmHWM) with all but 100 bytes of each body sent, %d MiB 7s after they closed",
		base, headers, conns, announced, hwm, after)
	if hwm >= 400 {
		t.Errorf("peak RSS %d MiB, want under 400 MiB", hwm)
	}
	if after > hwm/2 && after > base+64 {
		t.Errorf("RSS %d MiB 7s after the connections closed (peak %d MiB): memory not given back", after, hwm)
	}
}
