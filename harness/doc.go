// Package harness is hil's library: everything the hil CLI and the Ginkgo
// suite do is a call into one of its packages, one per stage of the data
// flow:
//
//	image    resolve a reference to a digest, pick a platform, flatten safely
//	startup  prove statically that the entrypoint can start (ELF, loader, libs, symbol versions)
//	target   boot the image: target/system (qemu-system-arm), target/user (qemu-user),
//	         target/container (Docker), target/device (a real board over SSH)
//	link     the harness's end of the device's network interface
//	replay   put pcap fixtures onto a link on a schedule
//	scenario YAML scenarios, the runner and verdicts
//	report   JUnit XML, JSON and HTML reports
//	promote  move a tag to exactly the digest that passed (promote/staticgate,
//	         promote/scenariogate: the tests a gate runs)
//
// This package assembles them: LoadSuite plans a run (scenarios × targets ×
// platforms) without opening the image, NewRunner and RunScenarios run it.
// From Go tests, harness/hiltest (plain go test) and harness/hilginkgo
// (Ginkgo) make every case a test of its own.
//
// Targets register by name (target.Register). This package brings the
// system and user targets; the container and device targets, and the
// docker-daemon: image source (image/dockerdaemon), are plug-ins a program
// imports for their side effect, so that a program that does not use them
// links no Docker client and no SSH.
package harness
