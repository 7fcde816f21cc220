package system

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/u-root/u-root/pkg/cpio"

	"github.com/hilproject/hil/harness/kernel"
)

// initramfsSpec is what goes into a guest's initramfs: the image's rootfs
// as it is (exact), plus hil's own files under /.hil, out of the app's way.
type initramfsSpec struct {
	rootfs  string
	init    string
	modules []kernel.Module
	config  []byte
	gzip    bool
}

// buildInitramfs writes a newc cpio archive of spec to out. Uncompressed by
// default: QEMU loads it straight into guest RAM, while gunzip under TCG
// costs the guest far more than the extra bytes cost the host.
func buildInitramfs(ctx context.Context, spec initramfsSpec, out string) (err error) {
	tmp := out + fmt.Sprintf(".%d.tmp", os.Getpid())
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	var w io.Writer = bw
	var gz *gzip.Writer
	if spec.gzip {
		gz, _ = gzip.NewWriterLevel(bw, gzip.BestSpeed)
		w = gz
	}
	rw := cpio.Newc.Writer(w)
	rec := cpio.NewRecorder()
	hasDev := false
	err = filepath.WalkDir(spec.rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, _ := filepath.Rel(spec.rootfs, p)
		if rel == "." {
			return nil
		}
		if rel == ".hil" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == "dev" {
			hasDev = true
		}
		r, err := rec.GetRecord(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		r.Name = filepath.ToSlash(rel)
		if r.Mode&cpio.S_IFMT == cpio.S_IFREG && r.ReaderAt == nil {
			// A further hard link: the kernel links it to the first one,
			// which carried the data.
			r.FileSize = 0
		}
		return rw.WriteRecord(r)
	})
	if err != nil {
		return fmt.Errorf("archiving rootfs %s: %w", spec.rootfs, err)
	}
	initBin, err := os.ReadFile(spec.init)
	if err != nil {
		return err
	}
	recs := []cpio.Record{
		cpio.Directory(".hil", 0o755),
		cpio.StaticFile(".hil/init", string(initBin), 0o755),
		cpio.StaticFile(".hil/config.json", string(spec.config), 0o644),
		cpio.Directory(".hil/modules", 0o755),
	}
	for _, m := range spec.modules {
		b, err := os.ReadFile(m.Path)
		if err != nil {
			return fmt.Errorf("reading module %s: %w", m.Path, err)
		}
		recs = append(recs, cpio.StaticFile(".hil/modules/"+m.Name+".ko", string(b), 0o644))
	}
	if !hasDev {
		recs = append(recs, cpio.Directory("dev", 0o755))
	}
	// The kernel opens /dev/console for init before init can mount devtmpfs.
	recs = append(recs, cpio.CharDev("dev/console", 0o600, 5, 1))
	for _, r := range recs {
		if err := rw.WriteRecord(r); err != nil {
			return err
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return err
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}
