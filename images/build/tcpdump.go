package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hilproject/hil/internal/debian"
)

// debImage is an image made only of Debian packages: a real libpcap
// program nobody in this project wrote, packed COPY-only like the sample
// (the runtime layer of glibc and libpcap, then the program's own
// packages), so hil's scenarios can be held against a second app.
type debImage struct {
	Name      string
	Platforms []string
	// Runtime is the deb set of the first layer (shared with pcapwatch),
	// App the set of the second, per platform.
	Runtime, App func(platform string) string
	// Files are written into the app layer: what the packages' maintainer
	// scripts would have made, which a COPY-only image cannot run.
	Files      map[string]string
	Entrypoint []string
	Cmd        []string
	About      string
}

var debImages = []debImage{{
	Name:      "tcpdump",
	Platforms: both,
	Runtime:   bookwormRuntime,
	App: func(p string) string {
		if p == "linux/amd64" {
			return "tcpdump-amd64"
		}
		return "tcpdump-armhf"
	},
	// tcpdump's postinst adds the system user it drops privileges to
	// after opening the capture; without it tcpdump exits with "Couldn't
	// find user 'tcpdump'".
	Files: map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\ntcpdump:x:100:101::/nonexistent:/usr/sbin/nologin\n",
		"etc/group":  "root:x:0:\ntcpdump:x:101:\n",
	},
	// -n: no name lookups (there is no resolver); -e: the link-level
	// header too (MACs, 802.1Q tags); -l: line-buffered output, one line
	// per frame; -U: packet-buffered -w output. Without
	// --immediate-mode libpcap packs frames into TPACKET_V3 blocks, which
	// hold a burst in the default 2 MiB buffer; frames reach tcpdump when
	// a block fills or after its 1 s timeout.
	Entrypoint: []string{"/usr/bin/tcpdump"},
	Cmd:        []string{"-i", "eth0", "-n", "-e", "-l", "-U"},
	About:      "Debian's tcpdump (libpcap), unmodified",
}}

// buildDebImages writes every debImage next to the sample's images.
func buildDebImages(ctx context.Context, out string, sets map[string]fetched, layers map[string]v1.Layer) ([]*builtImage, error) {
	var built []*builtImage
	for _, d := range debImages {
		imgs := map[string]v1.Image{}
		pkgsUsed := map[string][]string{}
		for _, plat := range d.Platforms {
			img, names, err := d.assemble(ctx, plat, sets, layers)
			if err != nil {
				return nil, fmt.Errorf("image %s %s: %w", d.Name, plat, err)
			}
			imgs[plat], pkgsUsed[plat] = img, names
		}
		bi, err := writeImage(out, d.Name, d.Platforms, imgs, false)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", d.Name, err)
		}
		bi.Packages = pkgsUsed
		built = append(built, bi)
	}
	return built, nil
}

func (d debImage) assemble(ctx context.Context, plat string, sets map[string]fetched, layers map[string]v1.Layer) (v1.Image, []string, error) {
	runtimeSet, appSet := d.Runtime(plat), d.App(plat)
	rootfs, ok := layers[runtimeSet+"|"]
	if !ok {
		var err error
		if rootfs, _, err = rootfsLayer(ctx, sets[runtimeSet].debs, nil); err != nil {
			return nil, nil, err
		}
		layers[runtimeSet+"|"] = rootfs
	}
	app, err := debLayer(ctx, sets[appSet].debs, d.Files)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for _, sn := range []string{runtimeSet, appSet} {
		for _, p := range sets[sn].pkgs {
			names = append(names, fmt.Sprintf("%s %s %s %s", p.Name, p.Version, p.Arch, p.SHA256))
		}
	}
	rs, as := setByName(runtimeSet), setByName(appSet)
	p := parsePlatform(plat)
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture, OS: p.OS, Variant: p.Variant,
		Created: v1.Time{Time: epoch},
		Config: v1.Config{
			Entrypoint: d.Entrypoint,
			Cmd:        d.Cmd,
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Labels: map[string]string{
				"org.opencontainers.image.title":       d.Name,
				"org.opencontainers.image.description": d.About,
				"io.hil.debian":                        as.Suite + "/" + as.Arch,
			},
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	base, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, nil, err
	}
	base = mutate.MediaType(base, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base,
		mutate.Addendum{Layer: rootfs, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: epoch},
			CreatedBy: fmt.Sprintf("COPY debian %s/%s %s (%d packages from images/debs.lock) /", rs.Suite, rs.Arch, strings.Join(rs.Roots, " "), len(sets[runtimeSet].pkgs))}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: epoch},
			CreatedBy: fmt.Sprintf("COPY debian %s/%s %s (from images/debs.lock) and %s /", as.Suite, as.Arch, strings.Join(as.Roots, " "), strings.Join(sortedKeys(d.Files), " "))}},
	)
	return img, names, err
}

// debLayer unpacks debs and adds files (path relative to / -> content),
// packed like the runtime layer (documentation left out, fixed times).
func debLayer(ctx context.Context, debs []string, files map[string]string) (v1.Layer, error) {
	dir, err := os.MkdirTemp("", "hil-deblayer-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, d := range debs {
		if err := debian.Extract(ctx, d, dir); err != nil {
			return nil, err
		}
	}
	for _, name := range sortedKeys(files) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		for _, s := range slimmed {
			if rel == s || strings.HasPrefix(rel, s+"/") {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		return addTarEntry(tw, p, rel, info)
	})
	if err != nil {
		return nil, fmt.Errorf("packing %d packages: %w", len(debs), err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return layerFromTar(buf.Bytes())
}
