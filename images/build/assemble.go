package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hilproject/hil/images"
	"github.com/hilproject/hil/internal/debian"
)

// epoch is every timestamp in the images (files, config, history): a fixed
// time makes an unchanged rebuild produce the same digests.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Registry-style name the docker-save tarballs carry, one tag per platform
// (docker load keeps one image per tag).
const tagRepo = "hil.local/"

// slimmed are left out of every rootfs: documentation only.
var slimmed = []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/locale", "usr/share/bug"}

// rootfsLayer unpacks debs into a scratch dir and tars it deterministically,
// leaving out the documentation and any path matching drop (path.Match
// patterns relative to /).
func rootfsLayer(ctx context.Context, debs []string, drop []string) (v1.Layer, []string, error) {
	dir, err := os.MkdirTemp("", "hil-rootfs-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	for _, d := range debs {
		if err := debian.Extract(ctx, d, dir); err != nil {
			return nil, nil, err
		}
	}
	var dropped []string
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
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
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		for _, pat := range drop {
			if ok, _ := path.Match(pat, rel); ok {
				dropped = append(dropped, "/"+rel)
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return addTarEntry(tw, p, rel, info)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("packing the rootfs: %w", err)
	}
	// /tmp is expected by many apps and by libpcap's users; dpkg would not
	// have made it.
	if err := tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: epoch}); err != nil {
		return nil, nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	l, err := layerFromTar(buf.Bytes())
	return l, dropped, err
}

func addTarEntry(tw *tar.Writer, src, rel string, info fs.FileInfo) error {
	h := &tar.Header{Name: rel, ModTime: epoch, Mode: int64(info.Mode().Perm()), Format: tar.FormatPAX}
	if info.Mode()&fs.ModeSetuid != 0 {
		h.Mode |= 0o4000
	}
	if info.Mode()&fs.ModeSetgid != 0 {
		h.Mode |= 0o2000
	}
	if info.Mode()&fs.ModeSticky != 0 {
		h.Mode |= 0o1000
	}
	switch {
	case info.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, rel+"/"
	case info.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, t
	case info.Mode().IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, info.Size()
	default:
		return nil // dpkg-deb -x makes no device nodes or fifos for these packages
	}
	// PAX would record atime/ctime only if set; they are not.
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if h.Typeflag == tar.TypeReg {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(tw, f); err != nil {
			return err
		}
	}
	return nil
}

// appLayer holds the app at /opt/pcapwatch.
func appLayer(binPath string) (v1.Layer, error) {
	b, err := os.ReadFile(binPath)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "opt/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch},
		{Name: "opt/pcapwatch", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(b)), ModTime: epoch},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return layerFromTar(buf.Bytes())
}

// layerFromTar compresses once (Go's gzip writes no timestamp or name, so
// the bytes depend on the content only) and hands ggcr the compressed form.
func layerFromTar(tarBytes []byte) (v1.Layer, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarBytes); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	data := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// platformImage is the COPY-only image of one platform: Debian runtime
// layer, then the app layer.
func platformImage(p v1.Platform, rootfs, app v1.Layer, labels map[string]string, history []string) (v1.Image, error) {
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture, OS: p.OS, Variant: p.Variant,
		Created: v1.Time{Time: epoch},
		Config: v1.Config{
			Entrypoint: []string{"/opt/pcapwatch"},
			Cmd:        []string{"--iface", "eth0"},
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Labels:     labels,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	base, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	base = mutate.MediaType(base, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	return mutate.Append(base,
		mutate.Addendum{Layer: rootfs, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: history[0]}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: history[1]}},
	)
}

func parsePlatform(s string) v1.Platform {
	parts := strings.Split(s, "/")
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	return p
}

// builtImage is the builder's record of one image (images.json).
type builtImage = images.Built

// writeImage writes the index as an OCI layout (index.json pointing at the
// image index, tagged "latest") and a docker-save tarball with one tag per
// platform. Both are written aside and renamed into place. single writes
// the one platform's manifest itself instead of an index around it.
func writeImage(outDir, imgName string, plats []string, imgs map[string]v1.Image, single bool) (*builtImage, error) {
	if single && len(plats) != 1 {
		return nil, fmt.Errorf("a single-manifest image has one platform, not %d", len(plats))
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	bi := &builtImage{Name: imgName, Platforms: plats, Manifests: map[string]string{}, Tags: map[string]string{}}
	tags := map[name.Tag]v1.Image{}
	for _, ps := range plats {
		img := imgs[ps]
		p := parsePlatform(ps)
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		bi.Manifests[ps] = d.String()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		tag, err := name.NewTag(tagRepo + imgName + ":" + platformSlug(ps))
		if err != nil {
			return nil, err
		}
		tags[tag] = img
		bi.Tags[ps] = tag.String()
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	if single {
		if d, err = imgs[plats[0]].Digest(); err != nil {
			return nil, err
		}
	}
	bi.Digest = d.String()

	layoutDir := filepath.Join(outDir, imgName)
	tmp := layoutDir + ".tmp"
	os.RemoveAll(tmp)
	lp, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return nil, err
	}
	tagLatest := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})
	if single {
		img := imgs[plats[0]]
		p := parsePlatform(plats[0])
		err = lp.AppendImage(img, tagLatest, layout.WithPlatform(p))
	} else {
		err = lp.AppendIndex(idx, tagLatest)
	}
	if err != nil {
		return nil, fmt.Errorf("writing OCI layout %s: %w", layoutDir, err)
	}
	os.RemoveAll(layoutDir)
	if err := os.Rename(tmp, layoutDir); err != nil {
		return nil, err
	}
	bi.Layout = layoutDir

	tarPath := filepath.Join(outDir, imgName+".tar")
	if err := tarball.MultiWriteToFile(tarPath+".tmp", tags); err != nil {
		return nil, fmt.Errorf("writing docker archive %s: %w", tarPath, err)
	}
	if err := os.Rename(tarPath+".tmp", tarPath); err != nil {
		return nil, err
	}
	bi.Tarball = tarPath
	return bi, nil
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
