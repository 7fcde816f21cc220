// Package staticgate is the cheapest test a gate can run: hil's static
// startup check (harness/startup) on every required platform of the pinned
// digest, without booting anything. It catches a missing loader or library,
// a too-old glibc and the wrong architecture; it cannot catch an app that
// starts and then misbehaves (that needs the scenario runner). A shell-form
// command whose programs cannot all be resolved statically is unsupported,
// never a pass: the static check did not see everything that runs.
package staticgate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/promote"
	"github.com/hilproject/hil/harness/startup"
)

// Target is the target name static outcomes carry.
const Target = "static"

// Scenario is the scenario name static outcomes carry.
const Scenario = "static-check"

// Test returns a promote.TestFunc that opens the pinned digest and runs the
// startup check for every required platform, or, when the gate requires
// boards, for every board on the manifest it pulls, held to the board's
// instruction set.
func Test() promote.TestFunc {
	return func(ctx context.Context, pin promote.Pinned) (promote.Result, error) {
		res := promote.Result{Targets: []string{Target}, Started: time.Now()}
		art, err := Open(ctx, pin)
		if err != nil {
			return res, err
		}
		if len(pin.Boards) > 0 {
			// Each board: the manifest it pulls, held to its instruction set.
			for _, bp := range pin.Boards {
				b := bp.Board
				res.Outcomes = append(res.Outcomes, checkOne(ctx, art, bp.Platform.String(), &b))
			}
		} else {
			for _, p := range pin.Required {
				res.Outcomes = append(res.Outcomes, checkOne(ctx, art, p.String(), nil))
			}
		}
		res.Finished = time.Now()
		return res, nil
	}
}

// Open opens pin.Digest (never the tag) with the gate's registry access and
// makes sure it is the digest the gate pinned.
func Open(ctx context.Context, pin promote.Pinned) (*image.Artifact, error) {
	art, err := image.Open(ctx, "registry:"+pin.Digest.String(), image.WithRegistry(pin.Registry))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", pin.Digest, err)
	}
	if art.Digest.String() != pin.Digest.DigestStr() {
		return nil, fmt.Errorf("opening %s gave digest %s: refusing to test something else", pin.Digest, art.Digest)
	}
	return art, nil
}

func checkOne(ctx context.Context, art *image.Artifact, platform string, b *board.Board) promote.Outcome {
	o := promote.Outcome{Platform: platform, Target: Target, Scenario: Scenario, Attempts: 1}
	if b != nil {
		o.Board = b.String()
	}
	img, err := art.Image(platform)
	if err != nil {
		o.Verdict, o.Reason = promote.Fail, err.Error()
		return o
	}
	dir, err := img.RootFS(ctx)
	if err != nil {
		o.Verdict, o.Reason = promote.InfraError, fmt.Sprintf("flattening %s: %v", platform, err)
		var esc *image.EscapeError
		var big *image.SizeLimitError
		var bad *image.IntegrityError
		if errors.As(err, &esc) || errors.As(err, &big) || errors.As(err, &bad) {
			// A rootfs that cannot be flattened safely, or bytes that are
			// not what the digest pins, are the image's fault.
			o.Verdict = promote.Fail
		}
		return o
	}
	cfg := startup.ConfigFor(platform, img.Config)
	cfg.Board = b
	rep, err := startup.Check(ctx, dir, cfg)
	if err != nil {
		o.Verdict, o.Reason = promote.InfraError, fmt.Sprintf("startup check could not run: %v", err)
		return o
	}
	if !rep.OK() {
		var msgs []string
		for _, p := range rep.Problems {
			msgs = append(msgs, p.Message)
		}
		o.Verdict, o.Reason = promote.Fail, strings.Join(msgs, "; ")
		return o
	}
	if err := rep.Unresolved(); err != nil {
		o.Verdict = promote.Unsupported
		o.Reason = fmt.Sprintf("the static check cannot vouch for this image: %v; a target that runs it (system, user, container, device) can", err)
		return o
	}
	o.Verdict = promote.Pass
	return o
}
