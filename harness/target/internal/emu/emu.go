// Package emu decides how an image's program runs on this host (natively,
// or under a static qemu-user emulator), and finds out once per QEMU version
// what that emulator cannot do for libpcap (packet sockets, SOL_PACKET
// options, SIOCETHTOOL), so that targets can mark capture unsupported with
// the emulator's own reason instead of failing the app.
package emu

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/internal/cache"
)

//go:embed probesrc/probe.go
var probeSource []byte

// qemuNames maps a GOARCH to its static qemu-user binary (Debian
// qemu-user-static).
var qemuNames = map[string]string{
	"arm":     "qemu-arm-static",
	"arm64":   "qemu-aarch64-static",
	"amd64":   "qemu-x86_64-static",
	"386":     "qemu-i386-static",
	"riscv64": "qemu-riscv64-static",
}

// Emulator says how a platform's programs run on a host.
type Emulator struct {
	Native bool   // the host runs the program directly
	Path   string // the static qemu-user binary when not Native
	Arch   string // the image's GOARCH
	// CPU is the emulated CPU model (-cpu), "" for QEMU's default.
	CPU string
	// Board names the board the CPU models, and CPUNote says how close
	// the model is when it is not the board's own core.
	Board, CPUNote string
}

// Describe reports the board and CPU model for a device's Info.
func (e Emulator) Describe(set func(k string, v any)) {
	if e.Board != "" {
		set("board", e.Board)
	}
	if e.CPU != "" {
		cpu := e.CPU
		if e.CPUNote != "" {
			cpu += " (" + e.CPUNote + ")"
		}
		set("cpu", cpu)
	}
}

// Args are the emulator's options before the program: "-cpu MODEL" when a
// CPU is set.
func (e Emulator) Args() []string {
	if e.Native || e.CPU == "" {
		return nil
	}
	return []string{"-cpu", e.CPU}
}

// WithBoard is e (For's answer for platform p) with the board's CPU. A
// program the board cannot run at all (an arm64 image on a 32-bit OS, an
// amd64 one on any Pi) is an error saying so: the caller reports it as
// unsupported.
func (e Emulator) WithBoard(p v1.Platform, b *board.Board) (Emulator, error) {
	u, err := b.UserFor(p.Architecture)
	if err != nil {
		return Emulator{}, err
	}
	if e.Native {
		return Emulator{}, fmt.Errorf("%s runs natively on this host, which models no %s", p.String(), b.Describe())
	}
	e.CPU, e.Board, e.CPUNote = u.CPU, b.String(), u.Note
	return e, nil
}

// For picks how programs of platform p run on a host of arch hostArch
// (GOARCH spelling; "" means this process's). armv7 and armv6 images both
// run under qemu-arm-static (which defaults to a CPU that executes both).
func For(p v1.Platform, hostArch string) (Emulator, error) {
	if hostArch == "" {
		hostArch = runtime.GOARCH
	}
	if p.OS != "" && p.OS != "linux" {
		return Emulator{}, fmt.Errorf("platform %s: expected os linux", p.String())
	}
	if p.Architecture == hostArch {
		return Emulator{Native: true, Arch: p.Architecture}, nil
	}
	name, ok := qemuNames[p.Architecture]
	if !ok {
		return Emulator{}, fmt.Errorf("platform %s: no qemu-user emulator known for architecture %q on a %s host", p.String(), p.Architecture, hostArch)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/bin", "/usr/local/bin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				path, err = filepath.Join(dir, name), nil
				break
			}
		}
	}
	if err != nil {
		return Emulator{}, fmt.Errorf("platform %s on a %s host needs %s (Debian package qemu-user-static): %w", p.String(), hostArch, name, err)
	}
	return Emulator{Path: path, Arch: p.Architecture}, nil
}

var versions sync.Map // path, size, mtime -> version line

