package main

import (
	"fmt"

	"github.com/hilproject/hil/harness/image"
	"github.com/spf13/cobra"
)

func init() {
	imageCmd := &cobra.Command{
		Use:   "image",
		Short: "Open, pin and flatten images",
	}
	var (
		platform string
		rootfs   bool
		insecure bool
		maxBytes int64
	)
	inspect := &cobra.Command{
		Use:   "inspect REF",
		Short: "Print the digest an image reference pins to and its platforms; with --rootfs, flatten one platform",
		Long: `REF is one of:
  oci:DIR[@sha256:...]        an OCI image layout directory
  docker-archive:FILE[:TAG]   a docker save tarball
  docker-daemon:NAME[:TAG]    an image in the Docker engine at $DOCKER_HOST
  [registry:]HOST/REPO:TAG    a registry (credentials from $DOCKER_CONFIG)
  PATH                        an existing layout dir or docker archive`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := []image.Option{image.WithMaxRootFSBytes(maxBytes), image.WithRegistry(registryAccess(insecure))}
			a, err := image.Open(cmd.Context(), args[0], opts...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "ref:       %s\ndigest:    %s\n", a.Ref, a.Digest)
			for _, p := range a.Platforms() {
				fmt.Fprintf(out, "platform:  %s\n", p)
			}
			if !rootfs {
				return nil
			}
			img, err := a.Image(platform)
			if err != nil {
				return err
			}
			dir, err := img.RootFS(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "manifest:  %s (%s)\nrootfs:    %s\n", img.ManifestDigest, img.Platform, dir)
			if img.Report != nil {
				fmt.Fprintf(out, "contents:  %d files, %d dirs, %d symlinks, %d hard links, %d bytes\n",
					img.Report.Files, img.Report.Dirs, img.Report.Symlinks, img.Report.HardLinks, img.Report.Bytes)
				for _, s := range img.Report.Skipped {
					fmt.Fprintf(out, "skipped:   %s\n", s)
				}
			}
			return nil
		},
	}
	inspect.Flags().StringVar(&platform, "platform", "", "platform to flatten, e.g. linux/arm/v7 (needed when the image has several)")
	inspect.Flags().BoolVar(&rootfs, "rootfs", false, "flatten the platform's layers into the cache and print the rootfs dir")
	inspect.Flags().BoolVar(&insecure, "insecure", false, insecureUsage)
	inspect.Flags().Int64Var(&maxBytes, "max-rootfs-bytes", image.DefaultMaxRootFSBytes, "cap on the uncompressed layer bytes (decompression bombs)")
	imageCmd.AddCommand(inspect)
	rootCmd.AddCommand(imageCmd)
}
