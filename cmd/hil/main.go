// Command hil is the CLI of the hil hardware-in-the-loop harness. It is
// thin: every verb is a call into the harness packages. Each verb lives in
// a file of its own and adds itself to rootCmd in an init function.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
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
}

// exitError carries a specific exit status out of a verb (for example
// "hil check" exits 1 when it found problems, 2 when it could not run).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := rootCmd.ExecuteContext(ctx)
	stop()
	if err == nil {
		return
	}
	code := 2
	if ee, ok := err.(*exitError); ok {
		code = ee.code
		if ee.err == nil {
			os.Exit(code)
		}
	}
	fmt.Fprintln(os.Stderr, "hil:", err)
	os.Exit(code)
}
