package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/record"
	"github.com/hilproject/hil/internal/jsonfmt"
)

func init() {
	var (
		iface, netnsName, out, format, filter string
		count, snaplen                        int
		duration                              time.Duration
		asJSON                                bool
	)
	cmd := &cobra.Command{
		Use:   "record --iface IFACE [--netns NAME] --out FILE (--count N | --duration D)",
		Short: "Capture live traffic into a pcap or pcapng file with libpcap",
		Long: `Record captures what crosses an interface, with libpcap, into a pcap or
pcapng file: the traffic of a real app or device, to replay later with
"hil replay" or in a scenario.

  --iface IFACE   the interface to capture on
  --netns NAME    the interface is in this network namespace (a name under
                  /run/netns, or a path like /proc/PID/ns/net)
  --out FILE      .pcap (microsecond timestamps) or .pcapng (nanoseconds,
                  interface name and libpcap's drop counts); --format overrides

The capture ends after --count frames or --duration, whichever comes first
(at least one is required); Ctrl-C ends it early and keeps what was
captured. --filter takes a BPF expression (tcpdump syntax), --snaplen the
bytes kept of each frame. The file is written beside FILE under a temporary
name and renamed at the end, so a failed capture leaves no partial file.
Needs root (CAP_NET_RAW; entering a namespace needs CAP_SYS_ADMIN).`,
		Example: `  sudo hil record --netns lab --iface eth0 --out dns.pcap --count 100 --filter 'port 53'
  sudo hil record --iface veth0 --out minute.pcapng --duration 60s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if iface == "" || out == "" {
				return &exitError{2, fmt.Errorf("--iface and --out are required")}
			}
			if count <= 0 && duration <= 0 {
				return &exitError{2, fmt.Errorf("give --count N or --duration D (or both): a capture needs a limit")}
			}
			opts := []record.Option{record.WithSnaplen(snaplen)}
			if count > 0 {
				opts = append(opts, record.WithFrameLimit(count))
			}
			if duration > 0 {
				opts = append(opts, record.WithDuration(duration))
			}
			if netnsName != "" {
				opts = append(opts, record.WithNetNS(netnsName))
			}
			if filter != "" {
				opts = append(opts, record.WithFilter(filter))
			}
			if format != "" {
				f, err := record.ParseFormat(format)
				if err != nil {
					return &exitError{2, err}
				}
				opts = append(opts, record.WithFormat(f))
			}
			// Ctrl-C (which cancels cmd.Context) ends the capture and keeps
			// the file, as tcpdump does; only a failure discards it.
			c, err := record.Start(context.WithoutCancel(cmd.Context()), iface, out, opts...)
			if err != nil {
				return &exitError{2, err}
			}
			where := iface
			if netnsName != "" {
				where = netnsName + ":" + iface
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "recording %s into %s\n", where, out)
			var st record.Stats
			select {
			case <-c.Done():
				st, err = c.Wait()
			case <-cmd.Context().Done():
				st, err = c.Stop()
			}
			if err != nil {
				return &exitError{1, err}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), jsonRecordStats(st))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d frames, %d bytes, %s span (%s); libpcap: %d received, %d dropped, %d dropped by the interface\n",
				st.Path, st.Frames, st.Bytes, st.Last.Sub(st.First).Round(time.Microsecond), st.Ended, st.Received, st.Dropped, st.IfDropped)
			if st.Dropped+st.IfDropped > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: the capture lost %d frames (raise the kernel buffer or filter)\n", st.Dropped+st.IfDropped)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&iface, "iface", "", "interface to capture on")
	f.StringVar(&netnsName, "netns", "", "network namespace of the interface (name under /run/netns or a path)")
	f.StringVarP(&out, "out", "w", "", "output file (.pcap or .pcapng)")
	f.StringVar(&format, "format", "", "pcap or pcapng (default: from the file name)")
	f.IntVarP(&count, "count", "c", 0, "stop after this many frames")
	f.DurationVar(&duration, "duration", 0, "stop after this long (e.g. 30s)")
	f.StringVar(&filter, "filter", "", "only frames matching this BPF expression (tcpdump syntax)")
	f.IntVarP(&snaplen, "snaplen", "s", record.DefaultSnaplen, "bytes kept of each frame")
	f.BoolVar(&asJSON, "json", false, "print the stats as JSON")
	rootCmd.AddCommand(cmd)
}

func jsonRecordStats(s record.Stats) any {
	return map[string]any{
		"path": s.Path, "format": s.Format, "iface": s.Iface, "netns": s.NetNS, "link_type": s.LinkType,
		"snaplen": s.Snaplen, "filter": s.Filter, "frames": s.Frames, "bytes": s.Bytes, "truncated": s.Truncated,
		"first": s.First, "last": s.Last, "span_ms": jsonfmt.Millis(s.Last.Sub(s.First)), "ended": s.Ended,
		"pcap_received": s.Received, "pcap_dropped": s.Dropped, "pcap_if_dropped": s.IfDropped,
	}
}
