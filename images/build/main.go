// Command build makes the sample app's images without Docker: it
// cross-compiles pcapwatch (linux/arm/v7 against Debian's armhf libpcap,
// linux/amd64 natively), unpacks the pinned Debian runtime packages of
// images/debs.lock into a COPY-only style layer, and writes each image
// (the good one and the deliberately broken variants, and Debian's own
// tcpdump as a second sample) as an OCI layout dir and a docker-save
// tarball under --out. A rebuild with unchanged inputs does nothing.
//
//	go run ./images/build --out build/images
//	go run ./images/build --relock          # re-resolve images/debs.lock
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hilproject/hil/images"
	"github.com/hilproject/hil/internal/debian"
)

// variant is one image: pcapwatch itself or a deliberately broken copy.
type variant struct {
	Name      string
	Breaks    string
	Platforms []string
	// Runtime picks the deb set unpacked as the rootfs of a platform.
	Runtime func(platform string) string
	// Binary picks the target the app is compiled for (wrong-arch lies).
	Binary func(platform string) string
	LDX    []string // -X settings baked into the binary
	Tags   []string // build tags: extra source files of the variant
	Drop   []string // path.Match patterns left out of the rootfs
	// Single writes the image as one manifest instead of an index, as a
	// plain `docker build` (or a one-platform push) makes it: an engine
	// pulls it whatever platform it asks for.
	Single bool
	// From reuses the platform images of another variant as they are
	// (same manifests, same digests).
	From string
}

func samePlatform(p string) string { return p }

func bookwormRuntime(p string) string {
	switch p {
	case "linux/amd64":
		return "runtime-amd64"
	case "linux/arm64":
		return "runtime-arm64"
	case "linux/arm/v5":
		return "runtime-armel"
	}
	return "runtime-armhf"
}

var both = []string{"linux/arm/v7", "linux/amd64"}
var armOnly = []string{"linux/arm/v7"}

// fleet is the sample app's index: the two platforms it always had (their
// manifests unchanged), then an armel build for the ARMv6 boards (Pi Zero,
// Pi 1: linux/arm/v5 is what their engine falls back to) and an arm64
// build for the 64-bit Raspberry Pi OS.
var fleet = []string{"linux/arm/v7", "linux/amd64", "linux/arm/v5", "linux/arm64"}

var variants = []variant{
	{Name: "pcapwatch", Platforms: fleet, Runtime: bookwormRuntime, Binary: samePlatform},
	// The arm/v7 manifest of pcapwatch alone, as a single-manifest image
	// (what a one-platform build pushes): a Pi Zero's engine pulls it
	// anyway and the board kills it with SIGILL.
	{Name: "pcapwatch-armhf", Breaks: "only the armhf (ARMv7) build, as one manifest: an ARMv6 board (Pi Zero, Pi 1) pulls it and cannot run it",
		Platforms: armOnly, Single: true, From: "pcapwatch", Runtime: bookwormRuntime, Binary: samePlatform},
	{Name: "armv8-only", Breaks: "a helper built for ARMv8 AArch32 (-march=armv8-a+crc) runs at start: SIGILL on ARMv7 (Pi 2) and ARMv6 boards", Platforms: armOnly, Single: true,
		Runtime: bookwormRuntime, Binary: samePlatform, Tags: []string{"armv8crc"}},
	{Name: "no-libpcap", Breaks: "libpcap.so.0.8 is missing from the image", Platforms: both,
		Runtime: bookwormRuntime, Binary: samePlatform,
		Drop: []string{"lib/*/libpcap.so*", "usr/lib/*/libpcap.so*"}},
	{Name: "old-glibc", Breaks: "runtime packages from Debian bullseye (glibc 2.31); the binary needs GLIBC_2.34", Platforms: armOnly,
		Runtime: func(string) string { return "runtime-armhf-bullseye" }, Binary: samePlatform},
	{Name: "wrong-arch", Breaks: "the app is an arm64 (aarch64) binary in the linux/arm/v7 image", Platforms: armOnly,
		Runtime: bookwormRuntime, Binary: func(string) string { return "linux/arm64" }},
	{Name: "no-loader", Breaks: "the dynamic loader /lib/ld-linux-armhf.so.3 is missing", Platforms: armOnly,
		Runtime: bookwormRuntime, Binary: samePlatform,
		Drop: []string{"lib/ld-linux-armhf.so.3", "lib/arm-linux-gnueabihf/ld-linux-armhf.so.3", "usr/lib/ld-linux-armhf.so.3", "usr/lib/arm-linux-gnueabihf/ld-linux-armhf.so.3"}},
	{Name: "crash-on-start", Breaks: "the app exits 1 with an error on stderr before it is ready", Platforms: both,
		Runtime: bookwormRuntime, Binary: samePlatform,
		LDX: []string{"main.crashOnStart=fatal: reading /etc/pcapwatch/config.toml: no such file or directory"}},
	{Name: "slow-start", Breaks: "the app prints ready only after 30 s", Platforms: both,
		Runtime: bookwormRuntime, Binary: samePlatform,
		LDX: []string{"main.startDelay=30s"}},
}

