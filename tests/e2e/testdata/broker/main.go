// Command broker runs flowrun's embedded Kafka broker (kfake, through
// kafkaclient.Shared) in a process of its own, so an end-to-end test can take
// "Kafka" down with SIGKILL without touching the real Kafka other tests use.
//
//	broker TOPIC...
//
// It creates the topics, prints the broker address on stdout (one line, the
// test's readiness signal) and serves until SIGINT/SIGTERM or SIGKILL. Its
// data lives in memory and dies with it.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/flowrun/flowrun/operators/kafkaclient"
)

func main() {
	// A random port: the broker never reuses one another process holds, and
	// never falls back to "someone else's broker" as a fixed address would.
	os.Unsetenv(kafkaclient.EnvEmbeddedAddr)
	addrs, release, err := kafkaclient.Shared.Acquire(os.Args[1:]...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
	defer release()
	fmt.Println(strings.Join(addrs, ","))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
