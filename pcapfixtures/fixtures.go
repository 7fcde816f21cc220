// Package pcapfixtures holds hil's pcap and pcapng fixtures, the manifests
// that say what each holds and what pcapwatch must report after seeing it,
// and the programs that made them. The files are embedded, so a hil binary
// can replay them without the source tree.
//
// Two kinds, two manifests:
//   - generated (manifest.json): synthetic frames built in Go, reproduced
//     byte for byte by `go generate ./pcapfixtures`;
//   - recorded (recorded.json): real traffic made on a machine between two
//     network namespaces and captured with hil record; re-recorded with
//     `sudo go run ./pcapfixtures/cmd/record-real`, never byte for byte.
package pcapfixtures

//go:generate go run ./cmd/genfixtures -out .

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/pcapfixtures/internal/manifest"
)

//go:embed manifest.json recorded.json *.pcap *.pcapng
var files embed.FS

// Expectations, as in manifest.json.
type (
	Expect      = manifest.Expect
	DeviceSeen  = manifest.DeviceSeen
	DHCPRequest = manifest.DHCPRequest
	DNSQuery    = manifest.DNSQuery
	Recording   = manifest.Recording
)

// Fixture is one manifest entry.
type Fixture struct {
	manifest.Fixture
}

var (
	loadOnce sync.Once
	loaded   []Fixture
	loadErr  error
)

func load() ([]Fixture, error) {
	loadOnce.Do(func() {
		seen := map[string]bool{}
		for _, name := range []string{"manifest.json", "recorded.json"} {
			b, err := files.ReadFile(name)
			if err != nil {
				loadErr = err
				return
			}
			var m manifest.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				loadErr = fmt.Errorf("pcapfixtures: %s: %w", name, err)
				return
			}
			for _, f := range m.Fixtures {
				if seen[f.Name] || seen[f.File] {
					loadErr = fmt.Errorf("pcapfixtures: %s: fixture %s (%s) is listed twice", name, f.Name, f.File)
					return
				}
				seen[f.Name], seen[f.File] = true, true
				loaded = append(loaded, Fixture{f})
			}
		}
	})
	return loaded, loadErr
}

// Manifest lists every fixture: the generated ones in manifest.json order,
// then the recorded ones in recorded.json order.
func Manifest() []Fixture {
	fs, err := load()
	if err != nil {
		panic(err) // the embedded manifest is part of the build; tests catch a bad one
	}
	return append([]Fixture(nil), fs...)
}

// Lookup finds a fixture by name ("arp-sweep") or file name
// ("arp-sweep.pcap").
func Lookup(name string) (Fixture, error) {
	var names []string
	for _, f := range Manifest() {
		if f.Name == name || f.File == name {
			return f, nil
		}
		names = append(names, f.Name)
	}
	return Fixture{}, fmt.Errorf("no fixture %q; expected one of %s", name, strings.Join(names, ", "))
}

// Data returns the fixture's bytes.
func (f Fixture) Data() ([]byte, error) {
	b, err := files.ReadFile(f.File)
	if err != nil {
		return nil, fmt.Errorf("pcapfixtures: %s: %w", f.File, err)
	}
	return b, nil
}

// Open returns a reader of the fixture's bytes.
func (f Fixture) Open() (io.ReadCloser, error) {
	b, err := f.Data()
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

var pathCache sync.Map // file name -> path

// Path returns a file path holding the fixture: the committed file when
// this package's source tree is present and the file matches the manifest's
// sha256, else a copy written once into the hil cache (keyed by sha256).
func (f Fixture) Path() (string, error) {
	if p, ok := pathCache.Load(f.File); ok {
		return p.(string), nil
	}
	if dir := SourceDir(); dir != "" {
		p := filepath.Join(dir, f.File)
		if sumFile(p) == f.SHA256 {
			pathCache.Store(f.File, p)
			return p, nil
		}
	}
	b, err := f.Data()
	if err != nil {
		return "", err
	}
	dir, err := cache.Dir("fixtures", f.SHA256[:16])
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, f.File)
	if sumFile(p) != f.SHA256 {
		tmp, err := os.CreateTemp(dir, f.File+".*")
		if err != nil {
			return "", fmt.Errorf("pcapfixtures: write %s into the cache: %w", f.File, err)
		}
		_, werr := tmp.Write(b)
		cerr := tmp.Close()
		if werr != nil || cerr != nil {
			os.Remove(tmp.Name())
			return "", fmt.Errorf("pcapfixtures: write %s into the cache: %v %v", f.File, werr, cerr)
		}
		if err := os.Rename(tmp.Name(), p); err != nil {
			os.Remove(tmp.Name())
			return "", err
		}
	}
	pathCache.Store(f.File, p)
	return p, nil
}

// SourceDir is this package's directory in the source tree, or "" when the
// binary runs without it.
func SourceDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	dir := filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		return ""
	}
	return dir
}

func sumFile(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
