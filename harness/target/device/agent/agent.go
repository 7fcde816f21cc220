//go:build linux

package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"sync"
	"syscall"

	"github.com/hilproject/hil/harness/link/framed"
	"github.com/hilproject/hil/harness/link/veth"
	"github.com/hilproject/hil/internal/ethtool"
)

// Main runs the agent with args (without the program name) and returns the
// process exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: hil-agent pause | link [--iface NAME] [--mtu N] | netinfo [--iface NAME]")
		return 2
	}
	switch args[0] {
	case "pause":
		return pause(ctx)
	case "netinfo":
		fs := flag.NewFlagSet("netinfo", flag.ContinueOnError)
		fs.SetOutput(stderr)
		iface := fs.String("iface", "eth0", "name of the app's interface")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		ni, err := ReadNetInfo(*iface)
		if err != nil {
			fmt.Fprintln(stderr, "hil-agent:", err)
			return 1
		}
		json.NewEncoder(stdout).Encode(ni)
		return 0
	case "link":
		fs := flag.NewFlagSet("link", flag.ContinueOnError)
		fs.SetOutput(stderr)
		iface := fs.String("iface", "eth0", "name of the app's interface")
		mtu := fs.Int("mtu", veth.DefaultMTU, "MTU of the pair")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if err := relay(ctx, *iface, *mtu, stdin, stdout); err != nil {
			fmt.Fprintln(stderr, "hil-agent:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "hil-agent: unknown command %q: expected pause, link or netinfo\n", args[0])
		return 2
	}
}

// ReadNetInfo reads iface, a veth end in this namespace whose other end is
// here too (as `link` makes it).
func ReadNetInfo(iface string) (NetInfo, error) {
	fs, err := ethtool.Get(iface)
	if err != nil {
		return NetInfo{}, err
	}
	c, err := veth.CountersOf("/proc/self/ns/net", iface)
	if err != nil {
		return NetInfo{}, err
	}
	return NetInfo{RxOffload: fs.Coalescing(), Features: fs.CoalescingState(), Counters: c}, nil
}

// pause holds the container (and so its network namespace) until told to
// stop. As PID 1 it must handle the signals itself: the kernel ignores
// unhandled ones for init.
func pause(ctx context.Context) int {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	return 0
}

func relay(ctx context.Context, iface string, mtu int, stdin io.Reader, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l, err := veth.New(ctx, veth.WithNetNSPath("/proc/self/ns/net"), veth.WithName(iface), veth.WithMTU(mtu))
	if err != nil {
		return fmt.Errorf("creating %s: %w", iface, err)
	}
	defer l.Close()
	// Every frame the harness sends is one frame the app captures: receive
	// coalescing off on the app's end, as hil does on every target (netinfo
	// reads it back for the device facts).
	if _, err := l.SetAppFeatures(ethtool.CoalescingOff()); err != nil {
		return fmt.Errorf("turning receive coalescing off on %s: %w", iface, err)
	}

	// Both directions write to stdout: frames from the app, and echoes of
	// the harness's sync markers.
	var mu sync.Mutex
	out := bufio.NewWriterSize(stdout, 64<<10)
	send := func(b []byte, flush bool) error {
		mu.Lock()
		defer mu.Unlock()
		if err := framed.WriteTo(out, b); err != nil {
			return err
		}
		if flush {
			return out.Flush()
		}
		return nil
	}
	if err := send(nil, true); err != nil { // ready
		return err
	}

	// Harness → app: until the harness closes stdin. An empty frame asks
	// "have you written everything so far?": frames are written in order,
	// so echoing it now answers yes.
	inDone := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(stdin, 256<<10)
		for {
			b, err := framed.ReadFrom(r)
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				inDone <- err
				return
			}
			if len(b) == 0 {
				err = send(nil, true)
			} else {
				err = l.WriteFrame(b)
			}
			if err != nil {
				inDone <- err
				return
			}
		}
	}()

	// App → harness, flushed whenever no more frames are waiting.
	frames := l.Frames()
	for {
		select {
		case err := <-inDone:
			mu.Lock()
			out.Flush()
			mu.Unlock()
			return err
		case f, ok := <-frames:
			if !ok {
				mu.Lock()
				defer mu.Unlock()
				return out.Flush()
			}
			if err := send(f.Data, len(frames) == 0); err != nil {
				return err
			}
		}
	}
}
