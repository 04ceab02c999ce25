package kafkaclient

import (
	"net"
	"strconv"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// sarama's per-broker circuit breaker, opened by the tests that
		// take a broker away, sleeps out its 10s timeout after Close.
		goleak.IgnoreAnyFunction("github.com/eapache/go-resiliency/breaker.(*Breaker).timer"))
}

func TestCheckBrokers(t *testing.T) {
	for _, tc := range []struct {
		list []string
		ok   bool
	}{
		{[]string{"embedded"}, true},
		{[]string{" Embedded "}, true},
		{[]string{"localhost:9092", "b:9093"}, true},
		{nil, false},
		{[]string{"embedded", "localhost:9092"}, false},
		{[]string{"localhost"}, false},
	} {
		if got := CheckBrokers(tc.list) == ""; got != tc.ok {
			t.Errorf("CheckBrokers(%q) ok=%v, want %v (%s)", tc.list, got, tc.ok, CheckBrokers(tc.list))
		}
	}
}

func TestEmbeddedIsSharedAndRefCounted(t *testing.T) {
	a1, r1, err := ResolveBrokers([]string{"embedded"}, "t1")
	if err != nil {
		t.Fatal(err)
	}
	a2, r2, err := ResolveBrokers([]string{"embedded"}, "t2")
	if err != nil {
		t.Fatal(err)
	}
	if a1[0] != a2[0] {
		t.Fatalf("two users see different brokers: %v %v", a1, a2)
	}
	c, err := sarama.NewClient(a1, NewConfig("test"))
	if err != nil {
		t.Fatal(err)
	}
	marks, err := PartitionMarks(c, []string{"t1", "t2"})
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(marks) != 2*EmbeddedPartitions {
		t.Fatalf("marks %v", marks)
	}
	r1()
	r1() // idempotent
	if !Shared.Running() {
		t.Fatal("stopped while a user remains")
	}
	r2()
	if Shared.Running() {
		t.Fatal("still running after the last release")
	}
	addrs, rel, err := ResolveBrokers([]string{" h:1 ", "g:2"})
	if err != nil || len(addrs) != 2 || addrs[0] != "h:1" {
		t.Fatalf("%v %v", addrs, err)
	}
	rel()
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestEmbeddedFixedAddress(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	t.Setenv(EnvEmbeddedAddr, addr)
	addrs, release, err := ResolveBrokers([]string{"embedded"}, "fixed")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0] != addr {
		t.Fatalf("addrs %v, want %s", addrs, addr)
	}
	release()

	// Another process already owns the port: use its broker.
	other, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	addrs, release, err = ResolveBrokers([]string{"embedded"}, "shared-topic")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if addrs[0] != addr {
		t.Fatalf("addrs %v", addrs)
	}
	if other.TopicInfo("shared-topic") == nil {
		t.Fatal("topic not created on the other process's broker")
	}
}
