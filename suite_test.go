// The hil suite (harness/hilginkgo): every scenarios/*.yaml × target ×
// platform is a Ginkgo spec, labelled with the target, the platform
// ("linux-arm-v7") and the scenario's tags, so that
// `ginkgo --label-filter='capture && !performance' -p` works. It tests
// HIL_IMAGE (default: the bundled sample in HIL_IMAGES, default
// build/images); HIL_TARGETS, HIL_PLATFORMS, HIL_DEVICES, HIL_DEVICE,
// HIL_INSECURE, HIL_SHARD, HIL_TIMINGS and HIL_BOARDS (every case as each
// board, labelled board:NAME; HIL_BOARD_PROFILES adds profiles) change what
// runs (see harness.ConfigFromEnv) and the reports go to HIL_REPORT_DIR (default
// build/report). samples_test.go adds the other sample images and the
// broken variants that must fail for the right reason.
package hil_test

import (
	"cmp"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/hilginkgo"
	_ "github.com/hilproject/hil/harness/target/container"
	_ "github.com/hilproject/hil/harness/target/device"
)

func TestHIL(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "hil scenarios")
}

var imagesDir = cmp.Or(os.Getenv("HIL_IMAGES"), filepath.Join("build", "images"))

var bundled = harness.Config{Image: "oci:" + filepath.Join(imagesDir, "pcapwatch"), Scenarios: []string{"scenarios"}, Devices: "devices.yaml"}

var _ = hilginkgo.Specs(bundled, hilginkgo.FromEnv(), hilginkgo.Labels("scenarios"))

var _ = hilginkgo.Reports(cmp.Or(os.Getenv("HIL_REPORT_DIR"), filepath.Join("build", "report")))
