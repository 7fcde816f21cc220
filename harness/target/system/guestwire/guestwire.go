// Package guestwire is what hil-init (the guest's PID 1) and the system
// target say to each other, in one place for both sides: the boot config in
// the initramfs, the "run" command, and the "net" report. The "stats"
// answer is link.Counters. Standard library only: hil-init links it into
// every initramfs.
package guestwire

// Config is /.hil/config.json, written by the harness's initramfs builder:
// what the guest needs before the app, the same for every app argument (so
// that one initramfs and one base snapshot serve them all).
type Config struct {
	Iface    string   `json:"iface"`
	Hostname string   `json:"hostname"`
	Modules  []string `json:"modules"` // load order, paths inside the rootfs
	// Personality "linux32" starts the app under PER_LINUX32: 32-bit
	// userland on a 64-bit kernel as a 32-bit Raspberry Pi OS runs it
	// (uname -m says armv8l, not aarch64).
	Personality string `json:"personality,omitempty"`
}

// Run comes with "run", after boot or restore: the app and how its
// interface delivers.
type Run struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	User string   `json:"user"`
	// RxOffload: "off" (default) or "gro".
	RxOffload string `json:"rx_offload,omitempty"`
}

// Net is the "net" line: the capture interface as the guest set it up.
type Net struct {
	Iface string `json:"iface"`
	// RxOffload is "off" when no receive coalescing is active (read back),
	// else the names of those that are.
	RxOffload string `json:"rx_offload"`
	Features  string `json:"features"`
	MTU       int    `json:"mtu"`
	// EthtoolUS is what setting and reading back the features took.
	EthtoolUS int64 `json:"ethtool_us"`
	// BootMS is the time since the kernel started (CLOCK_BOOTTIME).
	BootMS int64 `json:"boot_ms"`
}

// Idle is the "idle" line: the guest is ready for its app, and how it got
// there.
type Idle struct {
	// ModuleInitFree says whether the kernel had freed the init sections
	// of the modules loaded at boot before idle (a base snapshot taken
	// before would make every restore redo it): "freed", "no modules",
	// "timed out after …" (waited, not seen), or "not waited for: …" and
	// why.
	ModuleInitFree string `json:"module_init_free"`
	// ModuleInitFreeUS is how long idle waited for it.
	ModuleInitFreeUS int64 `json:"module_init_free_us"`
}
