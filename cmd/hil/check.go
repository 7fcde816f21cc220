package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/startup"
	"github.com/hilproject/hil/internal/jsonfmt"
)

// checkSchema is the $id of the check report's JSON Schema
// (schemas/check.schema.json).
const checkSchema = "https://hil.dev/schemas/check/v1"

// checkResult is one platform's (or one board's) outcome in `hil check
// --json`.
type checkResult struct {
	// Board is set with --board: the board whose engine pulls Platform.
	Board      string `json:"board,omitempty"`
	BoardModel string `json:"board_model,omitempty"`
	// Refused says why the board pulls nothing (no manifest it accepts).
	Refused string `json:"refused,omitempty"`
	// Note says how the manifest was chosen when that is worth knowing.
	Note           string          `json:"note,omitempty"`
	Platform       string          `json:"platform"`
	ManifestDigest string          `json:"manifest_digest,omitempty"`
	RootFS         string          `json:"rootfs,omitempty"`
	CheckMS        float64         `json:"check_ms"`
	Report         *startup.Report `json:"report,omitempty"`
}

func (r checkResult) ok(allowUnresolved bool) bool {
	return r.Refused == "" && r.Report != nil && r.Report.OK() && (allowUnresolved || r.Report.Complete())
}

func (r checkResult) name() string {
	if r.Board != "" {
		return r.Board
	}
	return r.Platform
}

type checkOutput struct {
	Schema string `json:"schema"`
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	// OK is true when the exit status is 0.
	OK      bool          `json:"ok"`
	Results []checkResult `json:"results"`
}

// checkOptions are the flags of `hil check`.
type checkOptions struct {
	platforms       []string
	boards          []string
	boardProfiles   string
	asJSON          bool
	allowUnresolved bool
	image           []image.Option
}

