package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/link"
	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/internal/jsonfmt"
	"github.com/hilproject/hil/pcapfixtures"
)

func init() {
	var (
		iface, netnsName, appIface, speed, filter, oversize string
		loops                                               int
		asJSON                                              bool
		timeout                                             time.Duration
	)
	cmd := &cobra.Command{
		Use: "replay FIXTURE (--iface IFACE | --netns NAME)",
		Example: `  sudo hil replay home-minute --netns lab --speed original
  sudo hil replay burst-100k --iface veth-host --speed top --loop 3 --json
  sudo hil replay my.pcapng --netns /proc/1234/ns/net --speed x0.5 --filter 'arp or port 53'`,
		Short: "Replay a pcap/pcapng file or a bundled fixture into an interface",
		Long: `Replay writes the frames of FIXTURE (a pcap or pcapng file, or the name of a
bundled fixture: see "hil fixtures") so that an app capturing on the other
side receives them as ingress.

  --iface IFACE   write out of IFACE in this namespace (e.g. the host end of
                  a veth pair whose other end the app captures on)
  --netns NAME    the app runs in network namespace NAME (ip netns name, or a
                  path like /proc/PID/ns/net): if its --app-iface (eth0) is a
                  veth whose other end is here, write there; if it has no
                  such interface, create a veth pair for the replay and
                  remove it afterwards

Speeds: original (as captured), xN (N times faster, x0.5 is half speed;
0.001 <= N <= 1000000), Npps (fixed rate; 0.001 <= N <= 100000000) or top
(also topspeed: as fast as the link takes them), N in plain decimal: the
syntax of a scenario's schedule. A replay that cannot end within --timeout
(the capture's span on the schedule, times --loop, at most 1000000) is
refused before anything is sent; one that has not ended by then is
stopped. Frames longer than the interface MTU are skipped and counted
(--oversize fail refuses). SIGTERM or SIGINT stops the replay and removes
the pair it made; at start hil removes pairs and namespaces that killed
hil processes left. Needs root (AF_PACKET, namespaces).`,
		Args: needArgs(1, 1, "a FIXTURE: a bundled fixture's name (hil fixtures) or a pcap/pcapng file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (iface == "") == (netnsName == "") {
				return &exitError{2, fmt.Errorf("give exactly one of --iface or --netns")}
			}
			sched, err := replay.ParseSchedule(speed)
			if err != nil {
				return &exitError{2, fmt.Errorf("--speed: %w", err)}
			}
			if timeout <= 0 {
				return &exitError{2, fmt.Errorf("--timeout %s: expected a positive duration", timeout)}
			}
			opts := []replay.Option{replay.WithSchedule(sched), replay.WithLoops(loops)}
			if filter != "" {
				opts = append(opts, replay.WithFilter(filter))
			}
			switch oversize {
			case "skip":
			case "fail":
				opts = append(opts, replay.WithOversize(replay.FailOversize))
			default:
				return &exitError{2, fmt.Errorf("--oversize %q: expected skip or fail", oversize)}
			}
			path, name, err := resolveFixture(args[0])
			if err != nil {
				return &exitError{2, err}
			}
			// A scan, not a load: the frames stream from disk while they
			// are sent, so a capture of any size needs little memory.
			capture, err := replay.Open(path, opts...)
			if err != nil {
				return &exitError{2, err}
			}
			if err := replay.CheckBudget(sched, capture.Frames, capture.Span, loops, timeout); err != nil {
				return &exitError{2, fmt.Errorf("replaying %s: %w (--timeout)", name, err)}
			}
			removeLeftovers(cmd.ErrOrStderr())
			ctx, cancel := context.WithTimeoutCause(cmd.Context(), timeout, fmt.Errorf("the replay did not end within --timeout %s", timeout))
			defer cancel()
			l, note, err := openReplayLink(ctx, iface, netnsName, appIface)
			if err != nil {
				return &exitError{2, err}
			}
			defer l.Close()
			if note != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), note)
			}
			errOut := cmd.ErrOrStderr()
			if f, ok := errOut.(*os.File); ok && isTerminal(f) {
				opts = append(opts, replay.WithProgress(250*time.Millisecond, progressLine(errOut, name)))
			}
			st, err := replay.Send(ctx, l, capture, opts...)
			if asJSON {
				_ = printJSON(cmd.OutOrStdout(), jsonStats(name, l.HostIface(), st))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s: %v\n", name, l.HostIface(), st)
			}
			if err != nil {
				if cmd.Context().Err() != nil {
					return &exitError{130, fmt.Errorf("replay interrupted after %d frames", st.Frames)}
				}
				if ctx.Err() != nil {
					return &exitError{1, fmt.Errorf("replay stopped after %d frames: %w", st.Frames, context.Cause(ctx))}
				}
				return &exitError{1, err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&iface, "iface", "", "write out of this interface of the current namespace")
	f.StringVar(&netnsName, "netns", "", "network namespace of the app (name under /run/netns or a path)")
	f.StringVar(&appIface, "app-iface", "eth0", "with --netns: the app's capture interface in that namespace")
	f.StringVar(&speed, "speed", "original", "original, xN (x2, x0.5), Npps (1000pps) or top (topspeed)")
	f.IntVar(&loops, "loop", 1, "play the capture this many times (at most 1000000)")
	f.DurationVar(&timeout, "timeout", time.Hour, "refuse a replay that cannot end within this, stop one that has not")
	f.StringVar(&filter, "filter", "", "only frames matching this BPF expression (tcpdump syntax)")
	f.StringVar(&oversize, "oversize", "skip", "frames over the MTU: skip (and count) or fail")
	f.BoolVar(&asJSON, "json", false, "print the stats as JSON")
	rootCmd.AddCommand(cmd)
}

