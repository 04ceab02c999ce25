// Package testenv finds the real servers integration tests use and decides
// whether a missing one skips or fails.
//
// Integration tests call Kafka or Postgres at their start:
//
//	func TestSinkKafka(t *testing.T) {
//		brokers := testenv.Kafka(t) // skips (or, under CI, fails) when no broker answers
//		...
//	}
//
// A server that does not answer skips the test on a developer's machine, so
// `go test ./...` works without any server running, and fails it when CI is
// set (CI=true), so CI can never go green by skipping. FLOWRUN_REQUIRE_SERVICES=1
// turns on the failing behaviour outside CI too. `go test -short` skips every
// integration test, CI or not.
//
// scripts/services/up.sh starts the servers and prints the variables read here:
//
//	eval "$(scripts/services/up.sh kafka postgres)"
package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables read by this package.
const (
	EnvKafkaBrokers    = "FLOWRUN_KAFKA_BROKERS" // comma-separated host:port list
	EnvPostgresURL     = "FLOWRUN_POSTGRES_URL"  // takes precedence over PostgresURL
	EnvPostgresURLStd  = "POSTGRES_URL"
	EnvHBaseThrift     = "HBASE_THRIFT_ADDR" // host:port of HBase's Thrift2 gateway
	EnvHBaseREST       = "HBASE_REST_URL"    // base URL of HBase's REST gateway
	EnvCI              = "CI"
	EnvRequireServices = "FLOWRUN_REQUIRE_SERVICES"
)

// Defaults match what scripts/services/*.sh start.
const (
	DefaultKafkaBrokers = "127.0.0.1:9092"
	DefaultPostgresURL  = "postgres://flowrun:flowrun@127.0.0.1:5432/flowrun?sslmode=disable"
	DefaultHBaseThrift  = "127.0.0.1:9090"
	DefaultHBaseREST    = "http://127.0.0.1:8080"
)

// DialTimeout bounds each reachability probe.
var DialTimeout = 2 * time.Second

// Action is what a test does about a server.
type Action int

const (
	Use  Action = iota // the server answered: run the test against it
	Skip               // missing, and missing servers are allowed here
	Fail               // missing, and it must not be (CI or FLOWRUN_REQUIRE_SERVICES)
)

