package ethtool

import "embed"

// Source is this package's own source (without tests), for building the
// system target's guest init, which imports it, from source.
//
//go:embed ethtool.go ioctl_linux.go ioctl_other.go source.go
var Source embed.FS
