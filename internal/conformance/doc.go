// Package conformance holds one test (and nothing else): every fixture
// replayed into the sample apps that capture (pcapwatch, tcpdump, and
// pcapwatch-rs in the full run) on every target that can capture (system
// on arm/v7; user, container and a lab board on amd64), as recorded and at
// top speed, must be captured frame for frame with nothing dropped. It has
// a package of its own so that its Docker engine and boards are its own.
package conformance
