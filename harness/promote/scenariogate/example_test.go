package scenariogate_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/promote/scenariogate"
	"github.com/hilproject/hil/harness/registry"
)

// Gate an image from Go: the gate pins the candidate by digest, the
// scenario gate runs the scenarios on the system target (qemu-system-arm)
// against exactly that digest, and latest moves to it only when every case
// passed. The registry here is go-containerregistry's, on loopback, with
// hil's sample image pushed as the candidate; in CI it is yours (and
// without registry.WithInsecure: plain HTTP is for loopback only).
func Example() {
	ctx := context.Background()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := registry.New(registry.WithInsecure())
	candidate := strings.TrimPrefix(srv.URL, "http://") + "/pcapwatch:candidate"
	images := cmp.Or(os.Getenv("HIL_IMAGES"), filepath.Join("..", "..", "..", "build", "images"))
	ref, err := reg.ParseReference(candidate)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := promote.PushLayout(ctx, reg, filepath.Join(images, "pcapwatch"), ref); err != nil {
		fmt.Println(err)
		return
	}
	reports, _ := os.MkdirTemp("", "hil-gate-example-")
	defer os.RemoveAll(reports)

	test, err := scenariogate.Test(scenariogate.Config{
		Scenarios: []string{"testdata/startup.yaml"},
		Targets:   []string{"system"},
		Retries:   1,
		ReportDir: reports, // junit.xml, results.json, report.html
	})
	if err != nil {
		fmt.Println(err) // the scenarios or the target are wrong: nothing was pinned
		return
	}
	d, err := promote.Gate(ctx, candidate, "latest", test, promote.WithRegistry(reg))
	if err != nil {
		fmt.Println(err) // the gate could not decide (or could not write the tag)
		return
	}
	fmt.Println("promoted:", d.Promoted)
	for _, o := range d.Result.Outcomes {
		fmt.Println(o.Scenario, o.Target, o.Platform, o.Verdict)
	}
	fmt.Println("latest is the tested digest:", strings.HasSuffix(d.Tested, "@"+d.NewDigest))
	// Output:
	// promoted: true
	// startup system linux/arm/v7 pass
	// latest is the tested digest: true
}
