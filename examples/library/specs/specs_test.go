package specs_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/hilginkgo"
)

func TestSpecs(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "pcapwatch on ARM")
}

// One spec per case, labelled with its target, platform and tags:
// ginkgo -p --label-filter='capture && linux-arm-v7' ./specs
var _ = hilginkgo.Specs(harness.Config{
	Image:     "registry.lan/pcapwatch:candidate",
	Scenarios: []string{"../scenarios"},
}, hilginkgo.FromEnv())

// The results of every spec of every parallel process, in one report.
var _ = hilginkgo.Reports("../build/report")
