package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/image"
)

func init() {
	imageCmd := &cobra.Command{
		Use:   "image",
		Short: "Open, pin and flatten images",
	}
	var (
		platforms []string
		rootfs    bool
		insecure  bool
		asJSON    bool
		maxBytes  int64
	)
	inspect := &cobra.Command{
		Use: "inspect REF",
		Example: `  hil image inspect oci:build/images/pcapwatch
  hil image inspect oci:build/images/pcapwatch --platform linux/arm/v7 --rootfs --json
  hil image inspect docker-archive:app.tar:myorg/app:1.2
  hil image inspect --insecure 127.0.0.1:5000/app:1.2`,
		Short: "Print the digest an image reference pins to and its platforms; with --rootfs, flatten one platform",
		Long: `REF is one of:
  oci:DIR[@sha256:...]        an OCI image layout directory
  docker-archive:FILE[:TAG]   a docker save tarball
  docker-daemon:NAME[:TAG]    an image in the Docker engine at $DOCKER_HOST
  [registry:]HOST/REPO:TAG    a registry (credentials from $DOCKER_CONFIG)
  PATH                        an existing layout dir or docker archive`,
		Args: needArgs(1, 1, "a REF: oci:DIR, docker-archive:FILE, docker-daemon:NAME or a registry reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := []image.Option{image.WithMaxRootFSBytes(maxBytes), image.WithRegistry(registryAccess(insecure))}
			a, err := image.Open(cmd.Context(), args[0], opts...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			doc := inspectJSON{Ref: a.Ref, Digest: a.Digest.String(), Platforms: []string{}}
			for _, p := range a.Platforms() {
				doc.Platforms = append(doc.Platforms, p.String())
			}
			if rootfs && len(platforms) == 0 {
				platforms = []string{""} // the image's one platform (or an error naming them)
			}
			for _, platform := range platforms {
				if !rootfs {
					break
				}
				img, err := a.Image(platform)
				if err != nil {
					return err
				}
				dir, err := img.RootFS(cmd.Context())
				if err != nil {
					return err
				}
				im := &inspectImage{ManifestDigest: img.ManifestDigest.String(), Platform: img.Platform.String(), RootFS: dir,
					Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd, User: img.Config.User, WorkingDir: img.Config.WorkingDir}
				if r := img.Report; r != nil {
					im.Contents = &inspectContents{Files: r.Files, Dirs: r.Dirs, Symlinks: r.Symlinks, HardLinks: r.HardLinks, Bytes: r.Bytes, Skipped: r.Skipped}
				}
				doc.Images = append(doc.Images, *im)
			}
			if asJSON {
				return printJSON(out, doc)
			}
			fmt.Fprintf(out, "ref:       %s\ndigest:    %s\n", doc.Ref, doc.Digest)
			for _, p := range doc.Platforms {
				fmt.Fprintf(out, "platform:  %s\n", p)
			}
			for _, im := range doc.Images {
				fmt.Fprintf(out, "manifest:  %s (%s)\nrootfs:    %s\n", im.ManifestDigest, im.Platform, im.RootFS)
				if c := im.Contents; c != nil {
					fmt.Fprintf(out, "contents:  %d files, %d dirs, %d symlinks, %d hard links, %d bytes\n",
						c.Files, c.Dirs, c.Symlinks, c.HardLinks, c.Bytes)
					for _, s := range c.Skipped {
						fmt.Fprintf(out, "skipped:   %s\n", s)
					}
				}
			}
			return nil
		},
	}
	inspect.Flags().SetNormalizeFunc(normalizeFlags)
	addPlatformFlag(inspect.Flags(), &platforms, nil, "with --rootfs, the platforms to flatten (needed when the image has several)")
	inspect.Flags().BoolVar(&rootfs, "rootfs", false, "flatten the platforms' layers into the cache and print each rootfs dir")
	inspect.Flags().BoolVar(&insecure, "insecure", false, insecureUsage)
	addJSONFlag(inspect.Flags(), &asJSON)
	inspect.Flags().Int64Var(&maxBytes, "max-rootfs-bytes", image.DefaultMaxRootFSBytes, "cap on the uncompressed layer bytes (decompression bombs)")
	imageCmd.AddCommand(inspect)
	rootCmd.AddCommand(imageCmd)
}

// inspectJSON is "hil image inspect --json".
type inspectJSON struct {
	Ref       string   `json:"ref"`
	Digest    string   `json:"digest"`
	Platforms []string `json:"platforms"`
	// Images are the flattened platforms (--rootfs).
	Images []inspectImage `json:"images,omitempty"`
}

// inspectImage is the flattened platform (--rootfs).
type inspectImage struct {
	ManifestDigest string           `json:"manifest_digest"`
	Platform       string           `json:"platform"`
	RootFS         string           `json:"rootfs"`
	Entrypoint     []string         `json:"entrypoint,omitempty"`
	Cmd            []string         `json:"cmd,omitempty"`
	User           string           `json:"user,omitempty"`
	WorkingDir     string           `json:"working_dir,omitempty"`
	Contents       *inspectContents `json:"contents,omitempty"`
}

type inspectContents struct {
	Files     int             `json:"files"`
	Dirs      int             `json:"dirs"`
	Symlinks  int             `json:"symlinks"`
	HardLinks int             `json:"hard_links"`
	Bytes     int64           `json:"bytes"`
	Skipped   []image.Skipped `json:"skipped,omitempty"`
}
