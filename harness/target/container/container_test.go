//go:build linux

package container_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/container"
	"github.com/hilproject/hil/harness/target/internal/targettest"
	conformance "github.com/hilproject/hil/harness/target/targettest"
	"github.com/hilproject/hil/internal/testenv"
)

// One private engine for the whole package, reached through DOCKER_HOST.
func TestContainerTarget(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "/bin/busybox", "busybox-static")
	images := map[string]*image.Image{}
	open := func(t *testing.T, variant, platform string) *image.Image {
		if img := images[variant+platform]; img != nil {
			return img
		}
		img := targettest.Open(t, variant, platform)
		images[variant+platform] = img
		return img
	}
	host := testenv.Dockerd(t)
	t.Setenv("DOCKER_HOST", host)
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	tgt := container.New()

	// boot starts variant and registers a cleanup that closes it and then
	// checks the engine holds no container and no hil.local image.
	boot := func(t *testing.T, variant, platform, iface string) (target.App, *targettest.Collector) {
		t.Helper()
		img := open(t, variant, platform)
		return targettest.Boot(t, tgt, img, variant+" "+platform, iface, 90*time.Second, func() { assertEngineClean(t, cli) })
	}

	t.Run("conformance", func(t *testing.T) {
		conformance.Conformance(t, func(*testing.T) target.Target { return tgt }, targettest.SampleApp(t, "linux/amd64"))
		assertEngineClean(t, cli)
	})

	t.Run("amd64 native: frames arrive through the veth, SIGTERM gives the summary", func(t *testing.T) {
		dev, out := boot(t, "pcapwatch", "linux/amd64", "lan0")
		if caps := target.CapabilitiesOf(dev); !caps.Capture {
			t.Fatalf("expected capture on a native engine, got %+v", caps)
		}
		targettest.CapturesARPs(t, dev, out, "lan0", 4, 30*time.Second, 30*time.Second)
		info := dev.Info()
		for k, want := range map[string]string{
			"mode":        "native",
			"docker_runs": "/opt/pcapwatch --iface lan0",
			"entrypoint":  "/opt/pcapwatch",
			"healthcheck": "none",
			"image":       "hil.local/pcapwatch:",
		} {
			if !strings.Contains(info.String(k), want) {
				t.Errorf("info[%s] = %q: expected it to contain %q", k, info.String(k), want)
			}
		}
	})

	t.Run("arm/v7 on x86: runs under the bind-mounted qemu, capture unsupported with the reason", func(t *testing.T) {
		dev, out := boot(t, "pcapwatch", "linux/arm/v7", "eth0")
		targettest.HitsEmulatorGap(t, dev, out, 30*time.Second, 30*time.Second)
		info := dev.Info()
		if !strings.HasPrefix(info.String("docker_runs"), "/.hil/qemu-arm-static -0 /opt/pcapwatch /opt/pcapwatch --iface eth0") {
			t.Errorf("docker_runs = %q: expected the qemu wrapper around the image's entrypoint", info.String("docker_runs"))
		}
	})

	for _, tc := range []struct {
		variant, platform string
		code              int
		line              string
	}{
		{"crash-on-start", "linux/amd64", 1, "fatal"},
		{"crash-on-start", "linux/arm/v7", 1, "fatal"},
		{"no-libpcap", "linux/amd64", 127, "libpcap.so.0.8: cannot open shared object file"},
		{"no-libpcap", "linux/arm/v7", 127, "libpcap.so.0.8: cannot open shared object file"},
	} {
		t.Run(tc.variant+" "+tc.platform, func(t *testing.T) {
			dev, out := boot(t, tc.variant, tc.platform, "eth0")
			targettest.FailsLikeABoard(t, dev, out, tc.code, tc.line, 30*time.Second, 10*time.Second)
		})
	}

	// The container killed, removed or paused from outside hil under a wait
	// or an upper-bound step is a dead device: an infra-error naming the
	// container, never a pass, never the app's failure.
	outside := func(do func(ctx context.Context, id string) error) func(testing.TB, target.App) {
		return func(t testing.TB, dev target.App) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := do(ctx, dev.Info().String("container")); err != nil {
				t.Errorf("fault: %v", err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		fault targettest.Fault
		want  string
	}{
		{"docker kill during wait", targettest.Fault{Step: 0, After: time.Second, Do: outside(func(ctx context.Context, id string) error {
			_, err := cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"})
			return err
		})}, "was killed by signal 9 (SIGKILL), which hil did not send"},
		{"docker rm -f during expect_output == 0", targettest.Fault{Step: 1, After: 300 * time.Millisecond, Do: outside(func(ctx context.Context, id string) error {
			_, err := cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
			return err
		})}, "removed from the engine"},
		{"docker pause during wait", targettest.Fault{Step: 0, After: time.Second, Do: outside(func(ctx context.Context, id string) error {
			_, err := cli.ContainerPause(ctx, id, client.ContainerPauseOptions{})
			return err
		})}, "is paused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := targettest.Images{Img: open(t, "pcapwatch", "linux/amd64")}
			res := targettest.RunCase(t, tgt, img, quietSteps, &tc.fault)
			t.Logf("%s: %s: %s", tc.name, res.Verdict, res.Reason)
			if td := res.Steps[len(res.Steps)-1]; td.Kind != scenario.PhaseTeardown || td.Verdict != scenario.Pass {
				t.Errorf("tear down: %s %s", td.Verdict, td.Message)
			}
			if res.Verdict != scenario.InfraError || !strings.Contains(res.Reason, tc.want) || !strings.Contains(res.Reason, "the app container ") {
				t.Fatalf("verdict %s, want infra-error saying %q: %s", res.Verdict, tc.want, res.Reason)
			}
			assertEngineClean(t, cli)
		})
	}

	// A board's CPU model reaches the bind-mounted qemu-user: a Pi Zero W
	// runs the sample's armel build (linux/arm/v5) under -cpu arm1176 and
	// its armhf build dies of SIGILL, as on the board.
	t.Run("pi0w: the armel build starts, the armhf build dies of SIGILL", func(t *testing.T) {
		pi0w, err := board.Builtin().Lookup("pi0w")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			platform string
			signal   string
		}{{"linux/arm/v5", ""}, {"linux/arm/v7", "SIGILL"}} {
			img := open(t, "pcapwatch", c.platform)
			cfg := targettest.RunConfig(img, "eth0")
			cfg.Cmd, cfg.Board = []string{"-h"}, &pi0w
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			dev, err := tgt.Boot(ctx, img, cfg)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			out := targettest.Collect(t, dev)
			t0 := time.Now()
			ex, err := dev.Wait(ctx)
			t.Logf("%s: %s after %s", c.platform, ex, time.Since(t0))
			out.Rest(2 * time.Second)
			info := dev.Info()
			dev.Close()
			cancel()
			if err != nil || !ex.Observed || ex.Signal != c.signal || (c.signal == "" && ex.Code != 0) {
				t.Errorf("%s on pi0w: %s, %v; want signal %q (output %q)", c.platform, ex, err, c.signal, out.Text())
			}
			if info["board"] != "pi0w" || info["cpu"] != "arm1176" {
				t.Errorf("%s: info board %q cpu %q", c.platform, info["board"], info["cpu"])
			}
			if c.signal == "" && !strings.Contains(out.Text(), "Usage of /opt/pcapwatch") {
				t.Errorf("armel build on pi0w printed %q", out.Text())
			}
			assertEngineClean(t, cli)
		}
	})

	t.Run("a user the image lacks fails before anything starts", func(t *testing.T) {
		img := open(t, "pcapwatch", "linux/amd64")
		cfg := targettest.RunConfig(img, "eth0")
		cfg.User = "pcap"
		dev, err := tgt.Boot(context.Background(), img, cfg)
		if err == nil {
			dev.Close()
			t.Fatal("expected an error for a user the image does not have")
		}
		if !strings.Contains(err.Error(), `"pcap" does not exist`) {
			t.Errorf("error %q: expected it to name the missing user", err)
		}
		assertEngineClean(t, cli)
	})
}

const quietSteps = `name: quiet
targets: [container]
platforms: [linux/amd64]
startup: {budget: 60s, ready: {regex: "^ready iface=eth0$"}}
steps:
  - wait: 3s
  - expect_output: {regex: error, count: "== 0", within: 3s, settle: 2s}
  - expect_no_output: {regex: error}
`

func assertEngineClean(t *testing.T, cli *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	for _, c := range cs.Items {
		t.Errorf("container %s (%s, image %s) left on the engine", c.ID[:12], c.State, c.Image)
	}
	imgs, err := cli.ImageList(ctx, client.ImageListOptions{All: true})
	if err != nil {
		t.Fatalf("listing images: %v", err)
	}
	for _, im := range imgs.Items {
		t.Errorf("image %s %v left on the engine", im.ID, im.RepoTags)
	}
}
