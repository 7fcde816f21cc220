package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/internal/jsonfmt"
)

// "hil registry" is a small helper for demos and CI smoke tests: a
// throw-away in-memory registry on loopback, and push/digest helpers that
// need no Docker. It is hidden because it is not part of the gate itself.
func init() {
	reg := &cobra.Command{
		Use:    "registry",
		Short:  "Throw-away loopback registry and push helpers (for demos)",
		Hidden: true,
	}

	var addr string
	var printAddr, quiet bool
	serve := &cobra.Command{
		Use:     "serve",
		Example: `  hil registry serve --addr 127.0.0.1:5000`,
		Short:   "Serve an in-memory OCI registry (with the referrers API) until interrupted",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return &exitError{2, fmt.Errorf("--addr %q: want host:port: %w", addr, err)}
			}
			if !registry.IsLoopback(host) {
				return &exitError{2, fmt.Errorf("--addr %q: the demo registry has no auth and serves only on loopback", addr)}
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return &exitError{2, fmt.Errorf("listening on %s: %w", addr, err)}
			}
			logger := log.New(io.Discard, "", 0)
			if !quiet {
				logger = log.New(cmd.ErrOrStderr(), "registry: ", log.LstdFlags)
			}
			srv := &http.Server{
				Handler:           ggcrregistry.New(ggcrregistry.Logger(logger), ggcrregistry.WithReferrersSupport(true)),
				ReadHeaderTimeout: 10 * time.Second,
			}
			if printAddr {
				fmt.Fprintln(cmd.OutOrStdout(), l.Addr().String())
			}
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(l) }()
			select {
			case err := <-errc:
				return &exitError{2, err}
			case <-cmd.Context().Done():
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return srv.Shutdown(ctx)
			}
		},
	}
	serve.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "loopback address to listen on (port 0 picks a free one)")
	serve.Flags().BoolVar(&printAddr, "print-addr", false, "print the address listened on (host:port) on stdout")
	serve.Flags().BoolVar(&quiet, "quiet", false, "do not log requests")

	var insecure bool
	push := &cobra.Command{
		Use:     "push OCI-LAYOUT-DIR REF",
		Example: `  hil registry push build/images/pcapwatch 127.0.0.1:5000/pcapwatch:candidate --insecure`,
		Short:   "Push an OCI layout (its single index or image) to REF, digest unchanged; prints repo@digest",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := registryAccess(insecure)
			ref, err := r.ParseReference(args[1])
			if err != nil {
				return &exitError{2, err}
			}
			dir := strings.TrimPrefix(args[0], "oci:")
			h, err := promote.PushLayout(cmd.Context(), r, dir, ref)
			if err != nil {
				return &exitError{2, err}
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref.Context().Digest(h.String()).String())
			return nil
		},
	}
	push.Flags().BoolVar(&insecure, "insecure", false, insecureUsage)

	digest := &cobra.Command{
		Use:     "digest REF",
		Example: `  hil registry digest 127.0.0.1:5000/pcapwatch:latest --insecure`,
		Short:   "Print the digest REF points at, or (none) and exit 1 when it does not exist",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := registryAccess(insecure)
			ref, err := r.ParseReference(args[0])
			if err != nil {
				return &exitError{2, err}
			}
			d, err := remote.Head(ref, r.Remote(cmd.Context())...)
			if err != nil {
				var terr *transport.Error
				if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
					fmt.Fprintln(cmd.OutOrStdout(), "(none)")
					return &exitError{1, nil}
				}
				return &exitError{2, fmt.Errorf("resolving %s: %w", args[0], registry.Explain(err))}
			}
			fmt.Fprintln(cmd.OutOrStdout(), d.Digest.String())
			return nil
		},
	}
	digest.Flags().BoolVar(&insecure, "insecure", false, insecureUsage)

	reg.AddCommand(serve, push, digest)
	rootCmd.AddCommand(reg)
}

// registryAccess is the registry access every verb uses (harness/registry:
// one transport, retries, keychain and plain-HTTP rule). --insecure asks
// for plain HTTP, which is refused for any registry not on loopback before
// anything is sent.
func registryAccess(insecure bool) *registry.Client {
	if insecure {
		return registry.New(registry.WithInsecure())
	}
	return registry.New()
}

// insecureUsage is the --insecure flag's help, the same in every verb.
const insecureUsage = "plain HTTP to the registry: loopback registries only (localhost, 127.0.0.0/8, ::1); refused for any other"

// jsonPrinted is set once a verb printed its --json data: if it fails
// after that, the data (with its own error field) is the answer, and main
// prints no error object.
var jsonPrinted bool

// printJSON writes v as indented JSON: every --json output goes through
// here (the conventions are in schemas/README.md).
func printJSON(w io.Writer, v any) error {
	jsonPrinted = true
	return jsonfmt.Write(w, v)
}
