package scenario

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/hilproject/hil/harness/replay"
	"github.com/hilproject/hil/pcapfixtures"
)

// BundledFixtures resolves fixture names through hil's pcapfixtures
// manifest (the files are embedded, so this works without the source tree).
func BundledFixtures() FixtureResolver { return bundled{} }

type bundled struct{}

func (bundled) Fixture(name string) (string, string, bool) {
	f, err := pcapfixtures.Lookup(name)
	if err != nil {
		return "", "", false
	}
	p, err := f.Path()
	if err != nil {
		return "", "", false
	}
	return p, f.SHA256, true
}

func (bundled) Names() []string {
	var ns []string
	for _, f := range pcapfixtures.Manifest() {
		ns = append(ns, f.Name)
	}
	return ns
}

// scanned is what replay.Scan found in one version of a file.
type scanned struct {
	sum fixtureScan
	err error
}

type scanKey struct {
	path  string
	size  int64
	mtime int64
	ino   uint64
}

// scans keeps Scan's answer per file version: a suite names the same few
// fixtures in many scenarios, and the 100k-frame burst takes tens of
// milliseconds to scan.
var scans sync.Map // scanKey -> scanned

// scanFixture opens and checks every record of the capture at path
// (format, Ethernet link type, record bounds) with the replay package's
// own reader, as the replay will read it.
// fixtureScan is what loading learns of a fixture: the replay's scan and
// the file's sha256 (checked against the manifest).
type fixtureScan struct {
	replay.Summary
	SHA256 string
}

func scanFixture(path string) (fixtureScan, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fixtureScan{}, err
	}
	if !st.Mode().IsRegular() {
		return fixtureScan{}, fmt.Errorf("%s is not a regular file", path)
	}
	k := scanKey{path: path, size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		k.ino = sys.Ino
	}
	if v, ok := scans.Load(k); ok {
		s := v.(scanned)
		return s.sum, s.err
	}
	sum, err := hashAndScan(path)
	scans.Store(k, scanned{sum, err})
	return sum, err
}

// hashAndScan scans the capture at path with the replay's own reader and
// hashes it in the same read.
func hashAndScan(path string) (fixtureScan, error) {
	f, err := os.Open(path)
	if err != nil {
		return fixtureScan{}, err
	}
	defer f.Close()
	h := sha256.New()
	tee := io.TeeReader(f, h)
	sum, err := replay.ScanReader(tee)
	if err != nil {
		return fixtureScan{}, fmt.Errorf("%s: %w", path, err)
	}
	// Bytes after the last record belong to the file's hash too.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return fixtureScan{}, fmt.Errorf("%s: %w", path, err)
	}
	sum.Path = path
	return fixtureScan{Summary: sum, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
