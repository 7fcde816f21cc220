package app_test

import (
	"testing"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/hiltest"
)

// Every case of scenarios/ (scenario × target × platform) is a subtest:
// go test -v ./... shows each as it runs, -run 'TestImage/arp-sweep'
// picks one. HIL_IMAGE, HIL_TARGETS, HIL_PLATFORMS ... override the
// configuration (hiltest.FromEnv).
func TestImage(t *testing.T) {
	hiltest.Run(t, harness.Config{
		Image:     "registry.lan/pcapwatch:candidate",
		Scenarios: []string{"scenarios"},
		Targets:   []string{"system"}, // qemu-system-arm: the default
	}, hiltest.FromEnv(), hiltest.WithReports("build/report"))
}