func main() {
	out := flag.String("out", "build/images", "output directory")
	lockPath := flag.String("lock", "", "lock file (default <repo>/images/debs.lock)")
	relock := flag.Bool("relock", false, "re-resolve every Debian package to the mirror's current version and rewrite the lock")
	fetchOnly := flag.Bool("fetch-only", false, "resolve and download the locked packages, build nothing")
	force := flag.Bool("force", false, "rebuild even when the inputs are unchanged")
	check := flag.Bool("check", false, "only say whether --out is up to date (exit 0) or would be rebuilt (exit 3)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *check {
		fresh, err := upToDate(*out, *lockPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "images/build:", err)
			os.Exit(1)
		}
		if !fresh {
			fmt.Printf("%s is stale: inputs changed or outputs missing; run make images\n", *out)
			os.Exit(3)
		}
		fmt.Printf("%s is up to date\n", *out)
		return
	}
	if err := run(ctx, *out, *lockPath, *relock, *fetchOnly, *force); err != nil {
		fmt.Fprintln(os.Stderr, "images/build:", err)
		os.Exit(1)
	}
}

// upToDate reports whether out holds every image built from the current
// inputs.
func upToDate(out, lockPath string) (bool, error) {
	repo, err := repoRoot()
	if err != nil {
		return false, err
	}
	if lockPath == "" {
		lockPath = filepath.Join(repo, "images", "debs.lock")
	}
	h, err := inputHash(repo, lockPath)
	if err != nil {
		return false, err
	}
	old, _ := os.ReadFile(filepath.Join(out, ".inputs.sha256"))
	if strings.TrimSpace(string(old)) != h {
		return false, nil
	}
	built, err := readManifest(filepath.Join(out, "images.json"))
	return err == nil && allPresent(built), nil
}

