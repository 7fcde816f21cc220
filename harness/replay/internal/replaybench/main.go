//go:build linux

// Command replaybench compares `hil replay` with tcpreplay on one veth pair
// in one run (scripts/bench/20-replay.sh): top-speed throughput on the
// 100k burst (frames counted on the receiving end) and the inter-frame gap
// error at x1 on the home-minute fixture, measured the same way for both
// tools: kernel receive timestamps on the app end against the fixture's
// own gaps. With --big, it also generates captures of millions of frames
// (in a temp dir, removed after) and compares the tools' memory (max RSS)
// and rate at top speed on them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/pcapfixtures"
)

func main() {
	hil := flag.String("hil", "build/hil", "the hil binary")
	tcpreplay := flag.String("tcpreplay", "tcpreplay", "the tcpreplay binary")
	burstRuns := flag.Int("burst-runs", 3, "top-speed runs per tool (best counts)")
	skipTiming := flag.Bool("skip-timing", false, "skip the ~2 minute x1 timing comparison")
	big := flag.String("big", "", "also replay generated captures of these many frames at top speed, comparing max RSS (e.g. 2000000,20000000)")
	onlyBig := flag.Bool("only-big", false, "run only the --big comparison")
	hilBefore := flag.String("hil-before", "", "with --big: another hil binary (an older build) to compare with")
	bigRuns := flag.Int("big-runs", 3, "with --big: runs per tool and capture (highest RSS, best rate count)")
	flag.Parse()
	sizes, err := parseSizes(*big)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replaybench:", err)
		os.Exit(2)
	}
	if err := run(*hil, *tcpreplay, *burstRuns, *skipTiming, sizes, *bigRuns, *onlyBig, *hilBefore); err != nil {
		fmt.Fprintln(os.Stderr, "replaybench:", err)
		os.Exit(1)
	}
}

type result struct {
	received   int
	rxSpan     time.Duration // first to last arrival
	wall       time.Duration // the tool's process, start to exit
	gapP50     time.Duration
	gapP99     time.Duration
	gapMax     time.Duration
	drift      time.Duration
	toolOutput string
}

func fixture(name string) (string, *replay.Capture, error) {
	fx, err := pcapfixtures.Lookup(name)
	if err != nil {
		return "", nil, err
	}
	p, err := fx.Path()
	if err != nil {
		return "", nil, err
	}
	c, err := replay.Load(p)
	return p, c, err
}

func run(hil, tcpreplay string, burstRuns int, skipTiming bool, big []int, bigRuns int, onlyBig bool, hilBefore string) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespace, AF_PACKET)")
	}
	// An interrupt ends the run through its defers: the veth pair and the
	// generated captures (gigabytes) are removed on every path.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := veth.New(ctx)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Printf("veth pair %s <-> %s:eth0 (MTU %d); hil = %s; tcpreplay = %s\n", l.HostIface(), l.NetNSName(), l.MTU(), hil, tcpreplay)
	if onlyBig {
		return runBig(ctx, l, big, bigRuns, bigTools(l, hil, tcpreplay, hilBefore))
	}
	if len(big) > 0 {
		defer func() {
			if err == nil {
				err = runBig(ctx, l, big, bigRuns, bigTools(l, hil, tcpreplay, hilBefore))
			}
		}()
	}

	burstPath, burst, err := fixture("burst-100k")
	if err != nil {
		return err
	}
	tools := []struct {
		name string
		top  func(path string) *exec.Cmd
		x1   func(path string) *exec.Cmd
	}{
		{"hil replay", func(p string) *exec.Cmd {
			return exec.Command(hil, "replay", p, "--iface", l.HostIface(), "--speed", "top")
		}, func(p string) *exec.Cmd {
			return exec.Command(hil, "replay", p, "--iface", l.HostIface(), "--speed", "original")
		}},
		{"tcpreplay", func(p string) *exec.Cmd {
			return exec.Command(tcpreplay, "--topspeed", "-i", l.HostIface(), p)
		}, func(p string) *exec.Cmd {
			return exec.Command(tcpreplay, "--multiplier=1", "-i", l.HostIface(), p)
		}},
	}

	fmt.Printf("\n== top speed, %s (%d frames of 60 bytes), best of %d runs each, interleaved\n", "burst-100k", len(burst.Frames), burstRuns)
	best := make([]result, len(tools))
	for r := 0; r < burstRuns; r++ {
		for i, t := range tools {
			res, err := measure(l, t.top(burstPath), burst, false)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			fmt.Printf("  run %d %-10s received %6d/%d in %8.1f ms (receiver) = %9.0f pps; process wall %v\n", r+1, t.name, res.received, len(burst.Frames),
				ms(res.rxSpan), rate(res), res.wall.Round(time.Millisecond))
			if res.received > best[i].received || (res.received == best[i].received && rate(res) > rate(best[i])) {
				best[i] = res
			}
		}
	}
	hr, tr := rate(best[0]), rate(best[1])
	fmt.Printf("%-32s %14s %14s\n", "", "hil replay", "tcpreplay")
	fmt.Printf("%-32s %14d %14d\n", "frames received (best run)", best[0].received, best[1].received)
	fmt.Printf("%-32s %14.0f %14.0f\n", "rate at the receiver, pps", hr, tr)
	fmt.Printf("ratio hil/tcpreplay: %.2f (target >= 1.0)\n", hr/tr)

	if skipTiming {
		return nil
	}
	mixPath, mix, err := fixture("home-minute")
	if err != nil {
		return err
	}
	span := mix.Frames[len(mix.Frames)-1].Offset
	fmt.Printf("\n== x1 (original timing), home-minute (%d frames over %v), gap error at the receiver\n", len(mix.Frames), span)
	var timed []result
	for _, t := range tools {
		res, err := measure(l, t.x1(mixPath), mix, true)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		timed = append(timed, res)
	}
	fmt.Printf("%-32s %14s %14s\n", "", "hil replay", "tcpreplay")
	fmt.Printf("%-32s %14d %14d\n", "frames received", timed[0].received, timed[1].received)
	for _, row := range []struct {
		name string
		f    func(result) time.Duration
	}{{"gap error p50", func(r result) time.Duration { return r.gapP50 }}, {"gap error p99", func(r result) time.Duration { return r.gapP99 }},
		{"gap error max", func(r result) time.Duration { return r.gapMax }}, {"drift at the last frame", func(r result) time.Duration { return r.drift }}} {
		fmt.Printf("%-32s %14v %14v\n", row.name, row.f(timed[0]).Round(100*time.Nanosecond), row.f(timed[1]).Round(100*time.Nanosecond))
	}
	verdict := "hil's p99 is no worse"
	if timed[0].gapP99 > timed[1].gapP99 {
		verdict = "hil's p99 is WORSE"
	}
	fmt.Printf("p99 gap error hil/tcpreplay: %v vs %v: %s\n", timed[0].gapP99.Round(100*time.Nanosecond), timed[1].gapP99.Round(100*time.Nanosecond), verdict)
	return nil
}

