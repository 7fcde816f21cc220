package system

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/testenv"
)

// The per-board figures of scripts/bench/30-system.sh: cold boot to the
// app's ready line and warm restore to it, on 2 vCPUs, for each board
// profile QEMU models, with the manifest of the sample index the board's
// engine pulls (virt, pi2, pi3b+/32, pi4/32: arm/v7; pi3b+, pi4/64, pi5:
// arm64), next to hil's generic virt machine without a board.
var benchBoards = []string{"", "virt", "pi2", "pi3b+/32", "pi3b+", "pi4/32", "pi4/64", "pi5"}

func benchBoardName(b string) string {
	if b == "" {
		return "no-board"
	}
	return strings.ReplaceAll(b, "/", "-")
}

// boardImage is the sample image's manifest that board pulls (arm/v7
// without a board), and its run config with the board.
func boardImage(tb testing.TB, name string) (*image.Image, target.RunConfig) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := image.Open(ctx, "oci:"+filepath.Join(testenv.ImagesDir(tb), "pcapwatch"))
	if err != nil {
		tb.Fatal(err)
	}
	platform := "linux/arm/v7"
	var bp *board.Board
	if name != "" {
		b, err := board.Builtin().Lookup(name)
		if err != nil {
			tb.Fatal(err)
		}
		pulled, err := b.Pull(a.Platforms(), a.Index() == nil)
		if err != nil {
			tb.Fatal(err)
		}
		platform, bp = pulled.Platform.String(), &b
	}
	img, err := a.Image(platform)
	if err != nil {
		tb.Fatal(err)
	}
	c := img.Config
	return img, target.RunConfig{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, Ready: pcapwatchReady, Board: bp}
}

func BenchmarkSystemBoardColdBoot(b *testing.B) {
	for _, name := range benchBoards {
		b.Run(benchBoardName(name), func(b *testing.B) {
			img, cfg := boardImage(b, name)
			tg := New(WithSnapshots(false), WithCPUs(2))
			var total time.Duration
			for i := 0; i < b.N; i++ {
				ctx := testCtx(b, 90*time.Second)
				t0 := time.Now()
				d, err := tg.Boot(ctx, img, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, seen, ok := waitLine(b, d, 60*time.Second, pcapwatchReady); !ok {
					d.Close()
					b.Fatalf("never ready: %v", seen)
				}
				total += time.Since(t0)
				d.Close()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s-to-ready")
		})
	}
}

func BenchmarkSystemBoardWarmRestore(b *testing.B) {
	for _, name := range benchBoards {
		b.Run(benchBoardName(name), func(b *testing.B) {
			img, cfg := boardImage(b, name)
			tg := New(WithSnapshotDir(b.TempDir()), WithCPUs(2))
			ctx := testCtx(b, 90*time.Second)
			d, err := tg.Boot(ctx, img, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, ok := waitLine(b, d, 60*time.Second, pcapwatchReady); !ok {
				b.Fatal("cold boot never ready")
			}
			d.Close()
			b.ResetTimer()
			var total time.Duration
			for i := 0; i < b.N; i++ {
				ctx := testCtx(b, 60*time.Second)
				t0 := time.Now()
				d, err := tg.Boot(ctx, img, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, ok := waitLine(b, d, 30*time.Second, pcapwatchReady); !ok {
					d.Close()
					b.Fatal("restored guest never ready")
				}
				total += time.Since(t0)
				if d.Info()["boot"] != "app" {
					d.Close()
					b.Fatalf("boot %q, want app (a warm restore of the app snapshot)", d.Info()["boot"])
				}
				d.Close()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s-to-ready")
		})
	}
}