func run(ctx context.Context, out, lockPath string, relock, fetchOnly, force bool) error {
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	if lockPath == "" {
		lockPath = filepath.Join(repo, "images", "debs.lock")
	}
	if out, err = filepath.Abs(out); err != nil {
		return err
	}
	stampPath := filepath.Join(out, ".inputs.sha256")
	manifestPath := filepath.Join(out, "images.json")
	if !relock && !force && !fetchOnly {
		if fresh, _ := upToDate(out, lockPath); fresh {
			built, _ := readManifest(manifestPath)
			fmt.Printf("images in %s are up to date (inputs unchanged), nothing to do\n", out)
			printTable(os.Stdout, built)
			return nil
		}
	}
	start := time.Now()

	lock, err := readLock(lockPath)
	if err != nil {
		return err
	}
	res := &debResolver{lock: lock, relock: relock, strict: os.Getenv("HIL_STRICT_LOCK") == "1", log: os.Stderr}
	sets := map[string]fetched{}
	for _, s := range debSets {
		pkgs, debs, err := res.fetch(ctx, s)
		if err != nil {
			return err
		}
		sets[s.Name] = fetched{pkgs, debs}
	}
	if res.changed {
		if err := lock.write(lockPath); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", lockPath)
	}
	if fetchOnly {
		for _, s := range debSets {
			for _, p := range sets[s.Name].pkgs {
				fmt.Printf("%-24s %s\n", s.Name, p)
			}
		}
		return nil
	}

	// Binaries.
	sysroots := map[string]string{}
	for _, t := range targets {
		if len(t.Sysroot) == 0 {
			continue
		}
		var pkgs []debian.Package
		var debs []string
		for _, sn := range t.Sysroot {
			pkgs = append(pkgs, sets[sn].pkgs...)
			debs = append(debs, sets[sn].debs...)
		}
		dir, err := sysroot(ctx, t.Triplet, pkgs, debs)
		if err != nil {
			return fmt.Errorf("sysroot for %s: %w", t.Platform, err)
		}
		sysroots[t.Platform] = dir
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	os.Remove(stampPath)
	binaries := map[string]string{} // key: binary platform + "|" + LDX
	binFor := func(v variant, plat string) (string, error) {
		bp := v.Binary(plat)
		key := bp + "|" + strings.Join(v.LDX, ",") + "|" + strings.Join(v.Tags, ",")
		if p, ok := binaries[key]; ok {
			return p, nil
		}
		nm := "pcapwatch"
		if len(v.LDX) > 0 || len(v.Tags) > 0 {
			nm += "-" + v.Name
		}
		nm += "-" + strings.ReplaceAll(bp, "/", "-")
		p, err := compile(ctx, repo, out, binary{Name: nm, Target: targets[bp], LDFlagsX: v.LDX, Tags: v.Tags}, sysroots[bp])
		if err != nil {
			return "", err
		}
		binaries[key] = p
		return p, nil
	}

	// Images.
	layers := map[string]v1.Layer{}
	var built []*builtImage
	type platImages struct {
		imgs     map[string]v1.Image
		bins     map[string]string
		pkgsUsed map[string][]string
	}
	byVariant := map[string]platImages{}
	for _, v := range variants {
		imgs := map[string]v1.Image{}
		bins := map[string]string{}
		pkgsUsed := map[string][]string{}
		for _, plat := range v.Platforms {
			if v.From != "" {
				from, ok := byVariant[v.From]
				if !ok || from.imgs[plat] == nil {
					return fmt.Errorf("image %s: reuses %s %s, which is not built before it", v.Name, v.From, plat)
				}
				imgs[plat], bins[plat], pkgsUsed[plat] = from.imgs[plat], from.bins[plat], from.pkgsUsed[plat]
				continue
			}
			bin, err := binFor(v, plat)
			if err != nil {
				return err
			}
			img, names, err := assemble(ctx, v, plat, sets, bin, layers)
			if err != nil {
				return err
			}
			imgs[plat] = img
			bins[plat] = bin
			pkgsUsed[plat] = names
		}
		byVariant[v.Name] = platImages{imgs, bins, pkgsUsed}
		bi, err := writeImage(out, v.Name, v.Platforms, imgs, v.Single)
		if err != nil {
			return fmt.Errorf("image %s: %w", v.Name, err)
		}
		bi.Breaks, bi.Binaries, bi.Packages = v.Breaks, bins, pkgsUsed
		built = append(built, bi)
	}
	rs, err := buildRustImages(ctx, repo, out, sets, sysroots)
	if err != nil {
		return err
	}
	built = append(built, rs...)
	debBuilt, err := buildDebImages(ctx, out, sets, layers)
	if err != nil {
		return err
	}
	built = append(built, debBuilt...)
	mb, _ := json.MarshalIndent(built, "", "  ")
	if err := os.WriteFile(manifestPath, append(mb, '\n'), 0o644); err != nil {
		return err
	}
	if h, err := inputHash(repo, lockPath); err == nil {
		os.WriteFile(stampPath, []byte(h+"\n"), 0o644)
	}
	fmt.Printf("built %d images in %s into %s\n", len(built), time.Since(start).Round(100*time.Millisecond), out)
	printTable(os.Stdout, built)
	return nil
}

// fetched is a deb set's locked packages and their cached .deb files.
type fetched struct {
	pkgs []debian.Package
	debs []string
}

// assemble makes one platform's image of a variant: the runtime set's
// rootfs layer (shared through layers between images that use the same
// set and drops) and the app layer. It returns the packages it holds.
func assemble(ctx context.Context, v variant, plat string, sets map[string]fetched, bin string, layers map[string]v1.Layer) (v1.Image, []string, error) {
	setName := v.Runtime(plat)
	lkey := setName + "|" + strings.Join(v.Drop, ",")
	rootfs, ok := layers[lkey]
	if !ok {
		var dropped []string
		var err error
		rootfs, dropped, err = rootfsLayer(ctx, sets[setName].debs, v.Drop)
		if err != nil {
			return nil, nil, err
		}
		if len(v.Drop) > 0 && len(dropped) == 0 {
			return nil, nil, fmt.Errorf("%s: nothing in %s matched %v: the variant would not be broken", v.Name, setName, v.Drop)
		}
		layers[lkey] = rootfs
	}
	app, err := appLayer(bin)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for _, p := range sets[setName].pkgs {
		names = append(names, fmt.Sprintf("%s %s %s %s", p.Name, p.Version, p.Arch, p.SHA256))
	}
	s := setByName(setName)
	labels := map[string]string{
		"org.opencontainers.image.title": v.Name,
		"io.hil.variant":                 v.Name,
		"io.hil.debian":                  s.Suite + "/" + s.Arch,
	}
	if v.Breaks != "" {
		labels["io.hil.breaks"] = v.Breaks
	}
	img, err := platformImage(parsePlatform(plat), rootfs, app, labels, []string{
		fmt.Sprintf("COPY debian %s/%s %s (%d packages from images/debs.lock) /", s.Suite, s.Arch, strings.Join(s.Roots, " "), len(names)),
		"COPY " + filepath.Base(bin) + " /opt/pcapwatch",
	})
	return img, names, err
}

func printTable(w io.Writer, built []*builtImage) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tPLATFORMS\tDIGEST\tBREAKS")
	for _, b := range built {
		br := b.Breaks
		if br == "" {
			br = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Name, strings.Join(b.Platforms, ","), b.Digest, br)
	}
	tw.Flush()
}