// Version is the first line of the emulator's --version, asked once per
// binary (path, size and mtime) in this process.
func Version(ctx context.Context, qemu string) (string, error) {
	var key string
	if fi, err := os.Stat(qemu); err == nil {
		key = fmt.Sprintf("%s %d %d", qemu, fi.Size(), fi.ModTime().UnixNano())
		if v, ok := versions.Load(key); ok {
			return v.(string), nil
		}
	}
	out, err := exec.CommandContext(ctx, qemu, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", qemu, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	line = strings.TrimSpace(line)
	if key != "" {
		versions.Store(key, line)
	}
	return line, nil
}

// Call is one probed system call.
type Call struct {
	Call  string `json:"call"`
	OK    bool   `json:"ok"`
	Errno int    `json:"errno,omitempty"`
	Error string `json:"error,omitempty"`
}

// Report is what one emulator version supports for capture.
type Report struct {
	Emulator string    `json:"emulator"` // path
	Version  string    `json:"version"`
	Calls    []Call    `json:"calls"`
	Probed   time.Time `json:"probed"`
	// Capture is true when every call libpcap's capture path needs worked.
	Capture bool `json:"capture"`
	// Reason names the calls that failed and their errors.
	Reason string `json:"reason,omitempty"`
}

// captureCalls are the probed calls libpcap >= 1.10 cannot capture without.
var captureCalls = map[string]bool{
	"socket(AF_PACKET, SOCK_RAW)":                        true,
	"setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)": true,
	"ioctl(SIOCETHTOOL, ETHTOOL_GET_TS_INFO)":            true,
}

// probeVersion changes whenever the probe or the report format changes, so
// cached reports of an older probe are not trusted.
var probeVersion = func() string {
	h := sha256.Sum256(probeSource)
	return hex.EncodeToString(h[:6])
}()

var memo sync.Map // cache key -> Report

// Probe runs the capture probe under e (once per emulator version and probe
// version; the report is cached under the hil cache). A native Emulator
// supports capture by definition and is not probed.
func Probe(ctx context.Context, e Emulator) (Report, error) {
	if e.Native {
		return Report{Capture: true}, nil
	}
	version, err := Version(ctx, e.Path)
	if err != nil {
		return Report{}, err
	}
	key := hashOf(e.Path, version, e.Arch, probeVersion)
	if r, ok := memo.Load(key); ok {
		return r.(Report), nil
	}
	dir, err := cache.Dir("emuprobe")
	if err != nil {
		return Report{}, err
	}
	reportPath := filepath.Join(dir, "report-"+key+".json")
	if b, err := os.ReadFile(reportPath); err == nil {
		var r Report
		if json.Unmarshal(b, &r) == nil && r.Version == version {
			memo.Store(key, r)
			return r, nil
		}
	}
	bin, err := buildProbe(ctx, e.Arch, dir)
	if err != nil {
		return Report{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(pctx, e.Path, bin)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Report{}, fmt.Errorf("running the capture probe under %s: %w (stderr: %s)", e.Path, err, strings.TrimSpace(stderr.String()))
	}
	r := Report{Emulator: e.Path, Version: version, Probed: time.Now().UTC(), Capture: true}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var c Call
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return Report{}, fmt.Errorf("capture probe under %s printed %q: expected JSON lines", e.Path, sc.Text())
		}
		r.Calls = append(r.Calls, c)
	}
	for _, c := range r.Calls {
		if c.Call == "socket(AF_PACKET, SOCK_RAW)" && c.Errno == 1 {
			return Report{}, fmt.Errorf("the capture probe needs CAP_NET_RAW to open a packet socket (run hil as root): %s", c.Error)
		}
	}
	var failed []string
	for _, c := range r.Calls {
		if captureCalls[c.Call] && !c.OK {
			failed = append(failed, fmt.Sprintf("%s fails with %s", c.Call, errnoText(c)))
		}
	}
	if len(r.Calls) == 0 {
		return Report{}, fmt.Errorf("capture probe under %s printed nothing", e.Path)
	}
	if len(failed) > 0 {
		r.Capture = false
		r.Reason = fmt.Sprintf("%s linux-user: %s; libpcap cannot capture without them", version, strings.Join(failed, "; "))
	}
	if b, err := json.MarshalIndent(r, "", "  "); err == nil {
		tmp := reportPath + ".tmp"
		if os.WriteFile(tmp, b, 0o644) == nil {
			os.Rename(tmp, reportPath)
		}
	}
	memo.Store(key, r)
	return r, nil
}

func errnoText(c Call) string {
	if c.Errno == 0 {
		return c.Error
	}
	return fmt.Sprintf("errno %d (%s)", c.Errno, c.Error)
}

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// buildProbe compiles the embedded probe for goarch (static, no cgo) into
// the cache, once per probe version.
func buildProbe(ctx context.Context, goarch, dir string) (string, error) {
	bin := filepath.Join(dir, fmt.Sprintf("probe-%s-%s", goarch, probeVersion))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		if _, serr := os.Stat(filepath.Join(runtime.GOROOT(), "bin", "go")); serr == nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		} else {
			return "", fmt.Errorf("building the emulator capture probe needs the Go toolchain in PATH: %w", err)
		}
	}
	src, err := os.MkdirTemp("", "hil-probe-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hilprobe\n\ngo 1.21\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "probe.go"), probeSource, 0o644); err != nil {
		return "", err
	}
	tmp := bin + fmt.Sprintf(".tmp%d", os.Getpid())
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "GOARM=7", "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the emulator capture probe for %s: %w: %s", goarch, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// gapPatterns are output fragments that show an app failed only because
// qemu-user lacks what libpcap needs; each pairs with the call it stands for.
var gapPatterns = []struct {
	match []string
	what  string
}{
	{[]string{"SIOCETHTOOL", "not implemented"}, "SIOCETHTOOL is not implemented by qemu-user (ENOSYS)"},
	{[]string{"ETHTOOL", "not implemented"}, "SIOCETHTOOL is not implemented by qemu-user (ENOSYS)"},
	{[]string{"PACKET_", "protocol not available"}, "qemu-user rejects SOL_PACKET socket options (ENOPROTOOPT)"},
	{[]string{"TPACKET", "protocol not available"}, "qemu-user rejects SOL_PACKET socket options (ENOPROTOOPT)"},
	{[]string{"mmap", "protocol not available"}, "qemu-user rejects SOL_PACKET socket options (ENOPROTOOPT)"},
	{[]string{"unsupported ioctl", "0x8946"}, "SIOCETHTOOL is not implemented by qemu-user"},
	{[]string{"unsupported setsockopt", "level=263"}, "qemu-user rejects SOL_PACKET socket options"},
}

// Gap reports whether an output line of an emulated app is the symptom of
// the emulator's capture gap rather than of a bug in the app.
func Gap(line string) (string, bool) {
	l := strings.ToLower(line)
	for _, p := range gapPatterns {
		all := true
		for _, m := range p.match {
			if !strings.Contains(l, strings.ToLower(m)) {
				all = false
				break
			}
		}
		if all {
			return p.what + ": " + strings.TrimSpace(line), true
		}
	}
	return "", false
}
