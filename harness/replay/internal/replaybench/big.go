//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hilproject/hil/harness/link/veth"
)

// writeSynthetic writes a pcap of n 60-byte Ethernet/IPv4/UDP frames, 1 µs
// apart, each with its own source port and sequence number (about 76
// bytes a record: 2M frames are 152 MB, like the capture in issue 19).
func writeSynthetic(ctx context.Context, path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	w.Write(hdr)
	rec := make([]byte, 16+60)
	frame := rec[16:]
	copy(frame[0:6], []byte{0x02, 0, 0, 0, 0, 0x02})  // dst
	copy(frame[6:12], []byte{0x02, 0, 0, 0, 0, 0x01}) // src
	frame[12], frame[13] = 0x08, 0x00                 // IPv4
	ip := frame[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], 46-0) // 20 IP + 8 UDP + 18 payload
	copy(ip[12:16], []byte{192, 0, 2, 1})
	copy(ip[16:20], []byte{192, 0, 2, 2})
	udp := frame[34:42]
	binary.BigEndian.PutUint16(udp[2:], 9)
	binary.BigEndian.PutUint16(udp[4:], 26)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		if i%(1<<20) == 0 && ctx.Err() != nil {
			f.Close()
			return ctx.Err()
		}
		ts := base.Add(time.Duration(i) * time.Microsecond)
		binary.LittleEndian.PutUint32(rec[0:], uint32(ts.Unix()))
		binary.LittleEndian.PutUint32(rec[4:], uint32(ts.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rec[8:], 60)
		binary.LittleEndian.PutUint32(rec[12:], 60)
		binary.BigEndian.PutUint16(udp[0:], uint16(1024+i%60000))
		binary.BigEndian.PutUint32(frame[42:], uint32(i))
		if _, err := w.Write(rec); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// bigResult is one tool's top-speed replay of a generated capture.
type bigResult struct {
	maxRSSKB  int64
	wall      time.Duration
	delivered uint64  // the app end's rx_packets delta: frames that reached it
	toolPPS   float64 // the rate the tool itself reports (first to last frame)
}

// runBig replays each generated capture at top speed with every tool on
// the same veth pair and prints max RSS (getrusage of the process) and
// rates side by side. The captures go into a temp dir removed afterwards.
func runBig(ctx context.Context, l *veth.Link, sizes []int, runs int, tools []bigTool) error {
	dir, err := os.MkdirTemp("", "hil-replaybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, n := range sizes {
		path := filepath.Join(dir, fmt.Sprintf("synthetic-%d.pcap", n))
		t0 := time.Now()
		if err := writeSynthetic(ctx, path, n); err != nil {
			return fmt.Errorf("generating %s: %w", path, err)
		}
		st, _ := os.Stat(path)
		fmt.Printf("\n== top speed, generated capture of %d frames (%d MB, written in %v), best of %d runs per tool, interleaved\n", n, st.Size()>>20, time.Since(t0).Round(time.Millisecond), runs)
		best := make([]bigResult, len(tools))
		for r := 0; r < runs; r++ {
			for i, t := range tools {
				res, err := measureBig(ctx, l, t.cmd(path), t.parse)
				if err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
				fmt.Printf("  run %d %-22s max RSS %6.1f MB, %8.0f pps, %d delivered, wall %v\n", r+1, t.name, float64(res.maxRSSKB)/1024, res.toolPPS, res.delivered, res.wall.Round(time.Millisecond))
				// The highest RSS of any run; the best rate.
				b := &best[i]
				b.maxRSSKB = max(b.maxRSSKB, res.maxRSSKB)
				if res.toolPPS > b.toolPPS {
					b.toolPPS, b.delivered, b.wall = res.toolPPS, res.delivered, res.wall
				}
			}
		}
		fmt.Printf("  %-22s %12s %14s %14s %12s\n", "", "max RSS", "best rate", "delivered", "wall")
		for i, t := range tools {
			res := best[i]
			fmt.Printf("  %-22s %9.1f MB %10.0f pps %14d %12v\n", t.name, float64(res.maxRSSKB)/1024, res.toolPPS, res.delivered, res.wall.Round(time.Millisecond))
		}
		os.Remove(path)
	}
	return nil
}

type bigTool struct {
	name  string
	cmd   func(path string) *exec.Cmd
	parse func(out string) float64
}

func measureBig(ctx context.Context, l *veth.Link, cmd *exec.Cmd, parse func(string) float64) (bigResult, error) {
	before, err := appRxPackets(l)
	if err != nil {
		return bigResult{}, err
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return bigResult{}, err
	}
	stopKill := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	err = cmd.Wait()
	stopKill()
	wall := time.Since(start)
	if ctx.Err() != nil {
		return bigResult{}, ctx.Err()
	}
	if err != nil {
		return bigResult{}, fmt.Errorf("%v: %w\n%s", cmd.Args, err, out.String())
	}
	time.Sleep(200 * time.Millisecond) // let the last frames reach the counters
	after, err := appRxPackets(l)
	if err != nil {
		return bigResult{}, err
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res := bigResult{wall: wall, delivered: after - before, toolPPS: parse(out.String())}
	if ru != nil {
		res.maxRSSKB = ru.Maxrss
	}
	return res, nil
}

// appRxPackets reads the app end's receive counter inside its namespace.
func appRxPackets(l *veth.Link) (uint64, error) {
	out, err := exec.Command("ip", "netns", "exec", l.NetNSName(), "cat", "/sys/class/net/"+l.AppIface()+"/statistics/rx_packets").Output()
	if err != nil {
		return 0, fmt.Errorf("reading rx_packets of %s in %s: %w", l.AppIface(), l.NetNSName(), err)
	}
	return strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
}

var (
	hilRate       = regexp.MustCompile(`: ([0-9.]+) pps`)
	tcpreplayRate = regexp.MustCompile(`Rated: [0-9.]+ Bps, [0-9.]+ Mbps, ([0-9.]+) pps`)
)

func parseRate(re *regexp.Regexp) func(string) float64 {
	return func(out string) float64 {
		m := re.FindStringSubmatch(out)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, errors.New("--big: expected frame counts separated by commas, like 2000000,20000000")
		}
		out = append(out, n)
	}
	return out, nil
}