func bigTools(l *veth.Link, hil, tcpreplay, hilBefore string) []bigTool {
	hilTool := func(name, bin string) bigTool {
		return bigTool{name, func(p string) *exec.Cmd {
			return exec.Command(bin, "replay", p, "--iface", l.HostIface(), "--speed", "top")
		}, parseRate(hilRate)}
	}
	tools := []bigTool{hilTool("hil replay", hil)}
	if hilBefore != "" {
		tools = append(tools, hilTool("hil replay (before)", hilBefore))
	}
	return append(tools, bigTool{"tcpreplay", func(p string) *exec.Cmd {
		return exec.Command(tcpreplay, "--topspeed", "-i", l.HostIface(), p)
	}, parseRate(tcpreplayRate)})
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func rate(r result) float64 {
	if r.rxSpan <= 0 {
		return 0
	}
	return float64(r.received-1) / r.rxSpan.Seconds()
}

// measure runs cmd while an AF_PACKET socket on the app end records every
// frame with its kernel timestamp, until the tool exited and nothing more
// arrived for a second.
func measure(l *veth.Link, cmd *exec.Cmd, c *replay.Capture, gaps bool) (result, error) {
	rd, err := veth.OpenSocketIn(l.NetNSPath(), l.AppIface())
	if err != nil {
		return result{}, err
	}
	defer rd.Close()
	var times []time.Time
	var sizes []int
	rxDone := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		for {
			rd.SetDeadline(time.Now().Add(time.Second))
			f, err := rd.ReadFrame()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				select {
				case <-exited:
					rxDone <- nil
					return
				default:
					continue
				}
			}
			if err != nil {
				rxDone <- err
				return
			}
			times = append(times, f.Time)
			sizes = append(sizes, len(f.Data))
		}
	}()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	close(exited)
	if rerr := <-rxDone; rerr != nil {
		return result{}, rerr
	}
	if err != nil {
		return result{}, fmt.Errorf("%v: %w\n%s", cmd.Args, err, out.String())
	}
	res := result{received: len(times), wall: wall, toolOutput: out.String()}
	if drops, _ := rd.Drops(); drops > 0 {
		fmt.Printf("  (receiver socket dropped %d frames)\n", drops)
	}
	if len(times) > 1 {
		res.rxSpan = times[len(times)-1].Sub(times[0])
	}
	if gaps {
		if len(times) != len(c.Frames) {
			return res, fmt.Errorf("received %d of %d frames; cannot compare gaps", len(times), len(c.Frames))
		}
		var errs []time.Duration
		for i := 1; i < len(times); i++ {
			actual := times[i].Sub(times[i-1])
			planned := c.Frames[i].Offset - c.Frames[i-1].Offset
			errs = append(errs, (actual - planned).Abs())
		}
		sort.Slice(errs, func(i, j int) bool { return errs[i] < errs[j] })
		res.gapP50 = errs[len(errs)/2]
		res.gapP99 = errs[int(math.Ceil(0.99*float64(len(errs))))-1]
		res.gapMax = errs[len(errs)-1]
		res.drift = times[len(times)-1].Sub(times[0]) - c.Frames[len(c.Frames)-1].Offset
	}
	return res, nil
}
