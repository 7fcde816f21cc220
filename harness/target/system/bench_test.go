package system

import (
	"encoding/json"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/link/qemustream"
	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/pcapfixtures"
)

// The benchmarks behind scripts/bench/30-system.sh, on the arm/v7 sample
// image: cold boot to ready, warm restore to ready, and the 100k burst
// replayed into the guest.

func BenchmarkSystemColdBoot(b *testing.B) {
	for _, cpus := range []int{1, 2} {
		b.Run(fmt.Sprintf("cpus-%d", cpus), func(b *testing.B) {
			img, cfg := sampleImage(b, "pcapwatch")
			tg := New(WithSnapshots(false), WithCPUs(cpus))
			var total time.Duration
			for i := 0; i < b.N; i++ {
				ctx := testCtx(b, 60*time.Second)
				t0 := time.Now()
				d, err := tg.Boot(ctx, img, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, seen, ok := waitLine(b, d, 30*time.Second, pcapwatchReady); !ok {
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

func BenchmarkSystemWarmRestore(b *testing.B) {
	for _, cpus := range []int{1, 2} {
		b.Run(fmt.Sprintf("cpus-%d", cpus), func(b *testing.B) {
			img, cfg := sampleImage(b, "pcapwatch")
			tg := New(WithSnapshotDir(b.TempDir()), WithCPUs(cpus))
			// One cold boot saves the snapshot.
			ctx := testCtx(b, 60*time.Second)
			d, err := tg.Boot(ctx, img, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, ok := waitLine(b, d, 30*time.Second, pcapwatchReady); !ok {
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
				if d.Info().String("boot") != "app" {
					d.Close()
					b.Fatalf("boot %q, want app (%v)", d.Info().String("boot"), d.Info())
				}
				d.Close()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s-to-ready")
		})
	}
}

// BenchmarkSystemBaseRestore boots the sample with other app arguments each
// time (an environment variable of its own), so that only the base snapshot
// (hil-init idle, before the app) matches: QEMU start to the app started
// ("boot"), to its ready line (which includes saving the new app-level
// snapshot), and what hil-init's receive-offload setup (ethtool ioctls)
// took in the guest on the cold boot.
func BenchmarkSystemBaseRestore(b *testing.B) {
	img, cfg := sampleImage(b, "pcapwatch")
	tg := New(WithSnapshotDir(b.TempDir()))
	ctx := testCtx(b, 60*time.Second)
	d, err := tg.Boot(ctx, img, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, ok := waitLine(b, d, 30*time.Second, pcapwatchReady); !ok {
		b.Fatal("cold boot never ready")
	}
	cold := d.Info()
	d.Close()
	b.ResetTimer()
	var boot, ready time.Duration
	for i := 0; i < b.N; i++ {
		c := cfg
		c.Env = append(append([]string{}, cfg.Env...), fmt.Sprintf("HIL_BENCH_CASE=%d-%d", time.Now().UnixNano(), i))
		ctx := testCtx(b, 60*time.Second)
		t0 := time.Now()
		d, err := tg.Boot(ctx, img, c)
		if err != nil {
			b.Fatal(err)
		}
		boot += time.Since(t0)
		if _, _, ok := waitLine(b, d, 30*time.Second, pcapwatchReady); !ok {
			d.Close()
			b.Fatal("never ready")
		}
		ready += time.Since(t0)
		if d.Info().String("boot") != "base" {
			d.Close()
			b.Fatalf("boot %q, want base (%v)", d.Info().String("boot"), d.Info())
		}
		d.Close()
	}
	b.ReportMetric(boot.Seconds()/float64(b.N), "s-to-started")
	b.ReportMetric(ready.Seconds()/float64(b.N), "s-to-ready")
	ethtool, _ := strconv.ParseFloat(cold.String("ethtool_ms"), 64)
	b.ReportMetric(ethtool, "cold-ethtool-ms")
	idle, _ := strconv.ParseFloat(cold.String("init_idle_ms"), 64)
	b.ReportMetric(idle/1000, "cold-s-to-idle")
	saved, _ := strconv.ParseFloat(cold.String("base_snapshot_saved_ms"), 64)
	b.ReportMetric(saved/1000, "base-save-s")
}

// BenchmarkSystemReplay100k sends the burst fixture at top speed and at
// 100,000 pps, with the image's own arguments and with a capture ring big
// enough for the whole burst.
func BenchmarkSystemReplay100k(b *testing.B) {
	fx, err := pcapfixtures.Lookup("burst-100k")
	if err != nil {
		b.Fatal(err)
	}
	path, err := fx.Path()
	if err != nil {
		b.Fatal(err)
	}
	capture, err := replay.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, args := range []struct {
		name  string
		extra []string
	}{
		{"image-args", nil},
		{"ring-64MiB-snap256", []string{"--snaplen", "256", "--buffer-mib", "64"}},
	} {
		for _, speed := range []string{"top", "100000pps"} {
			b.Run(args.name+"/"+speed, func(b *testing.B) {
				img, cfg := sampleImage(b, "pcapwatch")
				cfg.Cmd = append(append([]string{}, cfg.Cmd...), args.extra...)
				sched, _ := replay.ParseSchedule(speed)
				tg := New(WithSnapshotDir(b.TempDir()))
				var pps, guest, lost, dropped float64
				for i := 0; i < b.N; i++ {
					ctx := testCtx(b, 120*time.Second)
					d, err := tg.Boot(ctx, img, cfg)
					if err != nil {
						b.Fatal(err)
					}
					if _, _, ok := waitLine(b, d, 30*time.Second, pcapwatchReady); !ok {
						d.Close()
						b.Fatal("never ready")
					}
					t0 := time.Now()
					st, err := replay.Send(ctx, d.Link(), capture, replay.WithSchedule(sched))
					if err == nil {
						err = d.Link().(*qemustream.Link).Drain(ctx)
					}
					if err != nil {
						d.Close()
						b.Fatal(err)
					}
					// Until QEMU has read the last frame off the socket (it
					// reads only while the guest NIC takes frames); frames
					// can still be in flight in the guest, hence the settle.
					intake := float64(st.Frames) / time.Since(t0).Seconds()
					time.Sleep(3 * time.Second)
					d.Signal(syscall.SIGTERM)
					l, seen, ok := waitLine(b, d, 60*time.Second, isSummary)
					d.Close()
					if !ok {
						b.Fatalf("no summary: %v", seen)
					}
					var sum pcapwatchSummary
					json.Unmarshal([]byte(l.Text), &sum)
					pps += st.PPS
					guest += intake
					lost += float64(st.Frames - sum.Frames)
					dropped += float64(sum.Dropped + sum.IfDropped)
					b.Logf("%s %s: %s; QEMU read %.0f pps; pcapwatch %s", args.name, speed, st, intake, l.Text)
				}
				b.ReportMetric(pps/float64(b.N), "pps")
				b.ReportMetric(guest/float64(b.N), "qemu-read-pps")
				b.ReportMetric(lost/float64(b.N), "frames-lost")
				b.ReportMetric(dropped/float64(b.N), "pcap-dropped")
			})
		}
	}
}