func init() {
	var o checkOptions
	var insecure bool
	cmd := &cobra.Command{
		Use:   "check IMAGE",
		Short: "Check statically that the image's entrypoint can start (loader, libraries, glibc versions, arch, the board's ISA)",
		Long: `check resolves the image's entrypoint inside its flattened rootfs the way
the kernel and ld.so would (PATH, #! scripts, ELF machine/class/float ABI,
PT_INTERP, DT_NEEDED through RPATH/LD_LIBRARY_PATH/RUNPATH/ld.so.cache and
the default dirs, and every symbol version against the providing library)
without running anything. Every platform of an index is checked unless
--platform is given.

Shell form. An entrypoint or command such as ["/bin/sh", "-c", "STRING"]
(what a Dockerfile's ENTRYPOINT /opt/app becomes; also bash -c, sh -ec …)
is parsed with a real shell parser, and every program the string runs is
checked like the entrypoint, besides the shell itself: simple commands,
exec, VAR=value prefixes, export, cd, && || ; lists, pipelines, subshells,
command substitutions in arguments, nested sh -c, env/nohup/tini/gosu-style
wrappers. Builtins (echo, test, :, cd …) are not programs. What cannot be
known without running the shell (a variable or command substitution in the
command word, if/case/loops, functions, eval, . FILE) is listed as "not
checked: …" with the reason, and check exits 1 unless --allow-unresolved.
A #! script file is followed to its interpreter; what the script runs is
not read.

Boards. --board pi0w,pi3b+ (or --boards) checks, for each board, the
manifest its container engine pulls from the index (containerd's matcher,
with the fallbacks arm64 -> arm/v8 -> v7 -> v6 -> v5; a single-manifest
image is pulled whatever its platform), and holds every ELF the command
loads (program, loader, each library) to the board's instruction set: the
ARM build attributes (.ARM.attributes: Tag_CPU_arch, Tag_FP_arch,
Tag_Advanced_SIMD_arch, Tag_THUMB_ISA_use, Tag_DIV_use) and, for Go
programs, the GOARM/GOARM64 they were built with. A board whose engine
finds no manifest it accepts is refused, listing what the index has.
--platform with --board checks that platform's manifest on the board, as
'docker run --platform' would. "hil boards" lists the profiles.

Limits of the ISA check: build attributes say what the compiler and
assembler were allowed to use, not what the code executes. A library that
shows it picks code by the CPU at run time (it imports getauxval or defines
GNU indirect functions, as Debian's armhf libgcrypt.so.20, whose
attributes say ARMv8-A, and libc.so.6, NEON, do) is noted instead of
refused when its loader fits the board. Dispatch that leaves no such trace
(reading /proc/cpuinfo, probing for SIGILL), JIT compilers and code loaded
later (dlopen) are not seen; a file without attributes is noted, not
refused. Running the image on the board, or on an emulator modelling it,
is the second opinion.

IMAGE is oci:DIR, docker-archive:FILE[:TAG], docker-daemon:NAME[:TAG], a
registry reference, or a path to an OCI layout dir or docker archive.

Exit status: 0 the image can start (on every board given), 1 problems
found, a board refused, or something not checked (without
--allow-unresolved), 2 the check could not run (bad reference, unreadable
image, unknown board).`,
		Example: `  hil check oci:build/images/pcapwatch
  hil check registry.lan/app:1.4 --platform linux/arm/v7 --json
  hil check oci:build/images/pcapwatch --board pi0w,pi3b+/32`,
		Args: needArgs(1, 1, "an IMAGE: oci:DIR, docker-archive:FILE, docker-daemon:NAME or a registry reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.image = append(o.image, image.WithRegistry(registryAccess(insecure)))
			return runCheck(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.SetNormalizeFunc(normalizeFlags)
	addPlatformFlag(f, &o.platforms, nil, "check these (default: every platform of the image, or with --board what each board pulls)")
	addBoardFlag(f, &o.boards, "check what each pulls, held to its instruction set")
	f.StringVar(&o.boardProfiles, "board-profiles", "", "a YAML file of board profiles to add to the table")
	f.BoolVar(&o.allowUnresolved, "allow-unresolved", false, "exit 0 even when part of a shell-form command could not be checked statically")
	addJSONFlag(f, &o.asJSON)
	f.BoolVar(&insecure, "insecure", false, insecureUsage)
	rootCmd.AddCommand(cmd)
}

// checkJob is one check to run: a platform, for a board or not.
type checkJob struct {
	platform string
	board    *board.Board
	refused  string
	note     string
}

func runCheck(cmd *cobra.Command, ref string, o checkOptions) error {
	ctx := cmd.Context()
	var boards []board.Board
	if len(o.boards) > 0 {
		cat, err := boardCatalog(o.boardProfiles)
		if err != nil {
			return &exitError{2, fmt.Errorf("check: %w", err)}
		}
		if boards, err = cat.LookupList(o.boards...); err != nil {
			return &exitError{2, fmt.Errorf("check: %w", err)}
		}
	}
	art, err := image.Open(ctx, ref, o.image...)
	if err != nil {
		return &exitError{2, fmt.Errorf("check: opening %s: %w", ref, err)}
	}
	jobs, err := checkJobs(art, ref, o.platforms, boards)
	if err != nil {
		return err
	}
	out := checkOutput{Schema: checkSchema, Ref: ref, Digest: art.Digest.String(), OK: true}
	for _, j := range jobs {
		res := checkResult{Platform: j.platform, Refused: j.refused, Note: j.note}
		if j.board != nil {
			res.Board, res.BoardModel = j.board.String(), j.board.Model
		}
		if j.refused == "" {
			img, err := art.Image(j.platform)
			if err != nil {
				return &exitError{2, fmt.Errorf("check: %w", err)}
			}
			res.Platform = img.Platform.String()
			dir, err := img.RootFS(ctx)
			if err != nil {
				return &exitError{2, fmt.Errorf("check: flattening %s for %s: %w", ref, j.platform, err)}
			}
			cfg := startup.ConfigFor(res.Platform, img.Config)
			cfg.Board = j.board
			start := time.Now()
			rep, err := startup.Check(ctx, dir, cfg)
			if err != nil {
				return &exitError{2, fmt.Errorf("check: %s for %s: %w", ref, res.name(), err)}
			}
			res.CheckMS = jsonfmt.Millis(time.Since(start))
			res.ManifestDigest, res.RootFS, res.Report = img.ManifestDigest.String(), dir, rep
		}
		out.OK = out.OK && res.ok(o.allowUnresolved)
		out.Results = append(out.Results, res)
	}
	w := cmd.OutOrStdout()
	if o.asJSON {
		if err := printJSON(w, out); err != nil {
			return &exitError{2, err}
		}
	} else if err := writeCheckText(w, out); err != nil {
		return &exitError{2, err}
	}
	if !out.OK {
		return &exitError{1, checkFailure(out, o.allowUnresolved)}
	}
	return nil
}

// checkJobs is what to check: each platform given (or each of the image),
// or for each board the manifest its engine pulls.
func checkJobs(art *image.Artifact, ref string, platforms []string, boards []board.Board) ([]checkJob, error) {
	if len(platforms) == 0 && len(boards) == 0 {
		for _, p := range art.Platforms() {
			platforms = append(platforms, p.String())
		}
		if len(platforms) == 0 {
			return nil, &exitError{2, fmt.Errorf("check: %s names no platform", ref)}
		}
	}
	if len(boards) == 0 {
		var jobs []checkJob
		for _, p := range platforms {
			jobs = append(jobs, checkJob{platform: p})
		}
		return jobs, nil
	}
	var jobs []checkJob
	for i := range boards {
		b := &boards[i]
		if len(platforms) > 0 {
			for _, p := range platforms {
				jobs = append(jobs, checkJob{platform: p, board: b, note: "--platform: the board runs this manifest as `docker run --platform " + p + "` would"})
			}
			continue
		}
		pulled, err := b.Pull(art.Platforms(), art.Index() == nil)
		var none *board.NoManifestError
		switch {
		case errors.As(err, &none):
			jobs = append(jobs, checkJob{platform: b.Platform(), board: b, refused: err.Error()})
		case err != nil:
			return nil, &exitError{2, fmt.Errorf("check: %w", err)}
		default:
			jobs = append(jobs, checkJob{platform: pulled.Platform.String(), board: b, note: pulled.Note})
		}
	}
	return jobs, nil
}

func checkFailure(out checkOutput, allowUnresolved bool) error {
	var failed, unresolved, refused []string
	for _, r := range out.Results {
		switch {
		case r.Refused != "":
			refused = append(refused, r.name())
		case !r.Report.OK():
			failed = append(failed, r.name())
		case !allowUnresolved && !r.Report.Complete():
			unresolved = append(unresolved, fmt.Sprintf("%s (%v)", r.name(), r.Report.Unresolved()))
		}
	}
	var parts []string
	if len(failed) > 0 {
		parts = append(parts, "the image cannot start on "+strings.Join(failed, ", "))
	}
	if len(refused) > 0 {
		parts = append(parts, "no manifest for "+strings.Join(refused, ", "))
	}
	if len(unresolved) > 0 {
		parts = append(parts, "part of the command could not be checked statically on "+strings.Join(unresolved, ", ")+"; --allow-unresolved accepts that")
	}
	return errors.New("check: " + strings.Join(parts, "; "))
}

func writeCheckText(w io.Writer, out checkOutput) error {
	fmt.Fprintf(w, "image %s\ndigest %s\n", out.Ref, out.Digest)
	for _, r := range out.Results {
		took := jsonfmt.Duration(r.CheckMS).Round(10 * time.Microsecond)
		switch {
		case r.Board != "" && r.Refused != "":
			fmt.Fprintf(w, "\n== board %s: REFUSED\n%s\n", r.Board, r.Refused)
			continue
		case r.Board != "":
			fmt.Fprintf(w, "\n== board %s (%s) pulls %s (manifest %s, checked in %s)\n", r.Board, r.BoardModel, r.Platform, r.ManifestDigest, took)
		default:
			fmt.Fprintf(w, "\n== %s (manifest %s, checked in %s)\n", r.Platform, r.ManifestDigest, took)
		}
		if r.Note != "" {
			fmt.Fprintf(w, "note: %s\n", r.Note)
		}
		if err := r.Report.Text(w); err != nil {
			return err
		}
	}
	return nil
}
