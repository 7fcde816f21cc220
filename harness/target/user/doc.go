// Package user is hil's fast smoke target: the image's program runs as a
// host process, under a static qemu-user emulator for foreign architectures
// (qemu-arm-static for linux/arm/*, qemu-aarch64-static for linux/arm64) or
// natively in a chroot of the image rootfs for the host's own architecture,
// inside a fresh network namespace whose veth end carries the scenario's
// interface name. Start to ready takes tens of milliseconds.
//
// qemu-user cannot run libpcap capture (FINDINGS: no SIOCETHTOOL, every
// SOL_PACKET option rejected). hil probes the emulator once per QEMU version
// and the Process reports capture as unsupported with the emulator's reason
// (target.CapabilityReporter); EmulatorGap tells whether an app's error line
// is that gap rather than a bug of the app.
package user
