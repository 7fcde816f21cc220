//go:build cgo

package record

const cgoEnabled = true