// resolveFixture takes a path, or a bundled fixture's name.
func resolveFixture(arg string) (path, name string, err error) {
	if _, serr := os.Stat(arg); serr == nil {
		return arg, filepath.Base(arg), nil
	}
	fx, lerr := pcapfixtures.Lookup(arg)
	if lerr != nil {
		return "", "", fmt.Errorf("%s is neither a file nor a bundled fixture (%v)", arg, lerr)
	}
	p, err := fx.Path()
	return p, fx.Name, err
}

// replayLink is the host end of the interface hil replay writes to.
type replayLink interface {
	link.Link
	HostIface() string
}

func progressLine(w io.Writer, name string) func(replay.Progress) {
	return func(p replay.Progress) {
		line := fmt.Sprintf("\r%s: %d/%d frames, %.1f s", name, p.Sent, p.Total, p.Elapsed.Seconds())
		if p.Planned > 0 {
			line += fmt.Sprintf(" of %.1f s", p.Planned.Seconds())
		}
		line += "\x1b[K" // erase what a longer previous line left
		if p.Sent == p.Total {
			line += "\n"
		}
		fmt.Fprint(w, line)
	}
}

func jsonStats(name, iface string, s replay.Stats) any {
	// The names of a replay step's stats in results.json.
	return map[string]any{
		"fixture": name, "iface": iface, "schedule": s.Schedule,
		"frames_sent": s.Frames, "bytes_sent": s.Bytes, "skipped": s.Skipped, "filtered": s.Filtered, "loops": s.Loops,
		"elapsed_ms": jsonfmt.Millis(s.Duration), "pps": s.PPS, "mbps": s.Mbps,
		"gap_error_p50_ms": jsonfmt.Millis(s.GapErrP50), "gap_error_p99_ms": jsonfmt.Millis(s.GapErrP99), "gap_error_max_ms": jsonfmt.Millis(s.GapErrMax),
		"drift_ms": jsonfmt.Millis(s.Drift), "max_late_ms": jsonfmt.Millis(s.MaxLate),
	}
}
