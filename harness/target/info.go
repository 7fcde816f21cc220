package target

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Info is what an App says about itself for reports (App.Info): the
// emulator and kernel versions, how it booted, how long that took, where
// its console log is. Values are typed, so that results.json carries a
// number as a number: each key of InfoKeys has the kind listed there;
// a key of a target's own that is not listed holds a string, a number or
// a boolean. Info.Validate checks that (targettest.Conformance calls it).
//
// Durations are numbers of milliseconds named *_ms; sizes in MiB are
// named *_mb; counts and process ids are integers.
type Info map[string]any

// InfoKind is the JSON type of an Info value.
type InfoKind string

const (
	InfoString  InfoKind = "string"
	InfoNumber  InfoKind = "number"  // float64 or an integer type
	InfoInteger InfoKind = "integer" // an integer type
	InfoBool    InfoKind = "boolean"
)

// InfoKeys documents the keys hil's targets use and the kind of each.
// A new fact goes here with its kind (and into results.schema.json's
// device properties, which a test holds to this table).
var InfoKeys = map[string]InfoKind{
	// Every target.
	"target":   InfoString, // system, user, container, device
	"platform": InfoString, // linux/arm/v7
	"board":    InfoString, // the board profile, or the inventory's board name (device)
	"boot":     InfoString, // how the boot went: cold, or (system) base or app, the snapshot level restored
	"boot_ms":  InfoNumber, // from Boot's start to the app started
	"pid":      InfoInteger,
	"image":    InfoString, // how the target holds the image (a tag, a digest)
	// The system target.
	"emulator":          InfoString, // QEMU's version (system) or the emulator's path (user, container)
	"emulator_version":  InfoString,
	"kernel":            InfoString, // the kernel release
	"kernel_package":    InfoString,
	"kernel_args":       InfoString,
	"kernel_image":      InfoString, // what -kernel was: direct (the zImage unpacked once on the host, kernel.DirectImage) or zimage
	"init":              InfoString, // hil-init's build
	"console_log":       InfoString, // the guest console's log file (copied into the report)
	"memory_mb":         InfoInteger,
	"snapshot_key":      InfoString,
	"snapshot_saved_ms": InfoNumber,
	"snapshot_error":    InfoString,
	"ready_replayed":    InfoBool, // the ready line was recorded at snapshot time and replayed
	// The system target's base snapshot (hil-init idle, before the app)
	// and what hil-init reported on the way.
	"base_snapshot_key":      InfoString,
	"base_snapshot_saved_ms": InfoNumber,
	"base_snapshot_error":    InfoString,
	"init_idle_ms":           InfoNumber, // from Boot's start to hil-init idle (cold boot)
	"module_init_free":       InfoString, // cold boot: "freed" when the kernel had freed the modules' init sections before idle (so a base snapshot holds none of that work), "no modules", "timed out after …", or "not waited for: …" and why
	"module_init_free_ms":    InfoNumber, // how long idle waited for it
	"restored_ms":            InfoNumber, // from Boot's start to the restored guest running (snapshot boots)
	"app_start_ms":           InfoNumber, // from the app's command line sent to hil-init's "started" (cold and base boots)
	"guest_boot_ms":          InfoNumber, // the guest's CLOCK_BOOTTIME when it set up its interface
	"ethtool_ms":             InfoNumber, // setting and reading back receive coalescing in the guest
	"iface_mtu":              InfoInteger,
	// Every target that captures: the capture interface's receive
	// coalescing as read back, "off" or the features on ("rx-gro").
	"rx_offload":          InfoString,
	"rx_offload_features": InfoString, // each coalescing feature with its state
	"rx_offload_error":    InfoString, // a feature that would not turn off
	"liveness":            InfoString,
	"machine":             InfoString, // QEMU's -machine (virt, raspi3b, ...)
	"cpu":                 InfoString, // the emulated CPU model (system: -cpu; user, container: qemu-user's -cpu, with how close it is)
	"kernel_arch":         InfoString, // the kernel build booted: armel, armhf, arm64
	"personality":         InfoString, // set when the app runs under linux32 (a 32-bit OS on a 64-bit board)
	// The user and container targets.
	"mode":          InfoString, // native or emulated
	"capture":       InfoString, // supported, or unsupported: why
	"emulator_gap":  InfoString,
	"rootfs":        InfoString,
	"program":       InfoString,
	"argv":          InfoString,
	"user":          InfoString,
	"workdir":       InfoString,
	"netns":         InfoString,
	"host_iface":    InfoString,
	"iface":         InfoString,
	"docker_host":   InfoString,
	"engine":        InfoString,
	"container":     InfoString,
	"veth":          InfoString,
	"boot_phases":   InfoString,
	"wrapper":       InfoString,
	"docker_runs":   InfoString,
	"entrypoint":    InfoString,
	"cmd":           InfoString,
	"env":           InfoString,
	"exposed_ports": InfoString,
	"healthcheck":   InfoString,
	"inspect_error": InfoString,
	// The device target.
	"board_arch":     InfoString,
	"docker_version": InfoString,
	"board_model":    InfoString, // the Pi's own /proc/device-tree/model
	"board_profile":  InfoString, // the board profile the case was held to
	"board_check":    InfoString, // whether the Pi is the profile's board: verified, or not verified and why
}

// String returns the value of key as text ("" when absent): a string as
// it is, a number or boolean formatted.
func (i Info) String(key string) string {
	switch v := i[key].(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	default:
		return fmt.Sprint(v)
	}
}

// Int returns the value of key as an integer, and whether it is one.
func (i Info) Int(key string) (int64, bool) {
	switch v := i[key].(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case uint32:
		return int64(v), true
	case float64:
		if v == math.Trunc(v) {
			return int64(v), true
		}
	}
	return 0, false
}

// Clone copies i (nil stays nil).
func (i Info) Clone() Info {
	if i == nil {
		return nil
	}
	out := make(Info, len(i))
	for k, v := range i {
		out[k] = v
	}
	return out
}

// Validate says which values do not have their documented kind (or, for
// an undocumented key, are neither a string, a number nor a boolean).
func (i Info) Validate() error {
	var bad []string
	keys := make([]string, 0, len(i))
	for k := range i {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got := kindOf(i[k])
		want, documented := InfoKeys[k]
		switch {
		case got == "":
			bad = append(bad, fmt.Sprintf("%s is a %T (want a string, number or boolean)", k, i[k]))
		case !documented:
		case want == got, want == InfoNumber && got == InfoInteger:
		default:
			bad = append(bad, fmt.Sprintf("%s is a %s (%v), documented as a %s", k, got, i[k], want))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("device info: %s", strings.Join(bad, "; "))
	}
	return nil
}

func kindOf(v any) InfoKind {
	switch v := v.(type) {
	case string:
		return InfoString
	case bool:
		return InfoBool
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return InfoInteger
	case float64:
		if v == math.Trunc(v) && !math.IsInf(v, 0) {
			return InfoInteger
		}
		return InfoNumber
	case float32:
		return InfoNumber
	}
	return ""
}
