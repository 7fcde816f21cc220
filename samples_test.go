package hil_test

import (
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/hilproject/hil/harness"
	"github.com/hilproject/hil/harness/hilginkgo"
	"github.com/hilproject/hil/harness/scenario"
)

// With the bundled sample (HIL_IMAGE unset), its Rust build and
// late-crash must pass every bundled case too: late-crash panics 10 s
// after ready, later than any bundled scenario looks (the health window
// after a promotion is what catches it).
var _ = func() bool {
	if os.Getenv(harness.EnvImage) != "" {
		return false
	}
	for _, name := range []string{"pcapwatch-rs", "late-crash"} {
		cfg := bundled
		cfg.Image = "oci:" + filepath.Join(imagesDir, name)
		hilginkgo.Specs(cfg, hilginkgo.FromEnv(), hilginkgo.Variant(name), hilginkgo.Labels("scenarios"))
	}
	return true
}()

// The broken variants must fail the right scenarios for the right reason,
// at the right step: the gate's teeth. One target is enough to prove them,
// the first of this run, on the platform the variants are built for.
var brokenVariants = []struct {
	variant   string
	scenarios []string
	phase     scenario.StepKind
	reason    string
	// budget, when set, replaces the startup budget (slow-start is ready
	// after 30 s: a 10 s budget catches it without a 30 s wait).
	budget time.Duration
}{
	{"no-libpcap", []string{"startup", "arp-sweep"}, scenario.PhaseStaticCheck, `needs libpcap\.so\.0\.8 but the image does not have it`, 0},
	{"old-glibc", []string{"startup", "graceful-stop"}, scenario.PhaseStaticCheck, `needs GLIBC_2\.\d+ \(symbol \w+@GLIBC_2\.\d+\) but the image's libc\.so\.6 \(glibc 2\.31\) provides up to GLIBC_2\.\d+`, 0},
	{"wrong-arch", []string{"startup"}, scenario.PhaseStaticCheck, `AArch64 64-bit.*needs ARM 32-bit`, 0},
	{"no-loader", []string{"startup"}, scenario.PhaseStaticCheck, `needs the loader /lib/ld-linux-armhf\.so\.3`, 0},
	{"crash-on-start", []string{"startup", "arp-sweep"}, scenario.PhaseReady, `(?s)the app ended \(exit 1\) before printing a line matching.*\[stderr\] pcapwatch: `, 0},
	{"slow-start", []string{"startup"}, scenario.PhaseReady, `not ready within the startup budget of 10s`, 10 * time.Second},
	{"rs-no-deps", []string{"startup"}, scenario.PhaseStaticCheck, `libpcap\.so\.0\.8 needs libdbus-1\.so\.3 but the image does not have it.*chain: /usr/local/bin/pcapwatch-rs → /lib/libpcap\.so\.0\.8 → libdbus-1\.so\.3`, 0},
}

var _ = func() bool {
	env, err := harness.ConfigFromEnv(bundled)
	if err != nil {
		return false // the bundled specs say what is wrong with the environment
	}
	first := scenario.DefaultTarget
	if len(env.Targets) > 0 {
		first = env.Targets[0]
	}
	for _, b := range brokenVariants {
		cfg := env
		cfg.Image = "oci:" + filepath.Join(imagesDir, b.variant)
		cfg.Targets = []string{first}
		cfg.Platforms = []string{scenario.DefaultPlatform}
		cfg.Scenarios = nil
		for _, n := range b.scenarios {
			cfg.Scenarios = append(cfg.Scenarios, filepath.Join("scenarios", n+".yaml"))
		}
		opts := []hilginkgo.Option{hilginkgo.Variant(b.variant), hilginkgo.Labels("broken"), hilginkgo.ExpectFail(b.phase, regexp.MustCompile(b.reason))}
		if b.budget != 0 {
			opts = append(opts, hilginkgo.StartupBudget(b.budget))
		}
		hilginkgo.Specs(cfg, opts...)
	}
	return true
}()