func (a Action) String() string {
	switch a {
	case Use:
		return "use"
	case Skip:
		return "skip"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decide is the skip-or-fail rule, kept free of I/O so it can be tested:
// a reachable server is used; an unreachable one fails the test when required
// is true (CI, or FLOWRUN_REQUIRE_SERVICES) and skips it otherwise.
func Decide(reachable, required bool) Action {
	switch {
	case reachable:
		return Use
	case required:
		return Fail
	default:
		return Skip
	}
}

// Required reports whether a missing server must fail tests, given a
// lookup function for environment variables (os.LookupEnv in real use).
func Required(lookup func(string) (string, bool)) bool {
	return truthy(lookup, EnvCI) || truthy(lookup, EnvRequireServices)
}

func truthy(lookup func(string) (string, bool), key string) bool {
	v, _ := lookup(key)
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Integration gates an integration test: it skips under `go test -short`.
// Kafka and Postgres call it, so tests that use them need not.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped in -short mode")
	}
}

// Kafka returns the brokers of a running Kafka (FLOWRUN_KAFKA_BROKERS, or
// 127.0.0.1:9092), or skips/fails the test when none answers.
func Kafka(t testing.TB) []string {
	t.Helper()
	Integration(t)
	brokers, src := KafkaBrokers(os.LookupEnv)
	var errs []string
	reachable := false
	for _, b := range brokers {
		if err := probe(b); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		reachable = true
		break
	}
	if len(brokers) == 0 {
		errs = append(errs, EnvKafkaBrokers+" lists no broker")
	}
	if !require(t, "Kafka", "kafka", src, reachable, strings.Join(errs, "; ")) {
		return nil
	}
	return brokers
}

// KafkaBrokers parses the broker list from the environment; src names where
// it came from, for messages.
func KafkaBrokers(lookup func(string) (string, bool)) (brokers []string, src string) {
	raw, ok := lookup(EnvKafkaBrokers)
	src = EnvKafkaBrokers
	if !ok || strings.TrimSpace(raw) == "" {
		raw, src = DefaultKafkaBrokers, "default"
	}
	for _, b := range strings.Split(raw, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return brokers, src
}

// Postgres returns the URL of a running PostgreSQL (FLOWRUN_POSTGRES_URL,
// POSTGRES_URL, or the scripts' default), or skips/fails the test when its
// host:port does not answer.
func Postgres(t testing.TB) string {
	t.Helper()
	Integration(t)
	u, src := PostgresURL(os.LookupEnv)
	addr, err := postgresAddr(u)
	if err == nil {
		err = probe(addr)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if !require(t, "PostgreSQL", "postgres", src, err == nil, msg) {
		return ""
	}
	return u
}

// HBase returns the address of a running HBase Thrift2 gateway
// (HBASE_THRIFT_ADDR, or 127.0.0.1:9090), or skips/fails the test when
// none answers.
func HBase(t testing.TB) string {
	t.Helper()
	Integration(t)
	addr, src := lookupOr(os.LookupEnv, EnvHBaseThrift, DefaultHBaseThrift)
	err := probe(addr)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if !require(t, "HBase (Thrift2 gateway)", "hbase", src, err == nil, msg) {
		return ""
	}
	return addr
}

// HBaseREST returns the base URL of a running HBase REST gateway
// (HBASE_REST_URL, or http://127.0.0.1:8080), or skips/fails the test.
func HBaseREST(t testing.TB) string {
	t.Helper()
	Integration(t)
	raw, src := lookupOr(os.LookupEnv, EnvHBaseREST, DefaultHBaseREST)
	u, err := url.Parse(raw)
	if err == nil {
		err = probe(u.Host)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if !require(t, "HBase (REST gateway)", "hbase", src, err == nil, msg) {
		return ""
	}
	return strings.TrimRight(raw, "/")
}

func lookupOr(lookup func(string) (string, bool), key, def string) (v, src string) {
	if v, ok := lookup(key); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), key
	}
	return def, "default"
}

// PostgresURL picks the connection URL from the environment; src names
// where it came from.
func PostgresURL(lookup func(string) (string, bool)) (u, src string) {
	for _, k := range []string{EnvPostgresURL, EnvPostgresURLStd} {
		if v, ok := lookup(k); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), k
		}
	}
	return DefaultPostgresURL, "default"
}

// postgresAddr extracts host:port from a postgres:// URL (default port 5432).
func postgresAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bad postgres URL: %v", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("bad postgres URL %q: scheme must be postgres://", redact(u))
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "5432"
	}
	return net.JoinHostPort(host, port), nil
}

func redact(u *url.URL) string {
	return u.Redacted()
}

// require applies Decide and acts on it. It returns true when the test may
// use the server; after Skip or Fail it returns false (a real testing.TB
// never returns from those, a fake one in this package's tests does).
func require(t testing.TB, what, script, src string, reachable bool, why string) bool {
	t.Helper()
	required := Required(os.LookupEnv)
	switch Decide(reachable, required) {
	case Use:
		return true
	case Fail:
		t.Fatalf("%s is required (CI or %s set) but unreachable (from %s): %s\n"+
			"start it with: eval \"$(scripts/services/up.sh %s)\"", what, EnvRequireServices, src, why, script)
	default:
		t.Skipf("%s unreachable (from %s): %s; start it with: eval \"$(scripts/services/up.sh %s)\"",
			what, src, why, script)
	}
	return false
}

// probe dials addr once per process and remembers the answer, so every test
// in a package sees the same verdict and an absent server costs one dial.
func probe(addr string) error {
	v, _ := probes.LoadOrStore(addr, &probeResult{})
	r := v.(*probeResult)
	r.once.Do(func() {
		c, err := net.DialTimeout("tcp", addr, DialTimeout)
		if err != nil {
			r.err = err
			return
		}
		_ = c.Close()
	})
	return r.err
}

type probeResult struct {
	once sync.Once
	err  error
}

var probes sync.Map // addr -> *probeResult

// Tool returns the path of an executable the test needs (pre-commit, psql,
// kcat), or skips/fails the test like a missing server when it is not on
// the PATH; install says how to get it.
func Tool(t testing.TB, name, install string) string {
	t.Helper()
	Integration(t)
	path, err := exec.LookPath(name)
	if !require(t, name, "", "PATH", err == nil, fmt.Sprintf("%v; install it with: %s", err, install)) {
		return ""
	}
	return path
}
