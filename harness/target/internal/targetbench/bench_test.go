//go:build linux

package targetbench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/harness/target/container"
	"github.com/hilproject/hil/harness/target/internal/targettest"
	"github.com/hilproject/hil/harness/target/system"
	"github.com/hilproject/hil/harness/target/user"
	"github.com/hilproject/hil/internal/testenv"
)

func isReady(l target.Line) bool { return strings.HasPrefix(l.Text, "ready ") }

// bootToLine boots img and returns the time until the first line that
// matches want (ready, or any app line when capture is unsupported).
func bootToLine(ctx context.Context, tg target.Target, img *image.Image, cfg target.RunConfig) (time.Duration, string, error) {
	start := time.Now()
	dev, err := tg.Boot(ctx, img, cfg)
	if err != nil {
		return 0, "", err
	}
	defer dev.Close()
	want := isReady
	what := "ready"
	if !target.CapabilitiesOf(dev).Capture {
		want = func(l target.Line) bool { return l.Stream != target.Console }
		what = "first app line (capture unsupported)"
	}
	for {
		select {
		case l, ok := <-dev.Output():
			if !ok {
				return 0, "", fmt.Errorf("output ended before %s", what)
			}
			if want(l) {
				return time.Since(start), what, nil
			}
		case <-ctx.Done():
			return 0, "", fmt.Errorf("no %s: %w", what, ctx.Err())
		}
	}
}

// BenchmarkReady reports the median ms from Boot to ready per target and
// platform, after one warm-up boot (rootfs flatten, emulator probe, kernel
// download are one-time costs and not what is measured).
func BenchmarkReady(b *testing.B) {
	testenv.RequireRoot(b)
	host := testenv.Dockerd(b)
	b.Setenv("DOCKER_HOST", host)
	benchReferences(b, host)
	type labelled struct {
		label string
		tg    target.Target
	}
	targets := []labelled{
		{"user", user.New()},
		{"container", container.New()},
		{"container-keep-image", container.New(container.WithKeepImage())},
	}
	if os.Getenv("HIL_BENCH_SYSTEM") != "0" {
		targets = append(targets, labelled{"system", system.New()})
	}
	for _, lt := range targets {
		tg := lt.tg
		for _, platform := range []string{"linux/arm/v7", "linux/amd64"} {
			if tg.Name() == "system" && platform != "linux/arm/v7" {
				continue
			}
			b.Run(lt.label+"/"+strings.ReplaceAll(platform, "/", "-"), func(b *testing.B) {
				img := targettest.Open(b, "pcapwatch", platform)
				cfg := targettest.RunConfig(img, "eth0")
				cfg.Ready = isReady
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				if _, _, err := bootToLine(ctx, tg, img, cfg); err != nil {
					b.Skipf("%s on %s: warm-up boot failed: %v", platform, tg.Name(), err)
				}
				var times []float64
				what := ""
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					d, w, err := bootToLine(ctx, tg, img, cfg)
					if err != nil {
						b.Fatalf("%s on %s: %v", platform, tg.Name(), err)
					}
					times = append(times, float64(d.Microseconds())/1000)
					what = w
				}
				report(b, times, what)
			})
		}
	}
}

// firstLine runs cmd and returns the time until its first output line
// matching want, then kills it.
func firstLine(ctx context.Context, want func(string) bool, name string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	if err := cmd.Start(); err != nil {
		w.Close()
		r.Close()
		return 0, err
	}
	w.Close()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		r.Close()
		cmd.Wait()
	}()
	sc := bufio.NewScanner(r)
	var seen []string
	for sc.Scan() {
		if want(sc.Text()) {
			return time.Since(start), nil
		}
		seen = append(seen, sc.Text())
	}
	return 0, fmt.Errorf("%s: no expected line; output: %s", name, strings.Join(seen, " | "))
}

func report(b *testing.B, times []float64, what string) {
	sort.Float64s(times)
	b.ReportMetric(times[len(times)/2], "ms-median")
	b.ReportMetric(times[0], "ms-min")
	b.Logf("median %.1f ms to %s", times[len(times)/2], what)
}

// benchReferences times the same app started by the plain tools, without
// hil: qemu-arm-static -L / chroot on the host's own network (capturing on
// lo), and docker run --network none (capturing on lo) of the image loaded
// with docker load.
func benchReferences(b *testing.B, host string) {
	ctx := context.Background()
	isReadyText := func(s string) bool { return strings.HasPrefix(s, "ready ") }
	anyLine := func(string) bool { return true }
	for _, platform := range []string{"linux/arm/v7", "linux/amd64"} {
		b.Run("reference-qemu-user-or-chroot/"+strings.ReplaceAll(platform, "/", "-"), func(b *testing.B) {
			img := targettest.Open(b, "pcapwatch", platform)
			rootfs, err := img.RootFS(ctx)
			if err != nil {
				b.Fatal(err)
			}
			name, args, want, what := "chroot", []string{rootfs, "/opt/pcapwatch", "--iface", "lo"}, isReadyText, "ready"
			if platform != "linux/amd64" {
				name, args, want, what = "qemu-arm-static", []string{"-L", rootfs, rootfs + "/opt/pcapwatch", "--iface", "lo"}, anyLine, "first app line"
			}
			var times []float64
			for i := 0; i <= b.N; i++ {
				d, err := firstLine(ctx, want, name, args...)
				if err != nil {
					b.Fatal(err)
				}
				if i > 0 {
					times = append(times, float64(d.Microseconds())/1000)
				}
			}
			report(b, times, what)
		})
	}
	b.Run("reference-docker-run/linux-amd64", func(b *testing.B) {
		tarball := filepath.Join(testenv.ImagesDir(b), "pcapwatch.tar")
		if out, err := exec.Command("docker", "-H", host, "load", "-i", tarball).CombinedOutput(); err != nil {
			b.Skipf("docker load %s: %v: %s", tarball, err, out)
		}
		defer exec.Command("docker", "-H", host, "rmi", "-f", "hil.local/pcapwatch:amd64", "hil.local/pcapwatch:arm-v7").Run()
		var times []float64
		for i := 0; i <= b.N; i++ {
			name := fmt.Sprintf("hil-bench-ref-%d", i)
			d, err := firstLine(ctx, isReadyText, "docker", "-H", host, "run", "--rm", "--name", name, "--network", "none",
				"--cap-add", "NET_RAW", "--cap-add", "NET_ADMIN", "hil.local/pcapwatch:amd64", "--iface", "lo")
			exec.Command("docker", "-H", host, "rm", "-f", name).Run()
			if err != nil {
				b.Fatal(err)
			}
			if i > 0 {
				times = append(times, float64(d.Microseconds())/1000)
			}
		}
		report(b, times, "ready")
	})
}
