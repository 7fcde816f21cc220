package device

import (
	"testing"

	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/targettest"
)

// The device target keeps the target contract, on a lab board (a real
// sshd and dockerd on this machine) running a busybox image.
func TestConformance(t *testing.T) {
	b := newLabBoard(t)
	img := busyboxImage(t)
	exit := runConfig(img)
	exit.Entrypoint = []string{"/bin/sh", "-c", "echo no such thing >&2; exit 3"}
	targettest.Conformance(t, func(*testing.T) target.Target { return New(b.Machine) }, targettest.App{
		Image: img, Serve: runConfig(img), Ready: "ready iface=eth0",
		Exit: exit, ExitCode: 3, ExitLine: "no such thing",
		Leftovers: func(t testing.TB, info target.Info) {
			targettest.Gone(t, info)
			b.assertClean(t.(*testing.T))
		},
	})
}
