package device

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hilproject/hil/internal/testenv"
)

func TestWatchChecksTheRunningDigestAndHealth(t *testing.T) {
	b := newLabBoard(t)
	reg := testenv.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref := reg.Host + "/fleet/app:latest"
	tag, _ := name.NewTag(ref)
	good := busyboxImage(t).Image
	if err := remote.Write(tag, good); err != nil {
		t.Fatal(err)
	}
	// What Watchtower does on the board: pull the tag and run it.
	b.docker(t, "pull", ref)
	b.docker(t, "run", "-d", "--network", "none", ref)

	rep, err := Watch(ctx, b.Machine, ref, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("board runs the promoted digest and is healthy, but Watch says: %v", rep.Problems)
	}
	gd, _ := good.Digest()
	if rep.PromotedDigest != gd.String() {
		t.Errorf("promoted digest %s, want %s", rep.PromotedDigest, gd)
	}

	// The tag moves on; the board still runs the old digest.
	next, err := mutate.Config(good, v1.Config{Entrypoint: []string{"/bin/sh", "-c", "echo next; sleep 100"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, next); err != nil {
		t.Fatal(err)
	}
	rep, err = Watch(ctx, b.Machine, ref, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(strings.Join(rep.Problems, ";"), "Watchtower has not pulled it") {
		t.Fatalf("board runs a stale digest, Watch says %+v", rep)
	}

	// Nothing of the tag runs at all.
	b.docker(t, "rm", "-f", b.docker(t, "ps", "-q"))
	rep, err = Watch(ctx, b.Machine, ref, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(rep.Problems[0], "no running container") {
		t.Fatalf("nothing runs, Watch says %+v", rep)
	}
	b.docker(t, "rmi", "-f", ref)
}
