package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/kernel"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/scenario"
	"github.com/hilproject/hil/harness/target"
	"github.com/hilproject/hil/internal/cache"
)

// RunConfiguration lists what a scenario run used, by digest and without
// local paths: every scenario file (named relative to dir, the scenario
// directory given to the run), every fixture the scenarios replay, and
// from the boots' facts the kernel package (its sha256 from the kernel
// cache), the guest init (the sha256 of the binary) and the emulator
// (its version).
func RunConfiguration(dir string, scs []*scenario.Scenario, results []scenario.Result) []promote.Resource {
	var out []promote.Resource
	seen := map[string]bool{}
	add := func(r promote.Resource) {
		key := r.Kind + "\x00" + r.Name
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, r)
	}
	for _, sc := range scs {
		r := promote.Resource{Name: portableName(dir, sc.Pos.File), Kind: "scenario"}
		if sum, err := fileSHA256(sc.Pos.File); err == nil {
			r.Digest = map[string]string{"sha256": sum}
		}
		add(r)
		for _, st := range sc.Steps {
			if st.Replay == nil {
				continue
			}
			f := promote.Resource{Name: portableName(dir, st.Replay.Fixture), Kind: "fixture"}
			if st.Replay.SHA256 != "" {
				f.Digest = map[string]string{"sha256": st.Replay.SHA256}
			}
			add(f)
		}
	}
	var kernels []*kernel.Kernel
	for _, res := range results {
		info := res.Device
		if pkg := info.String("kernel_package"); pkg != "" {
			r := promote.Resource{Name: pkg, Kind: "kernel", Annotations: map[string]string{"release": info.String("kernel")}}
			if kernels == nil {
				kernels, _ = kernel.List()
			}
			for _, k := range kernels {
				if k.Package == pkg && k.SHA256 != "" {
					r.Digest = map[string]string{"sha256": k.SHA256}
				}
			}
			add(r)
		}
		if id := info.String("init"); id != "" {
			r := promote.Resource{Name: "hil-init", Kind: "init", Annotations: map[string]string{"build": id}}
			if sum := initSHA256(id); sum != "" {
				r.Digest = map[string]string{"sha256": sum}
			}
			add(r)
		}
		if em := emulator(info); em.Name != "" {
			add(em)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return kindOrder(out[i].Kind) < kindOrder(out[j].Kind)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// emulator names the emulator a boot used by program and version. The
// system target records its version as "emulator"; the user and container
// targets record the program's path as "emulator" and the version as
// "emulator_version".
func emulator(info target.Info) promote.Resource {
	em, ver := info.String("emulator"), info.String("emulator_version")
	var name string
	switch {
	case em == "":
		return promote.Resource{}
	case filepath.IsAbs(em):
		name = filepath.Base(em) // qemu-arm-static
	default:
		name, ver = "qemu-system", em
	}
	return promote.Resource{Name: name, Kind: "emulator", Annotations: map[string]string{"version": ver}}
}

// portableName is p relative to dir when it lies below it, else its base
// name when it is absolute: never a path on this host.
func portableName(dir, p string) string {
	if !filepath.IsAbs(p) {
		return filepath.ToSlash(filepath.Clean(p))
	}
	if dir != "" {
		if abs, err := filepath.Abs(dir); err == nil {
			if rel, err := filepath.Rel(abs, p); err == nil && !strings.HasPrefix(rel, "..") {
				return filepath.ToSlash(rel)
			}
		}
	}
	return filepath.Base(p)
}

// initSHA256 is the sha256 of the guest init binary the system target
// built for build id (its cache key), "" when it is not in the cache.
func initSHA256(id string) string {
	if strings.ContainsAny(id, `/\.`) {
		return ""
	}
	root, err := cache.Dir()
	if err != nil {
		return ""
	}
	sum, err := fileSHA256(filepath.Join(root, "init", id, "hil-init"))
	if err != nil {
		return ""
	}
	return sum
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Root is a directory of this host and the portable word that replaces it
// in what an attestation carries ("$HIL_CACHE", "." for the scenario
// directory).
type Root struct {
	Path, Label string
}

// ScrubString replaces every root's path in s by its label (longest root
// first), so that free text such as a failure reason keeps its meaning
// but names no directory of this host.
func ScrubString(s string, roots []Root) string {
	rs := append([]Root(nil), roots...)
	sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].Path) > len(rs[j].Path) })
	for _, r := range rs {
		p := filepath.Clean(r.Path)
		if p == "/" || p == "." || !filepath.IsAbs(p) {
			continue
		}
		s = strings.ReplaceAll(s, p+"/", r.Label+"/")
		s = strings.ReplaceAll(s, p, r.Label)
	}
	return s
}

// ScrubJSON applies ScrubString to every string in a JSON document.
func ScrubJSON(raw json.RawMessage, roots []Root) (json.RawMessage, error) {
	if len(raw) == 0 {
		return raw, nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("reading the report to scrub: %w", err)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return ScrubString(x, roots)
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		case map[string]any:
			for k := range x {
				x[k] = walk(x[k])
			}
		}
		return v
	}
	return json.Marshal(walk(v))
}

// HostRoots are the host directories hil's own files live in: the cache
// and the working directory.
func HostRoots() []Root {
	var rs []Root
	if c, err := cache.Dir(); err == nil {
		rs = append(rs, Root{c, "$HIL_CACHE"})
	}
	if wd, err := os.Getwd(); err == nil {
		rs = append(rs, Root{wd, "."})
	}
	return rs
}

// BoardConfiguration lists the board profiles a run held cases to, each
// by the sha256 of its JSON form (what the targets and the static check
// used: CPU, ISA, memory, QEMU machine, qemu-user CPU), with where it came
// from ("built-in", or the profile file's base name and line).
func BoardConfiguration(bs []board.Board) []promote.Resource {
	var out []promote.Resource
	seen := map[string]bool{}
	for _, b := range bs {
		if seen[b.Key()] {
			continue
		}
		seen[b.Key()] = true
		r := promote.Resource{Name: b.String(), Kind: "board", Annotations: map[string]string{
			"model": b.Model, "cpu": b.CPU, "platform": b.Platform(), "source": portableName("", b.Source),
		}}
		// Where the file lies is no part of what the profile says.
		p := *b.Profile
		p.Source = ""
		if js, err := json.Marshal(struct {
			Profile board.Profile `json:"profile"`
			Bits    int           `json:"bits"`
		}{p, b.Bits}); err == nil {
			sum := sha256.Sum256(js)
			r.Digest = map[string]string{"sha256": hex.EncodeToString(sum[:])}
		}
		out = append(out, r)
	}
	return out
}
