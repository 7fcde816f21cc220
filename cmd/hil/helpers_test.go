package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// hilRun is what one in-process run of the CLI gave.
type hilRun struct {
	stdout  string
	stderr  string // what main would leave on stderr: the verb's own, then "hil: <error>"
	errText string // the error the verb returned, "" when none
	code    int    // the exit code main would use
}

// execHil runs the CLI in-process, as main does, with every flag of every
// command back at its default first: rootCmd is shared by all tests.
func execHil(t *testing.T, args ...string) hilRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var reset func(c *cobra.Command)
	reset = func(c *cobra.Command) {
		// cobra keeps a sub-command's context from the previous Execute.
		c.SetContext(ctx)
		c.Flags().VisitAll(func(f *pflag.Flag) {
			// Set(DefValue) would turn an empty slice into ["[]"].
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				_ = sv.Replace(nil)
			} else {
				_ = f.Value.Set(f.DefValue)
			}
			f.Changed = false
		})
		for _, sub := range c.Commands() {
			reset(sub)
		}
	}
	reset(rootCmd)
	jsonPrinted = false
	var out, errb bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errb)
	rootCmd.SetArgs(args)
	cmd, err := rootCmd.ExecuteContextC(ctx)
	if err == nil {
		return hilRun{stdout: out.String(), stderr: errb.String()}
	}
	r := hilRun{}
	r.code, r.errText = exitStatus(cmd, args, err, &out)
	r.stdout = out.String()
	if r.errText != "" {
		errb.WriteString("hil: " + r.errText + "\n")
	}
	r.stderr = errb.String()
	return r
}

// runHil runs the CLI in-process and returns stdout, the error text and
// the exit code main would use.
func runHil(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	r := execHil(t, args...)
	return r.stdout, r.errText, r.code
}

// runHilStderr runs the CLI in-process and returns stdout, stderr as main
// would leave it, and the exit code main would use.
func runHilStderr(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	r := execHil(t, args...)
	return r.stdout, r.stderr, r.code
}
