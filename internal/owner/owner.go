// Package owner records which process made a host resource (a temp dir, a
// veth pair, a network namespace), so that the next hil to start can remove
// what a killed run left behind without ever touching a live run's.
//
// An owner is a pid plus the process's start time (field 22 of
// /proc/PID/stat, in clock ticks since boot): a pid the kernel has since
// given to another process does not make a dead run's leftovers look alive.
//
// Two ways to record it, both written before the resource exists, so that
// no kill can leave a resource without its owner:
//   - in the name, for temp dirs (MkdirTemp): the name is the record, made
//     atomically with the dir;
//   - a claim file under RunDir, for resources whose names are too short to
//     carry it (veth names have 15 bytes): Claim before creating, Release
//     after removing.
package owner

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Owner is a process: its pid and its start time.
type Owner struct {
	PID   int
	Start uint64 // clock ticks since boot; 0 when unknown
}

// Self is the calling process.
func Self() Owner {
	pid := os.Getpid()
	st, _ := startTime(pid)
	return Owner{PID: pid, Start: st}
}

// String is "PID.START", the form names and claim files carry.
func (o Owner) String() string { return fmt.Sprintf("%d.%d", o.PID, o.Start) }

// Parse reads what String wrote.
func Parse(s string) (Owner, error) {
	p, st, ok := strings.Cut(strings.TrimSpace(s), ".")
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(st, 10, 64)
	if !ok || err1 != nil || err2 != nil || pid <= 0 {
		return Owner{}, fmt.Errorf("owner record %q: expected PID.STARTTIME", s)
	}
	return Owner{PID: pid, Start: start}, nil
}

// Alive reports whether the owner still runs: its pid exists and, when the
// start time was recorded, started at that time.
func (o Owner) Alive() bool {
	st, err := startTime(o.PID)
	if err != nil {
		if _, serr := os.Stat("/proc/self/stat"); serr != nil {
			return true // no /proc here: nothing is proof of death
		}
		// No such process. A /proc we cannot read (another pid namespace,
		// hidepid) is not proof of death: keep the resource.
		return !errors.Is(err, os.ErrNotExist)
	}
	return o.Start == 0 || st == o.Start
}

// startTime reads field 22 of /proc/PID/stat. The command name (field 2)
// may hold spaces and parentheses, so count from the last ')'.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name, expected at least 20", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// NameFor is prefix + o's PID.START + "-" + 8 random hex digits: a name
// that says which process made it (MkdirTemp's dirs, a snapshot save's
// partial files), and that two makers in one process do not share.
func NameFor(prefix string, o Owner) string {
	b := make([]byte, 4)
	rand.Read(b) // never fails (crypto/rand)
	return prefix + o.String() + "-" + hex.EncodeToString(b)
}

// OfName reads the owner NameFor wrote, from the name without its prefix
// (and without any suffix added after it); false for a name without one.
func OfName(rest string) (Owner, bool) {
	own, _, ok := strings.Cut(rest, "-")
	if !ok {
		return Owner{}, false
	}
	o, err := Parse(own)
	return o, err == nil
}

// MkdirTemp makes a dir in dir (os.TempDir() when empty) named
// NameFor(prefix, Self()): the name says who owns it.
func MkdirTemp(dir, prefix string) (string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	for range 10 {
		p := filepath.Join(dir, NameFor(prefix, Self()))
		err := os.Mkdir(p, 0o700)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("making a temp dir %s* in %s: every name tried exists", prefix, dir)
}

// LegacyAge is how old a temp dir of an older hil (no owner in its name)
// must be, with no live socket in it, to count as left behind: far longer
// than any case may run.
const LegacyAge = 6 * time.Hour

// SweepTemp removes the entries PREFIX* of dir (os.TempDir() when empty)
// whose owner is gone, and returns their paths. Entries named by an older
// hil, without an owner, go only when older than LegacyAge and no unix
// socket in them is bound (live()).
func SweepTemp(dir, prefix string) ([]string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s for leftovers: %w", dir, err)
	}
	var removed []string
	var errs []error
	var bound map[string]bool
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		p := filepath.Join(dir, name)
		o, hasOwner := OfName(strings.TrimPrefix(name, prefix))
		if hasOwner && o.Alive() {
			continue
		}
		if !hasOwner {
			info, err := e.Info()
			if err != nil || time.Since(info.ModTime()) < LegacyAge {
				continue
			}
			if bound == nil {
				bound = boundSockets()
			}
			if holdsBoundSocket(p, bound) {
				continue
			}
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", p, err))
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// boundSockets lists the paths of unix sockets bound in this network
// namespace (/proc/net/unix, last column).
func boundSockets() map[string]bool {
	out := map[string]bool{}
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) >= 8 && strings.HasPrefix(f[7], "/") {
			out[f[7]] = true
		}
	}
	return out
}

func holdsBoundSocket(dir string, bound map[string]bool) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return true // cannot tell: keep it
	}
	for _, e := range ents {
		if bound[filepath.Join(dir, e.Name())] {
			return true
		}
	}
	return false
}

// RunDir holds the claim files. A variable for tests only.
var RunDir = "/run/hil/owners"

// Claim records that this process owns the resource kind/name, before it
// creates it. It fails if a claim exists (a name in use, or the leftover of
// a killed run that SweepClaims has not removed yet).
func Claim(kind, name string) error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("recording the owner of %s %s: %w", kind, name, err)
	}
	p := claimPath(kind, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("recording the owner of %s %s: %w", kind, name, err)
	}
	_, werr := f.WriteString(Self().String() + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(p)
		return fmt.Errorf("recording the owner of %s %s: %w", kind, name, werr)
	}
	return nil
}

// Release removes the claim, after the resource is gone.
func Release(kind, name string) error {
	if err := os.Remove(claimPath(kind, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func claimPath(kind, name string) string { return filepath.Join(RunDir, kind+"-"+name) }

// SweepClaims calls remove for every claim of kind whose owner is gone,
// then drops the claim; it returns the names removed. remove must succeed
// when the resource no longer exists (the owner may have died between the
// claim and the creation, or after removing it but before releasing).
func SweepClaims(kind string, remove func(name string) error) ([]string, error) {
	ents, err := os.ReadDir(RunDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s for leftovers: %w", RunDir, err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), kind+"-")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(RunDir, e.Name()))
		if err != nil {
			continue // released meanwhile
		}
		o, err := Parse(string(b))
		if err == nil && o.Alive() {
			continue
		}
		if err != nil {
			// Half-written: the owner died inside Claim, before creating.
			if info, ierr := e.Info(); ierr != nil || time.Since(info.ModTime()) < time.Minute {
				continue
			}
		}
		if err := remove(name); err != nil {
			errs = append(errs, fmt.Errorf("removing %s %s left by pid %d: %w", kind, name, o.PID, err))
			continue
		}
		if err := Release(kind, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}
