// Package debian fetches Debian binary packages for any release and
// architecture without touching the host's package state. It drives the
// host's own apt-get/apt-cache with a private configuration under hil's
// cache dir (its own sources list, lists, status and archives), pointing at
// the mirror the host's apt sources already use. Multiarch installs are not
// used on purpose: on this kind of host a foreign-architecture index that is
// momentarily out of sync breaks `apt-get install pkg:armhf`, whereas
// `apt-get download` plus `dpkg-deb -x` keeps working.
package debian

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hilproject/hil/internal/cache"
	"github.com/hilproject/hil/internal/filelock"
)

// Package is one binary package version as the archive's Packages index
// describes it.
type Package struct {
	Name     string
	Version  string
	Arch     string // the package's Architecture field: e.g. armhf, amd64 or all
	Filename string // path inside the mirror's pool
	SHA256   string
}

func (p Package) String() string { return p.Name + "_" + p.Version + "_" + p.Arch }

// Source is one Debian release for one architecture, e.g.
// Source{Suite: "bookworm", Arch: "armhf"}. The zero values of the other
// fields pick sensible defaults.
type Source struct {
	Suite string // release codename: bookworm, bullseye, trixie …
	Arch  string // Debian architecture: armhf, amd64, arm64 …

	// Components defaults to main.
	Components []string
	// Mirror and SecurityMirror override the mirrors read from the host's
	// apt sources (/etc/apt/sources.list.d/*.sources and sources.list);
	// so do $HIL_DEBIAN_MIRROR and $HIL_DEBIAN_SECURITY_MIRROR (for hosts
	// that are not Debian, e.g. Ubuntu).
	Mirror, SecurityMirror string
	// MaxAge is how old the package lists may get before they are refreshed;
	// 0 means 24 h. Lists are never refreshed when they exist and
	// HIL_OFFLINE=1.
	MaxAge time.Duration
	// Log receives progress and warnings; nil means os.Stderr.
	Log io.Writer
}

// ErrNotFound is wrapped by errors about a package (or version) the
// archive does not have.
var ErrNotFound = errors.New("not in the archive")

const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

func (s Source) validate() error {
	if s.Suite == "" || s.Arch == "" {
		return fmt.Errorf("debian.Source needs Suite and Arch, got suite=%q arch=%q", s.Suite, s.Arch)
	}
	for _, v := range []string{s.Suite, s.Arch} {
		if strings.ContainsAny(v, "/ \t\n") || strings.HasPrefix(v, ".") {
			return fmt.Errorf("debian.Source: invalid suite or arch %q", v)
		}
	}
	return nil
}

func (s Source) logw() io.Writer {
	if s.Log != nil {
		return s.Log
	}
	return os.Stderr
}

// dir is the private apt root of this source.
func (s Source) dir() (string, error) {
	if err := s.validate(); err != nil {
		return "", err
	}
	return cache.Dir("debian", s.Suite+"-"+s.Arch)
}

// aptOptions point apt at the private state of this source only: its own
// sources, lists, (empty) status and caches, one architecture, no pinning
// from the host.
func (s Source) aptOptions(dir string) []string {
	o := func(k, v string) []string { return []string{"-o", k + "=" + v} }
	var args []string
	for _, kv := range [][2]string{
		{"Dir::Etc::SourceList", filepath.Join(dir, "sources.list")},
		{"Dir::Etc::SourceParts", "/dev/null"},
		{"Dir::Etc::Preferences", "/dev/null"},
		{"Dir::Etc::PreferencesParts", "/dev/null"},
		{"Dir::State::Lists", filepath.Join(dir, "lists")},
		{"Dir::State::Status", filepath.Join(dir, "status")},
		{"Dir::State::extended_states", filepath.Join(dir, "extended_states")},
		{"Dir::Cache", filepath.Join(dir, "apt-cache")},
		{"Dir::Cache::archives", filepath.Join(dir, "apt-cache", "archives")},
		// Docker-derived hosts turn the binary caches off (docker-clean);
		// without them every apt-cache call re-parses ~25 MB of lists.
		{"Dir::Cache::pkgcache", "pkgcache.bin"},
		{"Dir::Cache::srcpkgcache", "srcpkgcache.bin"},
		{"APT::Architecture", s.Arch},
		{"APT::Architectures", s.Arch},
		{"Acquire::Languages", "none"},
		{"Acquire::IndexTargets::deb::DEP-11::DefaultEnabled", "false"},
		{"Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled", "false"},
		{"Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled", "false"},
		{"Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled", "false"},
		{"Acquire::Retries", "3"},
	} {
		args = append(args, o(kv[0], kv[1])...)
	}
	return args
}

