//go:build linux && cgo

// Command record-real re-records hil's fixtures of real traffic: HTTP bulk
// transfer, TLS, DNS against dnsmasq, ping, VLAN-tagged frames and IPv6
// neighbour discovery, made by real programs between two network
// namespaces on this machine and captured with harness/record. It writes
// the files and recorded.json into pcapfixtures. Needs root, iproute2,
// ethtool, dnsmasq-base and iputils-ping (scripts/apt-packages.txt).
//
//	sudo go run ./pcapfixtures/cmd/record-real               # all of them
//	sudo go run ./pcapfixtures/cmd/record-real -only dns-resolver,ipv6-nd
//
// Recordings are not reproducible byte for byte (timestamps, sequence
// numbers, TLS keys, kernel timers): re-recording changes the files, their
// sha256 and the scenarios that pin them. `go generate ./pcapfixtures`
// only reproduces the generated fixtures.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hilproject/hil/pcapfixtures"
	"github.com/hilproject/hil/pcapfixtures/internal/recorded"
)

func main() {
	out := flag.String("out", pcapfixtures.SourceDir(), "directory of the fixtures and recorded.json")
	only := flag.String("only", "", "comma-separated fixtures to re-record (default all: "+strings.Join(recorded.Recipes(), ", ")+")")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "record-real: no -out and no pcapfixtures source tree")
		os.Exit(2)
	}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := recorded.Record(ctx, *out, names, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "record-real:", err)
		os.Exit(1)
	}
}
