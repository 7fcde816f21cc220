package harness

import (
	"fmt"
	"os"
	"strings"

	"github.com/hilproject/hil/harness/board"
	"github.com/hilproject/hil/harness/image"
	"github.com/hilproject/hil/harness/registry"
	"github.com/hilproject/hil/harness/scenario"
)

// Environment variables ConfigFromEnv reads: what CI (or a developer at a
// shell) changes about a suite without editing it.
const (
	EnvImage     = "HIL_IMAGE"     // the image under test
	EnvTargets   = "HIL_TARGETS"   // comma-separated targets
	EnvPlatforms = "HIL_PLATFORMS" // comma-separated platforms replacing the scenarios' own
	EnvDevices   = "HIL_DEVICES"   // the board inventory for the device target
	EnvDevice    = "HIL_DEVICE"    // the board selection: a name, names, or tag:LABEL
	EnvInsecure  = "HIL_INSECURE"  // non-empty: plain HTTP to a loopback registry
	EnvShard     = "HIL_SHARD"     // i/n: only that part of the cases
	EnvTimings   = "HIL_TIMINGS"   // with HIL_SHARD: results.json (or report dir) of an earlier run
	EnvBoards    = "HIL_BOARDS"    // comma-separated boards every case runs as (pi2,pi3b+,pi4/64)
	// EnvBoardProfiles is a board profile file adding to the built-in
	// table, for HIL_BOARDS and the scenarios' boards:.
	EnvBoardProfiles = "HIL_BOARD_PROFILES"
)

// ConfigFromEnv is base with what the HIL_* variables set replacing its
// fields: HIL_IMAGE, HIL_TARGETS, HIL_PLATFORMS, HIL_DEVICES, HIL_DEVICE,
// HIL_INSECURE, HIL_SHARD, HIL_TIMINGS, HIL_BOARDS and HIL_BOARD_PROFILES
// (see the Env constants). A
// variable that is set but wrong (a shard that is not i/n, timings that
// do not read) is an error; one that is not set leaves base alone.
func ConfigFromEnv(base Config) (Config, error) {
	cfg := base
	if v := os.Getenv(EnvImage); v != "" {
		cfg.Image = v
	}
	if v := list(os.Getenv(EnvTargets)); len(v) > 0 {
		cfg.Targets = v
	}
	if v := list(os.Getenv(EnvPlatforms)); len(v) > 0 {
		cfg.Platforms = v
	}
	if v := os.Getenv(EnvDevices); v != "" {
		cfg.Devices = v
	}
	if v := os.Getenv(EnvDevice); v != "" {
		cfg.Device = v
	}
	if os.Getenv(EnvInsecure) != "" {
		cfg.ImageOptions = append(append([]image.Option{}, cfg.ImageOptions...), image.WithRegistry(registry.New(registry.WithInsecure())))
	}
	if f := os.Getenv(EnvBoardProfiles); f != "" {
		cat, err := board.Builtin().WithFile(f)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", EnvBoardProfiles, err)
		}
		cfg.BoardCatalog = cat
	}
	if v := os.Getenv(EnvBoards); v != "" {
		cat := cfg.BoardCatalog
		if cat == nil {
			cat = board.Builtin()
		}
		bs, err := cat.LookupList(v)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", EnvBoards, err)
		}
		cfg.Boards = bs
	}
	shard, timings := os.Getenv(EnvShard), os.Getenv(EnvTimings)
	if shard == "" && timings != "" {
		return cfg, fmt.Errorf("%s balances shards: set %s=i/n too", EnvTimings, EnvShard)
	}
	if shard != "" {
		s, err := scenario.ParseShard(shard)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", EnvShard, err)
		}
		cfg.Shard = &s
	}
	if timings != "" {
		t, err := scenario.ReadTimings(timings)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", EnvTimings, err)
		}
		cfg.Timings = t
	}
	return cfg, nil
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
