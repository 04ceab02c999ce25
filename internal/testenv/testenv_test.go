package testenv

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDecide(t *testing.T) {
	tests := []struct {
		reachable, required bool
		want                Action
	}{
		{true, false, Use},
		{true, true, Use},
		{false, false, Skip},
		{false, true, Fail},
	}
	for _, tt := range tests {
		if got := Decide(tt.reachable, tt.required); got != tt.want {
			t.Errorf("Decide(reachable=%v, required=%v) = %v, want %v", tt.reachable, tt.required, got, tt.want)
		}
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		name   string
		lookup func(string) (string, bool)
		want   bool
	}{
		{"nothing set", env(), false},
		{"CI=true", env("CI", "true"), true},
		{"CI=TRUE", env("CI", "TRUE"), true},
		{"CI=1", env("CI", "1"), true},
		{"CI=false", env("CI", "false"), false},
		{"CI empty", env("CI", ""), false},
		{"CI=0", env("CI", "0"), false},
		{"require flag", env(EnvRequireServices, "1"), true},
		{"require flag off", env(EnvRequireServices, "no"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Required(tt.lookup); got != tt.want {
				t.Errorf("Required = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKafkaBrokers(t *testing.T) {
	tests := []struct {
		name    string
		lookup  func(string) (string, bool)
		want    []string
		wantSrc string
	}{
		{"default", env(), []string{"127.0.0.1:9092"}, "default"},
		{"blank is default", env(EnvKafkaBrokers, "  "), []string{"127.0.0.1:9092"}, "default"},
		{"one", env(EnvKafkaBrokers, "k:1"), []string{"k:1"}, EnvKafkaBrokers},
		{"list with spaces", env(EnvKafkaBrokers, " a:1, b:2 ,,"), []string{"a:1", "b:2"}, EnvKafkaBrokers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, src := KafkaBrokers(tt.lookup)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || src != tt.wantSrc {
				t.Errorf("KafkaBrokers = %v (%s), want %v (%s)", got, src, tt.want, tt.wantSrc)
			}
		})
	}
}

func TestPostgresURL(t *testing.T) {
	tests := []struct {
		name    string
		lookup  func(string) (string, bool)
		want    string
		wantSrc string
	}{
		{"default", env(), DefaultPostgresURL, "default"},
		{"standard", env(EnvPostgresURLStd, "postgres://a@h:1/d"), "postgres://a@h:1/d", EnvPostgresURLStd},
		{"flowrun wins", env(EnvPostgresURLStd, "postgres://a@h:1/d", EnvPostgresURL, "postgres://b@g:2/e"), "postgres://b@g:2/e", EnvPostgresURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, src := PostgresURL(tt.lookup)
			if got != tt.want || src != tt.wantSrc {
				t.Errorf("PostgresURL = %q (%s), want %q (%s)", got, src, tt.want, tt.wantSrc)
			}
		})
	}
}

func TestPostgresAddr(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{DefaultPostgresURL, "127.0.0.1:5432", false},
		{"postgresql://u:p@db.local/x", "db.local:5432", false},
		{"postgres:///x", "127.0.0.1:5432", false},
		{"postgres://u@[::1]:6000/x", "[::1]:6000", false},
		{"mysql://u:secret@h/x", "", true},
	}
	for _, tt := range tests {
		got, err := postgresAddr(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("postgresAddr(%q) = %q, %v; want %q, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

// fakeTB records Skip/Fatal instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skip(args ...any)               { f.skipped = fmt.Sprint(args...) }
func (f *fakeTB) Skipf(format string, a ...any)  { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatal(args ...any)              { f.failed = fmt.Sprint(args...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestKafkaAndPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("Kafka/Postgres skip themselves in -short mode")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open, closed := ln.Addr().String(), closedAddr(t)

	tests := []struct {
		name, addr, ci string
		want           Action
	}{
		{"reachable", open, "", Use},
		{"reachable under CI", open, "true", Use},
		{"unreachable skips", closed, "", Skip},
		{"unreachable fails under CI", closed, "true", Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvCI, tt.ci)
			t.Setenv(EnvRequireServices, "")
			t.Setenv(EnvKafkaBrokers, closedAddr(t)+","+tt.addr)
			t.Setenv(EnvPostgresURL, "postgres://flowrun:pw@"+tt.addr+"/flowrun?sslmode=disable")

			f := &fakeTB{TB: t}
			brokers := Kafka(f)
			checkOutcome(t, "Kafka", f, tt.want, len(brokers) == 2)

			f = &fakeTB{TB: t}
			u := Postgres(f)
			checkOutcome(t, "Postgres", f, tt.want, strings.Contains(u, tt.addr))
			if f.failed+f.skipped != "" && strings.Contains(f.failed+f.skipped, "pw@") {
				t.Errorf("message leaks the URL's password: %s", f.failed+f.skipped)
			}
		})
	}
}

func checkOutcome(t *testing.T, what string, f *fakeTB, want Action, gotValue bool) {
	t.Helper()
	got := Use
	switch {
	case f.failed != "":
		got = Fail
	case f.skipped != "":
		got = Skip
	}
	if got != want {
		t.Errorf("%s: outcome %v (skip %q, fatal %q), want %v", what, got, f.skipped, f.failed, want)
	}
	if (want == Use) != gotValue {
		t.Errorf("%s: returned value present=%v, want %v", what, gotValue, want == Use)
	}
	if want != Use && !strings.Contains(f.skipped+f.failed, "scripts/services/up.sh") {
		t.Errorf("%s: message does not say how to start the server: %s", what, f.skipped+f.failed)
	}
}

// TestLive checks the real servers the same way integration tests find them:
// it skips on a machine without them and, under CI, fails there, which
// proves CI started them.
func TestLive(t *testing.T) {
	brokers := Kafka(t)
	u := Postgres(t)
	t.Logf("kafka %v, postgres %s", brokers, u)
}