// prepare writes the private apt tree and refreshes the lists when needed.
func (s Source) prepare(ctx context.Context) (string, error) {
	dir, err := s.dir()
	if err != nil {
		return "", err
	}
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return "", err
	}
	defer unlock()

	for _, d := range []string{"lists/partial", "apt-cache/archives/partial", "debs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", fmt.Errorf("creating apt dir: %w", err)
		}
	}
	status := filepath.Join(dir, "status")
	if _, err := os.Stat(status); err != nil {
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			return "", fmt.Errorf("creating empty dpkg status: %w", err)
		}
	}
	list, err := s.sourcesList()
	if err != nil {
		return "", err
	}
	listPath := filepath.Join(dir, "sources.list")
	old, _ := os.ReadFile(listPath)
	changed := !bytes.Equal(old, []byte(list))
	if changed {
		if err := os.WriteFile(listPath, []byte(list), 0o644); err != nil {
			return "", fmt.Errorf("writing %s: %w", listPath, err)
		}
	}
	stamp := filepath.Join(dir, "updated")
	maxAge := s.MaxAge
	if maxAge == 0 {
		maxAge = 24 * time.Hour
	}
	st, statErr := os.Stat(stamp)
	fresh := statErr == nil && !changed && time.Since(st.ModTime()) < maxAge
	haveLists := statErr == nil && !changed
	if fresh || (haveLists && os.Getenv("HIL_OFFLINE") == "1") {
		return dir, nil
	}
	out, uerr := s.run(ctx, dir, "apt-get", "update")
	// A sibling index (typically -security for a foreign architecture) can
	// be momentarily out of sync with its Release file; apt then keeps the
	// rest. Only the release's main index is essential.
	if !s.haveMainIndex(dir) {
		if uerr == nil {
			uerr = errors.New("no Packages index after update")
		}
		if haveLists {
			fmt.Fprintf(s.logw(), "debian: refreshing %s/%s failed, using the lists from %s: %v\n", s.Suite, s.Arch, st.ModTime().Format(time.RFC3339), uerr)
			return dir, nil
		}
		return "", fmt.Errorf("apt-get update for %s/%s: %w\n%s", s.Suite, s.Arch, uerr, out)
	}
	if uerr != nil {
		fmt.Fprintf(s.logw(), "debian: %s/%s: some indexes failed to refresh and were skipped:\n%s", s.Suite, s.Arch, errLines(out))
	}
	if err := os.WriteFile(stamp, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

func errLines(out []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		// The sandbox notice only says the cache dir is private to root.
		if strings.Contains(l, "unsandboxed") {
			continue
		}
		if strings.HasPrefix(l, "E:") || strings.HasPrefix(l, "W:") || strings.HasPrefix(l, "Err:") {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

func (s Source) haveMainIndex(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "lists", "*_dists_"+s.Suite+"_*_binary-"+s.Arch+"_Packages*"))
	return len(m) > 0
}

// run executes an apt tool with the private options; stdout and stderr are
// returned together for error messages.
func (s Source) run(ctx context.Context, dir, tool string, args ...string) ([]byte, error) {
	full := append(s.aptOptions(dir), args...)
	cmd := exec.CommandContext(ctx, tool, full...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

// runOut is like run but returns stdout alone (stderr only on error).
func (s Source) runOut(ctx context.Context, dir, tool string, args ...string) (stdout []byte, stderr []byte, err error) {
	full := append(s.aptOptions(dir), args...)
	cmd := exec.CommandContext(ctx, tool, full...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// Update refreshes the package lists now, whatever their age.
func (s Source) Update(ctx context.Context) error {
	dir, err := s.dir()
	if err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "updated"))
	_, err = s.prepare(ctx)
	return err
}

// Resolve returns the candidate version of each named package (names may
// carry a ":arch" suffix, which must match the source's). Virtual names
// resolve to their first provider in name order.
func (s Source) Resolve(ctx context.Context, names ...string) ([]Package, error) {
	dir, err := s.prepare(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := s.show(ctx, dir, names)
	if err != nil {
		return nil, err
	}
	out := make([]Package, 0, len(names))
	for _, n := range names {
		r, ok := recs[baseName(n)]
		if !ok {
			return nil, fmt.Errorf("resolving %s in Debian %s/%s: %w", n, s.Suite, s.Arch, ErrNotFound)
		}
		out = append(out, r.Package)
	}
	return out, nil
}

// Closure returns the candidate versions of the named packages and,
// recursively, of everything they Depend or Pre-Depend on, sorted by
// name. Of alternatives (a | b) the first one the archive has is taken.
func (s Source) Closure(ctx context.Context, names ...string) ([]Package, error) {
	dir, err := s.prepare(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]record{}
	var todo []string
	for _, n := range names {
		todo = append(todo, baseName(n))
	}
	for len(todo) > 0 {
		var batch []string
		for _, n := range todo {
			if _, ok := seen[n]; !ok {
				batch = append(batch, n)
			}
		}
		todo = nil
		if len(batch) == 0 {
			break
		}
		recs, err := s.show(ctx, dir, batch)
		if err != nil {
			return nil, err
		}
		for _, n := range batch {
			r, ok := recs[n]
			if !ok {
				return nil, fmt.Errorf("closure of %s in Debian %s/%s: dependency %s: %w", strings.Join(names, ", "), s.Suite, s.Arch, n, ErrNotFound)
			}
			seen[n] = r
			if r.Name != n {
				seen[r.Name] = r
			}
			for _, group := range r.deps {
				pick, err := s.pickAlternative(ctx, dir, group, seen)
				if err != nil {
					return nil, fmt.Errorf("closure: %s depends on %s: %w", r.Name, strings.Join(group, " | "), err)
				}
				if _, ok := seen[pick]; !ok {
					todo = append(todo, pick)
				}
			}
		}
	}
	byName := map[string]Package{}
	for _, r := range seen {
		byName[r.Name] = r.Package
	}
	out := make([]Package, 0, len(byName))
	for _, p := range byName {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s Source) pickAlternative(ctx context.Context, dir string, group []string, seen map[string]record) (string, error) {
	for _, alt := range group {
		if _, ok := seen[alt]; ok {
			return alt, nil
		}
	}
	if len(group) == 1 {
		// Looked up with the next batch; a missing one fails there.
		return group[0], nil
	}
	recs, err := s.show(ctx, dir, group)
	if err != nil {
		return "", err
	}
	for _, alt := range group {
		if _, ok := recs[alt]; ok {
			return alt, nil
		}
	}
	return "", ErrNotFound
}

type record struct {
	Package
	deps [][]string // each inner slice is a group of alternatives
}

// show asks apt-cache for the candidate records of names. Names the archive
// lacks are absent from the result; purely virtual names map to a provider.
func (s Source) show(ctx context.Context, dir string, names []string) (map[string]record, error) {
	out := map[string]record{}
	if len(names) == 0 {
		return out, nil
	}
	args := append([]string{"show", "--no-all-versions"}, dedupe(names)...)
	stdout, stderr, err := s.runOut(ctx, dir, "apt-cache", args...)
	if err != nil && len(stdout) == 0 && !bytes.Contains(stderr, []byte("No packages found")) && !bytes.Contains(stderr, []byte("Unable to locate")) {
		return nil, fmt.Errorf("apt-cache show %s: %w\n%s", strings.Join(names, " "), err, stderr)
	}
	for _, para := range parseParagraphs(stdout) {
		r := record{Package: Package{
			Name: para["Package"], Version: para["Version"], Arch: para["Architecture"],
			Filename: para["Filename"], SHA256: para["SHA256"],
		}}
		for _, f := range []string{"Pre-Depends", "Depends"} {
			r.deps = append(r.deps, parseDeps(para[f])...)
		}
		if r.Name != "" {
			out[r.Name] = r
		}
	}
	for _, n := range names {
		n = baseName(n)
		if _, ok := out[n]; ok {
			continue
		}
		prov, err := s.provider(ctx, dir, n)
		if err != nil || prov == "" {
			continue
		}
		recs, err := s.show(ctx, dir, []string{prov})
		if err != nil {
			return nil, err
		}
		if r, ok := recs[prov]; ok {
			out[n] = r
		}
	}
	return out, nil
}

func (s Source) provider(ctx context.Context, dir, name string) (string, error) {
	stdout, _, err := s.runOut(ctx, dir, "apt-cache", "showpkg", name)
	if err != nil {
		return "", err
	}
	i := bytes.Index(stdout, []byte("Reverse Provides:"))
	if i < 0 {
		return "", nil
	}
	var provs []string
	sc := bufio.NewScanner(bytes.NewReader(stdout[i:]))
	sc.Scan()
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			provs = append(provs, baseName(f[0]))
		}
	}
	sort.Strings(provs)
	if len(provs) == 0 {
		return "", nil
	}
	return provs[0], nil
}

func dedupe(names []string) []string {
	m := map[string]bool{}
	var out []string
	for _, n := range names {
		n = baseName(n)
		if !m[n] {
			m[n] = true
			out = append(out, n)
		}
	}
	return out
}

// baseName strips an architecture qualifier (pkg:armhf, pkg:any).
func baseName(n string) string {
	if i := strings.IndexByte(n, ':'); i >= 0 {
		return n[:i]
	}
	return n
}

// parseDeps turns "a (>= 1), b | c:any" into [[a] [b c]].
func parseDeps(field string) [][]string {
	var out [][]string
	if strings.TrimSpace(field) == "" {
		return nil
	}
	for _, clause := range strings.Split(field, ",") {
		var group []string
		for _, alt := range strings.Split(clause, "|") {
			alt = strings.TrimSpace(alt)
			if i := strings.IndexAny(alt, " ([<"); i >= 0 {
				alt = alt[:i]
			}
			if alt = baseName(alt); alt != "" {
				group = append(group, alt)
			}
		}
		if len(group) > 0 {
			out = append(out, group)
		}
	}
	return out
}

// parseParagraphs reads deb822 stanzas; continuation lines are joined.
func parseParagraphs(b []byte) []map[string]string {
	var out []map[string]string
	cur := map[string]string{}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.TrimSpace(l) == "":
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
			last = ""
		case (l[0] == ' ' || l[0] == '\t') && last != "":
			cur[last] += "\n" + strings.TrimSpace(l)
		default:
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			last = k
			cur[k] = strings.TrimSpace(v)
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// Fetch downloads p's .deb into the cache (or reuses the cached copy) and
// checks it against p.SHA256. A version the mirror no longer carries gives
// an error wrapping ErrNotFound.
func (s Source) Fetch(ctx context.Context, p Package) (string, error) {
	if p.Name == "" || p.Version == "" || p.SHA256 == "" {
		return "", fmt.Errorf("fetching %v: package needs Name, Version and SHA256", p)
	}
	if strings.ContainsAny(p.Name+p.Version+p.Arch, "/ ") {
		return "", fmt.Errorf("fetching %v: invalid package name, version or arch", p)
	}
	dir, err := s.dir()
	if err != nil {
		return "", err
	}
	final := filepath.Join(dir, "debs", debFileName(p))
	if err := checkSHA256(final, p.SHA256); err == nil {
		return final, nil
	}
	dir, err = s.prepare(ctx)
	if err != nil {
		return "", err
	}
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return "", err
	}
	defer unlock()
	// apt-get download drops privileges to _apt, which must be able to
	// write where it downloads.
	dl, err := os.MkdirTemp(dir, "dl-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dl)
	if err := os.Chmod(dl, 0o777); err != nil {
		return "", err
	}
	spec := p.Name + ":" + s.Arch + "=" + p.Version
	if p.Arch == "all" {
		spec = p.Name + "=" + p.Version
	}
	cmd := exec.CommandContext(ctx, "apt-get", append(s.aptOptions(dir), "download", spec)...)
	cmd.Dir = dl
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("Version '")) && bytes.Contains(out, []byte("was not found")) ||
			bytes.Contains(out, []byte("Unable to locate")) || bytes.Contains(out, []byte("Can't select")) {
			return "", fmt.Errorf("fetching %s from Debian %s/%s: version %s %w (mirror now has a different version; relock)", p.Name, s.Suite, s.Arch, p.Version, ErrNotFound)
		}
		return "", fmt.Errorf("apt-get download %s: %w\n%s", spec, err, out)
	}
	ents, err := os.ReadDir(dl)
	if err != nil {
		return "", err
	}
	var got string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".deb") {
			got = filepath.Join(dl, e.Name())
		}
	}
	if got == "" {
		return "", fmt.Errorf("apt-get download %s produced no .deb\n%s", spec, out)
	}
	if err := checkSHA256(got, p.SHA256); err != nil {
		return "", fmt.Errorf("fetching %s: %w", p, err)
	}
	if err := os.Rename(got, final); err != nil {
		return "", err
	}
	return final, nil
}

func debFileName(p Package) string {
	// ':' (epochs) is legal in versions but awkward in file names.
	return strings.ReplaceAll(p.Name+"_"+p.Version+"_"+p.Arch, ":", "%3a") + ".deb"
}

func checkSHA256(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return fmt.Errorf("sha256 mismatch for %s: expected %s, found %s", filepath.Base(path), want, got)
	}
	return nil
}

// Extract unpacks a .deb's data into dir (created when missing), like
// dpkg would install it, without running maintainer scripts.
func Extract(ctx context.Context, debPath, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debPath, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("dpkg-deb -x %s %s: %w\n%s", debPath, dir, err, out)
	}
	return nil
}

// lockDir serialises apt runs on one private tree across processes (tests
// of several packages may fetch at the same time); the lock file goes with
// the lock.
func lockDir(ctx context.Context, dir string) (func(), error) {
	return filelock.Lock(ctx, filepath.Join(dir, ".hil-lock"))
}
