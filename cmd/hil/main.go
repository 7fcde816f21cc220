// Command hil is the CLI of the hil hardware-in-the-loop harness. It is
// thin: every verb is a call into the harness packages. Each verb lives in
// a file of its own and adds itself to rootCmd in an init function.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/internal/jsonfmt"
)

var rootCmd = &cobra.Command{
	Use:   "hil",
	Short: "hil checks an ARM container image on ARM before the fleet pulls it",
	Long: `hil is a hardware-in-the-loop test harness for IoT apps shipped as ARM
container images. It pins an image by digest, checks statically that its
entrypoint can start (ELF arch, float ABI, loader, libraries, glibc symbol
versions, shell-form commands, each board's instruction set), boots it on an ARM target (qemu-system-arm, qemu-user, Docker or a
real board), replays pcap fixtures into the app's capture interface, asserts
what the app does, reports, and only when everything passed promotes a tag to
exactly the digest that was tested.`,
	SilenceUsage:  true,
	SilenceErrors: true,
	PersistentPreRun: func(cmd *cobra.Command, _ []string) {
		noteOldSpellings(cmd)
	},
}

// exitError carries a specific exit status out of a verb (for example
// "hil check" exits 1 when it found problems, 2 when it could not run).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// teardownGrace is how long hil waits after SIGTERM or SIGINT for the verb
// to tear down what it made (QEMU, namespaces, veth pairs, temp dirs)
// before it exits anyway. A second signal exits at once. Either way the
// next hil run, gate or replay removes what was left (RemoveLeftovers).
const teardownGrace = 10 * time.Second

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "hil: %s: stopping and tearing down (a second signal exits at once)\n", sigName(sig))
		cancel(fmt.Errorf("hil got %s", sigName(sig)))
		select {
		case sig = <-sigs:
			fmt.Fprintf(os.Stderr, "hil: %s again: exiting before the teardown finished (the next hil run removes what is left)\n", sigName(sig))
		case <-time.After(teardownGrace):
			fmt.Fprintf(os.Stderr, "hil: the teardown did not finish within %s: exiting (the next hil run removes what is left)\n", teardownGrace)
		}
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
	cmd, err := rootCmd.ExecuteContextC(ctx)
	signal.Stop(sigs)
	if err == nil {
		return
	}
	code, msg := exitStatus(cmd, os.Args[1:], err, os.Stdout)
	if msg != "" {
		fmt.Fprintln(os.Stderr, "hil:", msg)
	}
	os.Exit(code)
}

// exitStatus is the exit code for a verb's error and the message for
// stderr ("" when the verb said everything itself). When the command line
// asked for JSON and the verb printed none, the error goes to stdout as
// the error object too (schemas/README.md).
func exitStatus(cmd *cobra.Command, args []string, err error, stdout io.Writer) (int, string) {
	code := 2
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code, ""
		}
	}
	if wantsJSON(cmd, args) && !jsonPrinted {
		_ = jsonfmt.Write(stdout, jsonfmt.ErrorBody{Error: jsonfmt.ErrorDetail{Message: err.Error(), ExitCode: code}})
	}
	return code, err.Error()
}

// wantsJSON reports whether the command line asked for JSON output
// (--json, or --progress json): from the parsed flag, or from the
// arguments when parsing them failed.
func wantsJSON(cmd *cobra.Command, args []string) bool {
	if cmd != nil {
		if f := cmd.Flags().Lookup("json"); f != nil && f.Changed {
			return f.Value.String() == "true"
		}
		if f := cmd.Flags().Lookup("progress"); f != nil && f.Changed {
			return f.Value.String() == "json"
		}
	}
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "--json" || a == "--json=true" || a == "--progress=json":
			return true
		case a == "--progress" && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

func sigName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case os.Interrupt:
		return "SIGINT"
	}
	return sig.String()
}

// removeLeftovers removes what killed hil processes left on this host (see
// harness.RemoveLeftovers) and says so on w.
func removeLeftovers(w io.Writer) {
	removed, err := harness.RemoveLeftovers()
	for _, r := range removed {
		fmt.Fprintf(w, "hil: removed %s, left behind by a hil process that is gone\n", r)
	}
	if err != nil {
		fmt.Fprintf(w, "hil: warning: removing what killed hil processes left: %v\n", err)
	}
}

// checkWritable makes sure hil can write reports into dir (creating it)
// before anything boots, rather than after a whole run.
func checkWritable(flag, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s %s: cannot create the report directory: %w", flag, dir, err)
	}
	f, err := os.CreateTemp(dir, ".hil-write-check-*")
	if err != nil {
		return fmt.Errorf("%s %s: cannot write reports there: %w", flag, dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