func readManifest(p string) ([]*builtImage, error) { return images.ReadRecord(p) }

func allPresent(built []*builtImage) bool {
	if len(built) != len(variants)+len(rustVariants)+len(debImages) {
		return false
	}
	for _, b := range built {
		for _, p := range append([]string{filepath.Join(b.Layout, "index.json"), b.Tarball}, mapValues(b.Binaries)...) {
			if _, err := os.Stat(p); err != nil {
				return false
			}
		}
	}
	return true
}

func mapValues(m map[string]string) []string {
	var vs []string
	for _, k := range sortedKeys(m) {
		vs = append(vs, m[k])
	}
	return vs
}

// inputHash covers everything the output depends on: the app and builder
// sources, the lock, go.mod/go.sum, and the toolchains' versions.
func inputHash(repo, lockPath string) (string, error) {
	h := sha256.New()
	var files []string
	err := filepath.WalkDir(filepath.Join(repo, "images"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".rs") || strings.HasSuffix(p, ".lock")) && !strings.HasSuffix(p, "_test.go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	files = append(files, filepath.Join(repo, "go.mod"), filepath.Join(repo, "go.sum"), lockPath)
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(repo, f)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
	}
	for _, tool := range [][]string{{"go", "version"}, {"arm-linux-gnueabihf-gcc", "-dumpfullversion"}, {"aarch64-linux-gnu-gcc", "-dumpfullversion"}, {"arm-linux-gnueabi-gcc", "-dumpfullversion"}, {"gcc", "-dumpfullversion"}, {rustc, "--version"}} {
		o, _ := exec.Command(tool[0], tool[1:]...).Output()
		fmt.Fprintf(h, "%s: %s\n", tool[0], o)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func shortHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])[:16]
}

// repoRoot finds the hil module's root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/hilproject/hil\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the hil repository (no go.mod of github.com/hilproject/hil above the working directory)")
		}
		dir = parent
	}
}
