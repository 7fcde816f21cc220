package system

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hilproject/hil/harness/target"
)

// BenchmarkSystemIdleCPU is what an idle guest costs the host: the CPU
// time QEMU uses per second of wall time while the sample app waits for
// frames (hil-init's 100 ms heartbeat included), on a warm boot; and the
// same while Alive is asked every 250 ms, as the runner does while a step
// waits.
func BenchmarkSystemIdleCPU(b *testing.B) {
	for _, poll := range []bool{false, true} {
		name := "idle"
		if poll {
			name = "alive-every-250ms"
		}
		b.Run(name, func(b *testing.B) {
			img, cfg := sampleImage(b, "pcapwatch")
			tg := New(WithSnapshotDir(b.TempDir()))
			var cpu, wall time.Duration
			for i := 0; i < b.N; i++ {
				ctx := testCtx(b, 60*time.Second)
				d, err := tg.Boot(ctx, img, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, ok := waitLine(b, d, 30*time.Second, pcapwatchReady); !ok {
					d.Close()
					b.Fatal("never ready")
				}
				go drain(b, d, time.Minute) // keep the output flowing, as the runner does
				pid, _ := strconv.Atoi(d.Info().String("pid"))
				time.Sleep(time.Second) // past the boot's own work
				c0, t0 := procCPU(b, pid), time.Now()
				for end := t0.Add(5 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
					if poll {
						if err := d.(target.Liveness).Alive(ctx); err != nil {
							b.Fatal(err)
						}
					}
				}
				cpu += procCPU(b, pid) - c0
				wall += time.Since(t0)
				d.Close()
			}
			b.ReportMetric(float64(cpu.Milliseconds())/wall.Seconds(), "qemu-cpu-ms/s")
		})
	}
}

// BenchmarkSystemAlive is the cost of one liveness check of a running
// guest (a QMP round trip plus in-memory checks).
func BenchmarkSystemAlive(b *testing.B) {
	img, cfg := sampleImage(b, "pcapwatch")
	ctx := testCtx(b, 5*time.Minute)
	d, err := New(WithSnapshotDir(b.TempDir())).Boot(ctx, img, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if _, _, ok := waitLine(b, d, 30*time.Second, pcapwatchReady); !ok {
		b.Fatal("never ready")
	}
	go drain(b, d, 5*time.Minute)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.(target.Liveness).Alive(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// procCPU is a process's user plus system CPU time from /proc.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}
