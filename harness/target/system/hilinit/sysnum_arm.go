//go:build linux

package main

const sysFinitModule = 379
