package kafkaclient

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedName is the `brokers` value that selects the in-process broker.
const EmbeddedName = "embedded"

// EnvEmbeddedAddr names the environment variable that fixes the embedded
// broker's address ("127.0.0.1:19092"), so that several flowrun processes
// share one broker: the first to start listens there, the others find the
// port taken and use the broker already listening.
const EnvEmbeddedAddr = "FLOWRUN_EMBEDDED_KAFKA_ADDR"

// EmbeddedPartitions is the partition count of topics the embedded broker
// creates (named by a node, or auto-created by a client's metadata request).
const EmbeddedPartitions = 3

// Embedded is the in-process Kafka-protocol broker (kfake) shared by every
// node of the process that names `brokers: embedded`. It is reference
// counted: the first Acquire starts it, the last Release stops it, and all
// users in between see the same broker and topics. Its data lives in memory
// and is gone when it stops.
type Embedded struct {
	mu      sync.Mutex
	refs    int
	cluster *kfake.Cluster // nil when using another process's broker
	addrs   []string
}

// Shared is the process's embedded broker.
var Shared = &Embedded{}

// Acquire starts the broker if needed, creates topics that do not exist,
// and returns the broker addresses and a release function (call it once).
func (e *Embedded) Acquire(topics ...string) (addrs []string, release func(), err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refs == 0 {
		if err := e.start(); err != nil {
			return nil, nil, err
		}
	}
	if err := e.createTopics(topics); err != nil {
		if e.refs == 0 {
			e.stop()
		}
		return nil, nil, err
	}
	e.refs++
	var once sync.Once
	return append([]string(nil), e.addrs...), func() { once.Do(e.release) }, nil
}

// Running reports whether the broker is in use in this process.
func (e *Embedded) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refs > 0
}

func (e *Embedded) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refs--
	if e.refs == 0 {
		e.stop()
	}
}

func (e *Embedded) start() error {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(EmbeddedPartitions),
		kfake.ClusterID("flowrun-embedded"),
	}
	fixed := strings.TrimSpace(os.Getenv(EnvEmbeddedAddr))
	if fixed != "" {
		host, portStr, err := net.SplitHostPort(fixed)
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil || port <= 0 || port > 65535 {
			return fmt.Errorf("%s=%q: want host:port such as 127.0.0.1:19092", EnvEmbeddedAddr, fixed)
		}
		if host != "" && host != "127.0.0.1" && host != "localhost" {
			return fmt.Errorf("%s=%q: the embedded broker listens on 127.0.0.1 only", EnvEmbeddedAddr, fixed)
		}
		opts = append(opts, kfake.Ports(port))
		c, err := kfake.NewCluster(opts...)
		if err != nil {
			if !errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("embedded kafka broker at %s: %w", fixed, err)
			}
			// Another process owns the broker: use it.
			addr := net.JoinHostPort("127.0.0.1", portStr)
			conn, derr := net.DialTimeout("tcp", addr, 3*time.Second)
			if derr != nil {
				return fmt.Errorf("embedded kafka broker at %s: port in use but not answering: %w", fixed, derr)
			}
			conn.Close()
			e.cluster, e.addrs = nil, []string{addr}
			return nil
		}
		e.cluster, e.addrs = c, c.ListenAddrs()
		return nil
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("embedded kafka broker: %w", err)
	}
	e.cluster, e.addrs = c, c.ListenAddrs()
	return nil
}

func (e *Embedded) stop() {
	if e.cluster != nil {
		e.cluster.Close()
	}
	e.cluster, e.addrs = nil, nil
}

func (e *Embedded) createTopics(topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	if e.cluster == nil {
		return CreateTopics(e.addrs, EmbeddedPartitions, topics...)
	}
	for _, t := range topics {
		if e.cluster.TopicInfo(t) != nil {
			continue
		}
		if err := e.cluster.CreateTopic(t, EmbeddedPartitions, nil); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %q on the embedded broker: %w", t, err)
		}
	}
	return nil
}

// IsEmbedded reports whether a brokers list selects the embedded broker.
func IsEmbedded(list []string) bool {
	return len(list) == 1 && strings.EqualFold(strings.TrimSpace(list[0]), EmbeddedName)
}

// CheckBrokers validates a `brokers` list without connecting: it returns a
// message for the first problem, or "".
func CheckBrokers(list []string) string {
	if len(list) == 0 {
		return "'brokers' needs at least one host:port, or embedded"
	}
	for _, b := range list {
		b = strings.TrimSpace(b)
		if strings.EqualFold(b, EmbeddedName) {
			if len(list) > 1 {
				return "'embedded' must be the only entry of 'brokers'"
			}
			continue
		}
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return fmt.Sprintf("broker %q is not host:port (such as localhost:9092), nor embedded", b)
		}
	}
	return ""
}

// ResolveBrokers maps a node's `brokers` list to addresses to dial. The
// list ["embedded"] acquires the process's embedded broker (creating
// topics on it); release must then be called when the node closes. Other
// lists are returned trimmed, with a release that does nothing.
func ResolveBrokers(list []string, topics ...string) (addrs []string, release func(), err error) {
	if msg := CheckBrokers(list); msg != "" {
		return nil, nil, errors.New(msg)
	}
	if IsEmbedded(list) {
		return Shared.Acquire(topics...)
	}
	for _, b := range list {
		addrs = append(addrs, strings.TrimSpace(b))
	}
	return addrs, func() {}, nil
}
