package main

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hilproject/hil/schemas"
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
			// A slice's default ("[linux/arm/v7]") is restored item by item.
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				var def []string
				if d := strings.Trim(f.DefValue, "[]"); d != "" {
					def = strings.Split(d, ",")
				}
				_ = sv.Replace(def)
				// pflag's slices append to what a previous Set gave
				// once "changed" is set, and Replace does not clear it:
				// clear it, so that --target user is [user] again, not
				// the default plus user.
				if ch := reflect.ValueOf(f.Value).Elem().FieldByName("changed"); ch.IsValid() && ch.Kind() == reflect.Bool {
					reflect.NewAt(ch.Type(), unsafe.Pointer(ch.UnsafeAddr())).Elem().SetBool(false)
				}
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

// validates checks out (one JSON document) against the schema at loc
// (schemas.Results, schemas.Def("image_inspect"), ...).
func validates(t *testing.T, what, loc, out string) {
	t.Helper()
	if err := schemas.Validate(loc, []byte(out)); err != nil {
		t.Errorf("%s: %v\n%.2000s", what, err, out)
	}
}
