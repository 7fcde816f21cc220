package guestwire

import "embed"

// Source is this package's own source (without tests), for building the
// system target's guest init, which imports it, from source.
//
//go:embed guestwire.go source.go
var Source embed.FS
